"""Admin lists cost the same queries at one row or several: each foreign key a list shows is read with
its rows (the admin's own ``select_related()`` skips nullable keys, so those lists read a user, an LP
or a protocol once per row); so does a patient's page at one LP or six."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analytics.models import ReportDefinition, ReportRun
from audit.models import SecurityEvent, SecurityEventKind
from protocols.models import PlannedInjection
from protocols.seed import ensure_seed_protocols
from tests import factories as f
from tests.protocols.conftest import START, give, npsle_doses, patient_in, start
from tests.registry.test_admin import FACTORIES

pytestmark = pytest.mark.django_db


def queries(client, model) -> int:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    client.get(url)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    assert response.context["cl"].result_count > 0
    return len(captured.captured_queries)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_each_registry_list_costs_the_same_at_one_row_or_three(name, admin_client):
    factory = FACTORIES[name]
    model = factory._meta.model
    factory()
    one = queries(admin_client, model)
    factory(), factory()
    assert queries(admin_client, model) == one


def security_events(n: int) -> None:
    for _ in range(n):
        SecurityEvent.objects.create(
            kind=SecurityEventKind.SIGN_IN, user=f.UserFactory(), path="/accounts/login/"
        )


def report_lists(n: int) -> None:
    study = f.StudyFactory()
    for i in range(n):
        user = f.UserFactory()
        ReportDefinition.objects.create(study=study, name=f"Definition {i}", created_by=user)
        ReportRun.objects.create(
            cache_key=f"key-{study.pk}-{i}", scope_key="scope", study=study, fingerprint="f",
            numbers={"sections": ["x" * 1000]}, n_screened=1, n_records=1, duration_ms=1, requested_by=user,
        )  # fmt: skip


def courses(n: int) -> None:
    protocol = ensure_seed_protocols()["npsle-pumch"]
    for _ in range(n):
        patient = patient_in("npsle")
        nurse = f.UserFactory()
        start(patient, protocol, nurse)
        give(patient, START, npsle_doses(), nurse)


@pytest.mark.parametrize(
    ("make", "models"),
    [
        (security_events, [SecurityEvent]),
        (report_lists, [ReportDefinition, ReportRun]),
        (courses, [PlannedInjection]),
    ],
    ids=["security events", "report definitions and runs", "planned injections"],
)
def test_the_other_lists_cost_the_same_at_one_row_or_three(make, models, admin_client):
    make(1)
    one = [queries(admin_client, model) for model in models]
    make(2)
    assert [queries(admin_client, model) for model in models] == one


def test_the_report_run_list_does_not_read_the_runs_numbers(admin_client):
    report_lists(2)
    url = reverse("admin:analytics_reportrun_changelist")
    with CaptureQueriesContext(connection) as captured:
        assert admin_client.get(url).status_code == 200
    listed = [q["sql"] for q in captured.captured_queries if 'FROM "analytics_reportrun"' in q["sql"]]
    assert listed and not [sql for sql in listed if '"numbers"' in sql]


def test_a_patients_page_costs_the_same_at_one_lp_or_six_and_keeps_its_drafts_editable(
    admin_client, admin_user
):
    from review.services import section_submit

    pages = []
    for lps in (1, 6):
        patient = f.PatientFactory()
        for _ in range(lps):
            lp = f.LumbarPunctureFactory(patient=patient)
            f.CsfResultFactory(lumbar_puncture=lp)
            f.IntrathecalDoseFactory(lumbar_puncture=lp)
        f.SystemicTherapyFactory(patient=patient)
        url = reverse("admin:registry_patient_change", args=[patient.pk])
        admin_client.get(url)
        with CaptureQueriesContext(connection) as captured:
            html = admin_client.get(url).content.decode()
        pages.append((patient, url, html, len(captured.captured_queries)))
    assert pages[0][3] == pages[1][3], [page[3] for page in pages]
    patient, url, html, _ = pages[1]
    # Drafts are edited inline; a submitted section is read-only there, the others stay editable.
    assert 'name="lumbar_punctures-5-opening_pressure_mmh2o"' in html
    assert 'name="systemic_therapies-0-agent"' in html
    section_submit(patient=patient, section="procedures", actor=admin_user)
    html = admin_client.get(url).content.decode()
    assert 'name="lumbar_punctures-5-opening_pressure_mmh2o"' not in html
    assert 'name="systemic_therapies-0-agent"' in html
