"""The patient list a nurse pages through: 50 a page, filters by study, site and review status,
an order to choose, and a review cell per section."""

import datetime as dt

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from registry.models import Patient
from review.models import ReviewStatus, SectionReview
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def nurse_client(client):
    north, south = f.SiteFactory(code="north"), f.SiteFactory(code="south")
    npsle = f.StudyFactory(code="npsle", sites=[north, south])
    lm = f.StudyFactory(code="lm", sites=[north])
    nurse = f.UserFactory()
    for site in (north, south):
        f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
    for n in range(50):
        f.PatientFactory(study=npsle, site=north, study_code=f"NP-{n:03d}")
    f.PatientFactory(study=npsle, site=south, study_code="NP-900", index_admission_date=dt.date(2024, 1, 5))
    submitted = f.PatientFactory(study=lm, site=north, study_code="LM-001")
    f.PatientFactory(study=lm, site=north, study_code="LM-002")
    SectionReview.objects.create(
        patient=submitted, section="procedures", status=ReviewStatus.SUBMITTED,
        submitted_by=nurse, submitted_at=timezone.now(),
    )  # fmt: skip
    client.force_login(nurse)
    client.sites = {"north": north, "south": south}
    client.studies = {"npsle": npsle, "lm": lm}
    return client


def codes(client, **params) -> list[str]:
    response = client.get(reverse("casebook:patient_list"), params)
    assert response.status_code == 200
    return [p.study_code for p in response.context["patients"]]


def test_fifty_a_page_in_study_code_order(nurse_client):
    first = codes(nurse_client)
    assert len(first) == 50 and first[:3] == ["LM-001", "LM-002", "NP-000"]
    assert codes(nurse_client, page=2) == ["NP-048", "NP-049", "NP-900"]


def test_filters_by_study_site_and_review_status(nurse_client):
    assert codes(nurse_client, study=nurse_client.studies["lm"].pk) == ["LM-001", "LM-002"]
    assert codes(nurse_client, site=nurse_client.sites["south"].pk) == ["NP-900"]
    assert codes(nurse_client, status=ReviewStatus.SUBMITTED) == ["LM-001"]


def test_ordered_as_chosen_with_a_review_cell_per_section(nurse_client):
    assert codes(nurse_client, sort="-admission")[0] == "NP-900"
    response = nurse_client.get(reverse("casebook:patient_list"), {"study": nurse_client.studies["lm"].pk})
    rows = {
        row.patient.study_code: {c.section: c.status for c in row.cells} for row in response.context["rows"]
    }
    assert rows["LM-001"]["procedures"] == ReviewStatus.SUBMITTED
    assert set(rows["LM-002"].values()) == {ReviewStatus.DRAFT}
    assert 'class="cell status-submitted"' in response.content.decode()


def test_each_review_letter_links_its_section_and_counts_its_open_queries(nurse_client):
    from review import services

    patient = Patient.objects.get(study_code="LM-001")
    reviewer = f.UserFactory()
    f.MembershipFactory(user=reviewer, site=nurse_client.sites["north"], role=Role.REVIEWER)
    for message in ("Which dose?", "Which day?"):
        services.query_raise(patient=patient, actor=reviewer, message=message, section="procedures")
    response = nurse_client.get(reverse("casebook:patient_list"), {"study": nurse_client.studies["lm"].pk})
    html = response.content.decode()
    detail = reverse("casebook:patient_detail", args=[patient.pk])
    assert (
        f'<a class="cell status-submitted" href="{detail}#section-procedures" title="Procedures: submitted">'
        'S<span class="query-count">2</span></a>'
    ) in html
    # A section without queries: its letter alone; one link per section, in page order.
    assert (
        f'<a class="cell status-draft" href="{detail}#section-identity" title="Identity: draft">D</a>' in html
    )
    row = html.split('data-patient="LM-001"')[1].split("</tr>")[0]
    sections = [cell.section for cell in response.context["rows"][0].cells]
    assert row.count('class="cell status-') == len(sections) > 1
    assert [part.split('"')[0] for part in row.split("#section-")[1:]] == sections


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the plan is PostgreSQL's")
def test_a_page_in_study_code_order_walks_the_study_code_index_without_sorting(nurse_client):
    from registry.models import Patient
    from registry.selectors import InStudyCodeOrder

    visible = Patient.objects.select_related("study", "site")
    ordered = InStudyCodeOrder(visible)
    assert [n for _, n in ordered.per_study()] == [2, 51]  # lm, then npsle: study-code order
    page = ordered.patients.filter(study_id=nurse_client.studies["npsle"].pk).order_by("study_code")[:50]
    with connection.cursor() as cursor:
        # Tiny tables: ask whether an index can serve the order (a sort then only if none can).
        cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off")
        plan = page.explain()
    assert "patient_study_code_unique" in plan and "Sort" not in plan, plan
