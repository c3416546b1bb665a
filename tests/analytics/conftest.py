"""Fixtures: the two synthetic cohorts (parametrised) and the published 41-patient table."""

from pathlib import Path

import pytest

from tests.analytics.reference import Reference, load_cohort, load_lm_nsclc


@pytest.fixture(scope="module", params=[1, 2], ids=["cohort_1", "cohort_2"])
def reference_cohort(request: pytest.FixtureRequest, shared_dir: Path) -> Reference:
    return load_cohort(shared_dir, request.param)


@pytest.fixture(scope="module")
def lm_nsclc(shared_dir: Path) -> Reference:
    return load_lm_nsclc(shared_dir)
