"""Fixtures of the report tests: the three demo studies (NPSLE at 150 patients) and named users.

The demo studies are loaded once for the whole package inside a transaction rolled back at the
end (the loaders are the slow part of these tests). Each module works in a savepoint of its own,
rolled back after the module, and each test in a nested transaction as usual, so the report runs
one module computes never leak into another.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.db import transaction

from accounts.models import Role, Site
from registry.models import Study
from tests import factories as f
from tests.replay import demo_studies_replayed

NPSLE_PATIENTS = 150


@pytest.fixture(scope="package")
def demo_studies(django_db_setup, django_db_blocker) -> Iterator[None]:
    with django_db_blocker.unblock(), transaction.atomic():
        demo_studies_replayed(npsle_patients=NPSLE_PATIENTS)
        yield
        transaction.set_rollback(True)


@pytest.fixture(scope="module")
def demo(demo_studies, django_db_blocker) -> Iterator[dict[str, Study]]:
    """The LM, NPSLE (150 patients) and ICANS demo studies, by code."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield {study.code: study for study in Study.objects.all()}
        transaction.set_rollback(True)


def researcher(username: str, *site_codes: str):
    """A researcher holding RUN_REPORTS at the given demo sites."""
    user = f.UserFactory(username=username)
    for code in site_codes:
        f.MembershipFactory(user=user, site=Site.objects.get(code=code), role=Role.RESEARCHER)
    return user


def section(numbers: dict, key: str) -> dict:
    return next(s for s in numbers["sections"] if s["key"] == key)


def table(numbers: dict, key: str) -> dict:
    """A table of a report's JSON by its key, e.g. ``survival.medians``."""
    return next(t for t in section(numbers, key.split(".")[0])["tables"] if t["key"] == key)


def rows_by(table_: dict, column: str) -> dict:
    return {row[column]: row for row in table_["rows"]}


PENDING_FIGURE = re.compile(r'<div class="figure-pending" hx-get="([^"]+)".*?</noscript></div>', re.S)


def with_figures(client, page: str) -> str:
    """The report page as a browser shows it once htmx has put each figure not drawn yet in place."""
    return PENDING_FIGURE.sub(lambda m: client.get(m.group(1).replace("&amp;", "&")).content.decode(), page)
