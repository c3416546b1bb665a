"""The audit trail: timelines with field-level diffs, the CSV export, security events, immutability."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from audit.export import audit_rows
from audit.models import SecurityEvent, SecurityEventKind
from audit.timeline import patient_timeline
from registry.formatting import spreadsheet_safe
from registry.models import LumbarPuncture, Patient, Study
from registry.services import record_save
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def edited_lp():
    """An LP created by a nurse and corrected by another, with a reason."""
    nurse, corrector = (
        f.UserFactory(first_name="Lin", last_name="Wei"),
        f.UserFactory(first_name="Chen", last_name="Jing"),
    )
    patient = f.PatientFactory()
    performed = timezone.make_aware(dt.datetime(2021, 3, 2, 9, 0))
    lp = LumbarPuncture(patient=patient, performed_at=performed, opening_pressure_mmh2o=180)
    record_save(lp, actor=nurse, reason="ward sheet")
    lp.opening_pressure_mmh2o = 210
    record_save(lp, actor=corrector, reason="corrected from the manometer log")
    return lp, nurse, corrector


def test_timeline_shows_who_when_old_new_and_why(edited_lp):
    lp, nurse, corrector = edited_lp
    changes = patient_timeline(lp.patient_id, include_identifiers=True)
    latest = changes[0]
    assert (latest.action, latest.user, latest.reason, latest.section) == (
        "changed",
        "Chen Jing",
        "corrected from the manometer log",
        "procedures",
    )
    assert [(c.field, c.old, c.new) for c in latest.fields] == [("opening_pressure_mmh2o", "180", "210")]
    created = [c for c in changes if c.model == "lumbarpuncture" and c.action == "created"][0]
    assert created.user == "Lin Wei" and created.at.tzinfo is not None


def test_timeline_filters_and_deleted_records(edited_lp):
    lp, nurse, corrector = edited_lp
    from registry.services import record_delete

    record_delete(lp, actor=nurse, reason="duplicate entry")
    changes = patient_timeline(lp.patient_id, include_identifiers=True, section="procedures")
    assert [c.action for c in changes] == ["deleted", "changed", "created"]
    assert changes[0].reason == "duplicate entry"
    assert all(
        c.user_id == corrector.pk
        for c in patient_timeline(lp.patient_id, include_identifiers=True, user_id=corrector.pk)
    )


def test_identifier_changes_only_for_roles_that_see_identifiers(client):
    site = f.SiteFactory()
    identifier = f.PatientIdentifierFactory(
        patient=f.PatientFactory(study=f.StudyFactory(sites=[site]), site=site), full_name="Zhao Lei"
    )
    for role, visible in ((Role.REVIEWER, True), (Role.SITE_ADMIN, False)):
        user = f.UserFactory()
        f.MembershipFactory(user=user, site=site, role=role)
        client.force_login(user)
        page = client.get(reverse("audit:patient_history", args=[identifier.patient_id])).content.decode()
        assert ("Zhao Lei" in page) is visible, role


def test_history_page_filters_by_section(client, edited_lp):
    lp, nurse, _ = edited_lp
    site = lp.patient.site
    f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
    client.force_login(nurse)
    url = reverse("audit:patient_history", args=[lp.patient_id])
    assert len(client.get(url, {"section": "procedures"}).context["changes"]) == 2
    assert client.get(url, {"section": "safety"}).context["changes"] == []


def test_export_rows_for_a_study_and_date_range(edited_lp):
    lp, *_ = edited_lp
    rows = list(audit_rows(lp.patient.study, date_from=dt.date.today() - dt.timedelta(days=1)))
    corrected = [r for r in rows if r["field"] == "opening_pressure_mmh2o" and r["action"] == "changed"]
    assert corrected == [
        {
            **corrected[0],
            "old_value": "180",
            "new_value": "210",
            "user": "Chen Jing",
            "reason": "corrected from the manometer log",
            "patient": lp.patient.study_code,
        }
    ]
    assert list(audit_rows(lp.patient.study, date_to=dt.date(2000, 1, 1))) == []
    assert list(audit_rows(lp.patient.study, site_ids={-1})) == []


def test_export_download_is_logged_and_scoped(client):
    site, other = f.SiteFactory(), f.SiteFactory()
    study = f.StudyFactory(sites=[site, other])
    f.PatientFactory(study=study, site=site, study_code="OWN-1")
    f.PatientFactory(study=study, site=other, study_code="OTHER-1")
    reviewer = f.UserFactory()
    f.MembershipFactory(user=reviewer, site=site, role=Role.REVIEWER)
    client.force_login(reviewer)
    response = client.get(reverse("audit:export"), {"study": study.pk})
    body = b"".join(response.streaming_content).decode()
    patients = {row["patient"] for row in csv.DictReader(io.StringIO(body))}
    assert patients == {"OWN-1"}
    assert SecurityEvent.objects.filter(kind=SecurityEventKind.EXPORT, user=reviewer).exists()


def test_export_is_refused_to_data_entry_and_the_refusal_logged(client):
    nurse = f.UserFactory()
    f.MembershipFactory(user=nurse, role=Role.DATA_ENTRY)
    client.force_login(nurse)
    assert client.get(reverse("audit:export")).status_code == 403
    assert SecurityEvent.objects.filter(kind=SecurityEventKind.PERMISSION_DENIED, user=nurse).exists()


def test_spreadsheet_formulas_are_neutralised():
    assert spreadsheet_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert spreadsheet_safe("-5") == "'-5" and spreadsheet_safe("@SUM") == "'@SUM"
    assert spreadsheet_safe("0.45") == "0.45"


@pytest.mark.axes
def test_sign_in_failures_and_lockouts_are_security_events(client, settings):
    settings.AXES_FAILURE_LIMIT = 2
    f.UserFactory(username="lin", password="a-long-password-1")
    for _ in range(2):
        client.post(reverse("login"), {"username": "lin", "password": "wrong"})
    kinds = list(SecurityEvent.objects.filter(username="lin").values_list("kind", flat=True))
    assert kinds.count(SecurityEventKind.SIGN_IN_FAILED) == 2
    assert SecurityEventKind.LOCKED_OUT in kinds


@pytest.mark.axes
def test_successful_sign_in_is_recorded(client):
    f.UserFactory(username="lin", password="a-long-password-1")
    client.post(reverse("login"), {"username": "lin", "password": "a-long-password-1"})
    assert SecurityEvent.objects.filter(kind=SecurityEventKind.SIGN_IN, user__username="lin").exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the immutability trigger is PostgreSQL's")
def test_history_rows_cannot_be_changed_or_deleted_on_postgresql():
    patient = f.PatientFactory()
    history = Patient.history.filter(id=patient.pk)
    with pytest.raises(DatabaseError, match="cannot be changed or deleted"), transaction.atomic():
        history.update(history_change_reason="rewritten")
    with pytest.raises(DatabaseError, match="cannot be changed or deleted"), transaction.atomic():
        history.delete()
    event = SecurityEvent.objects.create(kind=SecurityEventKind.EXPORT)
    with pytest.raises(DatabaseError), transaction.atomic():
        SecurityEvent.objects.filter(pk=event.pk).update(username="x")
    assert history.get().history_change_reason is None


def test_a_long_reason_is_kept_whole_in_every_history_table():
    """Typed reasons may be 200 characters and the registry's own reasons quote them: no history
    table may cut or refuse one (simple-history's default is varchar(100), refused by PostgreSQL)."""
    from django.apps import apps
    from django.db import models as dj_models

    histories = [m for m in apps.get_models() if m.__name__.startswith("Historical")]
    assert histories
    for model in histories:
        assert isinstance(model._meta.get_field("history_change_reason"), dj_models.TextField), model.__name__
    reason = "Corrected from the source notes: " + "r" * 250
    patient = f.PatientFactory()
    patient.sex = "M" if patient.sex == "F" else "F"
    record_save(patient, actor=None, reason=reason)
    assert Patient.history.filter(id=patient.pk).latest().history_change_reason == reason


@pytest.mark.axes
def test_a_very_long_username_is_refused_and_logged_not_a_server_error(client, settings):
    """Axes (varchar 255) and the security log (150) bound what a client types; the event keeps its
    length. PostgreSQL refused such rows before, answering 500 on the sign-in page and the token API."""
    from rest_framework.test import APIClient

    settings.AXES_FAILURE_LIMIT = 2
    typed = "u" * 300
    assert client.post(reverse("login"), {"username": typed, "password": "x"}).status_code == 200
    event = SecurityEvent.objects.filter(kind=SecurityEventKind.SIGN_IN_FAILED).latest("pk")
    assert (event.username, event.detail["username_length"]) == (typed[:150], 300)
    client.post(reverse("login"), {"username": typed, "password": "x"})
    assert SecurityEvent.objects.filter(kind=SecurityEventKind.LOCKED_OUT).exists()  # still counted
    other = "v" * 300
    answer = APIClient().post("/api/auth/token/", {"username": other, "password": "x"}, format="json")
    assert answer.status_code == 400


def _patient_with_csf(site, results: int) -> Patient:
    """A patient with an NPSLE diagnosis and ``results`` LPs, each with a CSF result (whose label names
    its LP) edited once."""
    patient = f.PatientFactory(study=f.StudyFactory(sites=[site]), site=site)
    f.NpsleDiagnosisFactory(patient=patient)
    for _ in range(results):
        csf = f.CsfResultFactory(lumbar_puncture=f.LumbarPunctureFactory(patient=patient))
        csf.protein_g_per_l = Decimal("0.61")
        record_save(csf, actor=f.UserFactory(), reason="lab sheet")
    return patient


def test_the_history_page_costs_the_same_queries_at_one_csf_result_or_six(client):
    from django.test.utils import CaptureQueriesContext

    site = f.SiteFactory()
    monitor = f.UserFactory()
    f.MembershipFactory(user=monitor, site=site, role=Role.REVIEWER)
    client.force_login(monitor)
    counts, pages = [], []
    for results in (1, 6):
        patient = _patient_with_csf(site, results)
        url = reverse("audit:patient_history", args=[patient.pk])
        client.get(url)
        with CaptureQueriesContext(connection) as queries:
            page = client.get(url)
        counts.append(len(queries.captured_queries))
        pages.append((patient, page.content.decode()))
    assert counts[0] == counts[1], counts
    # The labels are the records' own, parents included.
    patient, html = pages[1]
    for lp in LumbarPuncture.objects.filter(patient=patient):
        assert f"CSF of {lp}" in html
    assert f"NPSLE diagnosis of {patient}" in html


def test_a_label_whose_parent_is_gone_falls_back_to_the_models_name():
    site = f.SiteFactory()
    patient = _patient_with_csf(site, 1)
    csf_change = next(
        c for c in patient_timeline(patient.pk, include_identifiers=True) if c.model == "csfresult"
    )
    from registry.services import record_delete

    lp = LumbarPuncture.objects.get(patient=patient)
    record_delete(lp, actor=f.UserFactory(), reason="entered twice")  # the CSF result goes with it
    after = [c for c in patient_timeline(patient.pk, include_identifiers=True) if c.model == "csfresult"]
    assert csf_change.record == f"CSF of {lp}"
    assert {c.record for c in after} == {f"CSF result #{csf_change.object_id}"}


def test_the_audit_export_reads_no_record_to_label_its_rows():
    from django.test.utils import CaptureQueriesContext

    site = f.SiteFactory()
    counts = []
    for results in (1, 6):
        patient = _patient_with_csf(site, results)
        with CaptureQueriesContext(connection) as queries:
            rows = list(audit_rows(Study.objects.get(pk=patient.study_id)))
        counts.append(len(queries.captured_queries))
        assert sum(r["model"] == "csfresult" for r in rows) >= results
    assert counts[0] == counts[1], counts


def test_a_foreign_key_shows_its_records_label_as_it_is_now():
    # Labels were kept per process (functools.lru_cache): a corrected LP went on showing its old
    # date in every CSF change that names it, until the server restarted.
    patient = _patient_with_csf(f.SiteFactory(), 1)
    lp = LumbarPuncture.objects.get(patient=patient)

    def named() -> set[str]:
        return {
            field.new
            for change in patient_timeline(patient.pk, include_identifiers=True)
            for field in change.fields
            if change.model == "csfresult" and field.field == "lumbar_puncture"
        }

    assert named() == {str(lp)}
    lp.performed_at -= dt.timedelta(days=1)
    record_save(lp, actor=f.UserFactory(), reason="date from the procedure note")
    assert named() == {str(lp)}
    assert {
        row["new_value"]
        for row in audit_rows(Study.objects.get(pk=patient.study_id))
        if row["field"] == "lumbar_puncture"
    } == {str(lp)}


def test_the_export_of_a_study_larger_than_a_statements_variable_limit(monkeypatch):
    """A study's records are named to the database in chunks, so a study with more records than
    SQLite takes variables in one statement (and PostgreSQL would parse in one list) still exports,
    with the same rows: the limit here is 40 variables, the chunk 25, the study 60 LPs and their CSF."""
    import registry.chunked

    study = f.StudyFactory()
    patients = [f.PatientFactory(study=study, site=f.SiteFactory()) for _ in range(3)]
    for i in range(60):
        lp = f.LumbarPunctureFactory(
            patient=patients[i % 3], performed_at=timezone.now() - dt.timedelta(days=i)
        )
        f.CsfResultFactory(lumbar_puncture=lp)

    def one_site(rows):
        return [row for row in rows if row["site"] in ("", patients[0].site.code)]

    monkeypatch.setattr(registry.chunked, "CHUNK", 25)
    if connection.vendor == "sqlite":
        # Set before any of these statements runs: sqlite3 keeps prepared statements, and a statement
        # prepared before the limit was lowered would not be checked against it.
        import sqlite3

        connection.ensure_connection()
        limit = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        connection.connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 40)
        try:
            with pytest.raises(DatabaseError, match="too many SQL variables"):
                list(LumbarPuncture.objects.filter(pk__in=range(41)))  # the limit holds
            chunked = list(audit_rows(study))
            chunked_one_site = list(audit_rows(study, site_ids={patients[0].site_id}))
        finally:
            connection.connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    else:
        chunked = list(audit_rows(study))
        chunked_one_site = list(audit_rows(study, site_ids={patients[0].site_id}))

    monkeypatch.setattr(registry.chunked, "CHUNK", 10_000)
    whole = list(audit_rows(study))
    assert sum(row["model"] == "csfresult" and row["field"] == "lumbar_puncture" for row in whole) == 60
    assert chunked == whole
    assert chunked_one_site == one_site(whole) and 0 < len(chunked_one_site) < len(whole)
