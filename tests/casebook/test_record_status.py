"""The record-status grid and the home page's worklists, as a reviewer and as data entry would use them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from registry.choices import DiseaseArea
from review.models import DataQuery, QueryStatus, ReviewStatus, SectionReview
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    north, south = f.SiteFactory(name="North"), f.SiteFactory(name="South")
    npsle = f.StudyFactory(code="npsle", disease_area=DiseaseArea.NPSLE, sites=[north, south])
    lm = f.StudyFactory(code="lm", disease_area=DiseaseArea.LM, sites=[north])
    reviewer, nurse = f.UserFactory(first_name="Chen", last_name="Jing"), f.UserFactory()
    f.MembershipFactory(user=reviewer, site=north, role=Role.REVIEWER)
    f.MembershipFactory(user=nurse, site=north, role=Role.DATA_ENTRY)
    return {"north": north, "south": south, "npsle": npsle, "lm": lm, "reviewer": reviewer, "nurse": nurse}


def patient(world, code, *, study="npsle", site="north", **statuses):
    p = f.PatientFactory(study=world[study], site=world[site], study_code=code)
    for section, status in statuses.items():
        locked = {"locked_by": world["reviewer"], "locked_at": timezone.now()} if status == "locked" else {}
        SectionReview.objects.create(
            patient=p,
            section=section,
            status=status,
            submitted_at=timezone.now(),
            submitted_by=world["nurse"],
            **locked,
        )
    return p


def grid(client, **params):
    response = client.get(reverse("review:record_status"), params)
    assert response.status_code == 200
    return response


def test_each_cell_shows_the_section_status_and_its_open_queries(client, world):
    p = patient(world, "A-1", therapy=ReviewStatus.SUBMITTED, identity=ReviewStatus.LOCKED)
    DataQuery.objects.create(patient=p, section="therapy", message="Dose?")
    DataQuery.objects.create(patient=p, section="therapy", message="Date?", status=QueryStatus.ANSWERED)
    DataQuery.objects.create(patient=p, section="therapy", message="done", status=QueryStatus.CLOSED)
    patient(world, "S-1", site="south")  # another site: never shown
    client.force_login(world["reviewer"])
    response = grid(client)
    (row,) = response.context["rows"]
    cells = {c.section: (c.status, c.open_queries) for c in row.cells}
    assert cells == {
        "identity": ("locked", 0),
        "diagnosis": ("draft", 0),
        "procedures": ("draft", 0),
        "therapy": ("submitted", 2),
        "safety": ("draft", 0),
        "outcomes": ("draft", 0),
    }
    html = response.content.decode()
    assert f'href="/patients/{p.pk}/#section-therapy"' in html, "a cell opens its section"
    assert 'class="cell status-locked"' in html and "Legend" in html
    assert "S-1" not in html


def test_filters_by_study_site_status_and_open_queries(client, world):
    submitted = patient(world, "A-1", therapy=ReviewStatus.SUBMITTED)
    patient(world, "A-2", **dict.fromkeys(("identity", "diagnosis", "procedures"), ReviewStatus.VERIFIED))
    every = dict.fromkeys(
        ("identity", "diagnosis", "procedures", "therapy", "safety", "outcomes"), ReviewStatus.LOCKED
    )
    patient(world, "A-3", **every)
    lm = patient(world, "L-1", study="lm")
    DataQuery.objects.create(patient=lm, section="diagnosis", message="ECOG?")
    client.force_login(world["reviewer"])

    def codes(**params):
        return [row.patient.study_code for row in grid(client, **params).context["rows"]]

    assert codes() == ["L-1", "A-1", "A-2", "A-3"]  # by study, then patient
    assert codes(study=world["lm"].pk) == ["L-1"]
    assert codes(status="submitted") == ["A-1"]
    assert codes(status="verified") == ["A-2"]
    assert codes(status="draft") == ["L-1", "A-1", "A-2"], "A-3 has no draft section left"
    assert codes(open_queries="on") == ["L-1"]
    assert codes(sort="-queries")[0] == "L-1"
    assert codes(site=world["north"].pk, study=world["npsle"].pk, status="locked") == ["A-3"]
    assert submitted.pk


def test_pages_of_fifty(client, world):
    for n in range(51):
        patient(world, f"P-{n:03}")
    client.force_login(world["reviewer"])
    first = grid(client)
    assert len(first.context["rows"]) == 50 and first.context["page"].paginator.num_pages == 2
    second = grid(client, page=2)
    assert [r.patient.study_code for r in second.context["rows"]] == ["P-050"]


def _populate(world, n):
    for i in range(n):
        p = patient(world, f"Q-{i:04}", therapy=ReviewStatus.SUBMITTED, safety=ReviewStatus.VERIFIED)
        DataQuery.objects.create(patient=p, section="therapy", message="?")


@pytest.mark.parametrize("params", [{}, {"status": "draft", "open_queries": "on", "sort": "-queries"}])
def test_the_query_count_does_not_grow_with_the_patients(
    client, world, django_assert_max_num_queries, params
):
    client.force_login(world["reviewer"])
    _populate(world, 1)
    with CaptureQueriesContext(connection) as one_patient:
        assert len(grid(client, **params).context["rows"]) == 1
    for i in range(199):
        p = patient(world, f"R-{i:04}", therapy=ReviewStatus.SUBMITTED)
        DataQuery.objects.create(patient=p, section="procedures", message="?")
    with django_assert_max_num_queries(len(one_patient.captured_queries)):
        response = grid(client, **params)
    assert response.context["page"].paginator.count == 200 and len(response.context["rows"]) == 50


def test_the_reviewers_home_is_their_worklist_oldest_first(client, world):
    now = timezone.now()
    older = patient(world, "A-1")
    newer = patient(world, "L-1", study="lm")
    for p, section, age in ((newer, "therapy", 1), (older, "safety", 5), (older, "identity", 3)):
        SectionReview.objects.create(
            patient=p,
            section=section,
            status=ReviewStatus.SUBMITTED,
            submitted_at=now - dt.timedelta(days=age),
        )
    SectionReview.objects.create(patient=newer, section="safety", status=ReviewStatus.VERIFIED)
    patient(world, "S-1", site="south", therapy=ReviewStatus.SUBMITTED)  # not their site
    client.force_login(world["reviewer"])
    response = client.get(reverse("home"))
    waiting = [(r.patient.study_code, r.section) for r in response.context["waiting"]]
    assert waiting == [("A-1", "safety"), ("A-1", "identity"), ("L-1", "therapy")]
    per_study = {
        row["patient__study__code"]: row["sections"] for row in response.context["waiting_per_study"]
    }
    assert per_study == {"lm": 1, "npsle": 2}
    assert "Waiting for review" in response.content.decode()
    assert "Your drafts" not in response.content.decode()


def test_data_entrys_home_shows_their_drafts_and_the_queries_to_answer(client, world):
    from registry.services import record_save  # noqa: PLC0415  (only this test edits through the service)

    mine = patient(world, "A-1")
    mine.sex = "M" if mine.sex == "F" else "F"
    record_save(mine, actor=world["nurse"], reason="typo")
    patient(world, "A-2")  # nobody's edit: not among their drafts
    open_query = DataQuery.objects.create(patient=mine, section="therapy", message="Which dose?")
    DataQuery.objects.create(patient=mine, section="therapy", message="answered", status=QueryStatus.ANSWERED)
    client.force_login(world["nurse"])
    response = client.get(reverse("home"))
    assert [p.study_code for p in response.context["drafts"]] == ["A-1"]
    assert list(response.context["to_answer"]) == [open_query]
    assert "Waiting for review" not in response.content.decode()
