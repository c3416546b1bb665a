"""The default demo NPSLE cohort (386 patients, default seed) against the paper's own figures.

``demo.npsle.PAPER_FIGURES`` holds every per-group figure of the paper's Table 1 and Table 2 (and of
its text); ``PAPER_COHORT`` its whole-cohort figures. The cohort is generated once, read through the
analysis dataset (so the dataset's derivations are checked too) and rolled back.

Tolerances (the issue's): a percentage within ±3 percentage points of the paper's, per group; a
median within 10% of the paper's (a median of 0 must be 0). Whole-cohort counts: treated ±3,
events, relapses and deaths as printed (they are drawn as exact counts), person-years within 5%,
matched pairs 147 ± 8 with every standardized mean difference below 0.1 after matching.

Survival (``PAPER_COMPARISONS``, computed as the report computes them): each comparison is
significant at 0.05 exactly where the paper's is, and favours intrathecal therapy (HR < 1) wherever
the paper's is significant; where the paper prints a hazard ratio, the cohort's is within ±0.15 of
it and its 95% interval excludes 1 as the paper's does.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from django.db import transaction

from accounts.services import system_user
from analytics.datasets import build_dataset
from analytics.matching import match_nearest
from analytics.reports.npsle import CALIPER_SD, MATCHING_COVARIATES, SENSITIVITY_COVARIATES
from analytics.survival import cox, logrank
from demo.common import ensure_sites_and_studies
from demo.npsle import (
    PAPER_COHORT,
    PAPER_COMPARISONS,
    PAPER_FIGURES,
    PaperComparison,
    PaperFigure,
    generate_npsle_cohort,
)

pytestmark = pytest.mark.django_db

PERCENT_POINTS = 3.0
MEDIAN_RELATIVE = 0.10
HAZARD_RATIO_ABSOLUTE = 0.15
SIGNIFICANCE = 0.05


@pytest.fixture(scope="module")
def cohort(django_db_setup, django_db_blocker) -> pd.DataFrame:
    with django_db_blocker.unblock(), transaction.atomic():
        actor = system_user()
        study = ensure_sites_and_studies(actor=actor)["npsle"]
        generate_npsle_cohort(study=study, actor=actor)
        frame = build_dataset(study)
        transaction.set_rollback(True)
    frame.attrs = {}
    return frame


def generated(frame: pd.DataFrame, figure: PaperFigure, group: int) -> float:
    """The cohort's value of a paper figure in one group (0 control, 1 intrathecal)."""
    name, _, level = figure.name.partition("=")
    values = frame.loc[frame["intrathecal"] == group, name].dropna()
    if figure.kind == "median":
        return float(values.median())
    if level:
        hits = values.astype(int) == int(level) if name == "it_dose_count" else values == level
    else:
        hits = values == 1
    return 100 * float(hits.mean())


CHECKS = [
    pytest.param(figure, group, id=f"{figure.name}-{'intrathecal' if group else 'control'}")
    for figure in PAPER_FIGURES
    for group in (0, 1)
    if not math.isnan(figure.of(bool(group))[0])
]


@pytest.mark.parametrize(("figure", "group"), CHECKS)
def test_every_paper_figure_is_matched_per_group(cohort, figure, group):
    paper = figure.of(bool(group))[0]
    value = generated(cohort, figure, group)
    if figure.kind == "percent":
        assert value == pytest.approx(paper, abs=PERCENT_POINTS), f"{figure.label}: {value:.1f}% vs {paper}%"
    else:
        assert value == pytest.approx(paper, rel=MEDIAN_RELATIVE, abs=1e-9), (
            f"{figure.label}: {value} vs {paper}"
        )


def test_the_cohort_has_the_papers_size_treatment_and_events(cohort):
    assert len(cohort) == PAPER_COHORT.patients
    assert cohort["intrathecal"].sum() == pytest.approx(PAPER_COHORT.intrathecal, abs=3)
    assert cohort["headache_only"].sum() == PAPER_COHORT.headache_only
    assert cohort["event"].sum() == PAPER_COHORT.events
    assert cohort["relapse"].sum() == PAPER_COHORT.relapses
    assert cohort["death"].sum() == PAPER_COHORT.deaths
    causes = cohort["death_cause"].value_counts()
    assert (causes["sle_related"], causes["infection"]) == (
        PAPER_COHORT.sle_related_deaths,
        PAPER_COHORT.infection_deaths,
    )
    assert cohort["time_years"].sum() == pytest.approx(PAPER_COHORT.person_years, rel=0.05)
    injections = cohort.loc[cohort["intrathecal"] == 1, "it_dose_count"].sum()
    assert injections == pytest.approx(PAPER_COHORT.injections, rel=0.03)


def test_matching_gives_about_147_pairs_all_balanced(cohort):
    result = match_nearest(
        cohort, "intrathecal", MATCHING_COVARIATES, caliper=CALIPER_SD, id_col="patient_id"
    )
    assert result.n_treated_matched == pytest.approx(PAPER_COHORT.matched_pairs, abs=8)
    assert (result.balance["smd_after"].abs() < 0.1).all(), result.balance


@pytest.fixture(scope="module")
def comparisons(cohort) -> dict[str, pd.DataFrame]:
    """The patients of each of the paper's comparisons, chosen as the report chooses them."""

    def matched(frame: pd.DataFrame, covariates) -> pd.DataFrame:
        return match_nearest(
            frame, "intrathecal", covariates, caliper=CALIPER_SD, id_col="patient_id"
        ).matched

    pairs = matched(cohort, MATCHING_COVARIATES)
    without = cohort[cohort["headache_only"] == 0]
    return {
        "unmatched": cohort,
        "matched": pairs,
        "without_headache_only": without,
        "rematched": matched(without, SENSITIVITY_COVARIATES),
        "raised_protein": pairs[pairs["inc_protein"] == 1],
        "normal_protein": pairs[pairs["inc_protein"] == 0],
    }


@pytest.mark.parametrize("paper", PAPER_COMPARISONS, ids=[c.name for c in PAPER_COMPARISONS])
def test_survival_comparisons_agree_with_the_paper(comparisons, paper: PaperComparison):
    frame = comparisons[paper.name]
    p = logrank(frame, "time_years", "event", "intrathecal").p
    model = cox(frame, "time_years", "event", ["intrathecal"]).table.iloc[0]
    paper_significant = paper.p_below or paper.logrank_p < SIGNIFICANCE
    assert (p < SIGNIFICANCE) == paper_significant, f"{paper.label}: log-rank p {p:.3f} vs {paper.logrank_p}"
    if paper_significant:
        assert model["hr"] < 1, f"{paper.label}: HR {model['hr']:.2f} does not favour intrathecal therapy"
    if not math.isnan(paper.hr):
        assert model["hr"] == pytest.approx(paper.hr, abs=HAZARD_RATIO_ABSOLUTE), paper.label
        assert model["upper"] < 1, f"{paper.label}: 95% CI {model['lower']:.2f}–{model['upper']:.2f}"
