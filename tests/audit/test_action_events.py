"""Every workflow action leaves an event in the audit trail: in the patient's history and in the audit CSV.

One test per event type. Each performs the action the way the application does (services, exports,
imports), then reads the patient's history page as the site's reviewer and the study's audit export,
and checks who, what, from → to, why and, for signed steps, the meaning and the signer.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from accounts.services import system_user
from analytics.reports.definitions import report_definition_create
from audit import services as audit_services
from audit.export import audit_rows
from audit.immutability import audit_tables
from audit.models import ActionEvent, ActionEventPatient
from exchange.export import DateHandling, ExportOptions, export_record, export_tables
from exchange.importer import Importer, read_tables, sha256_of
from protocols.choices import StopReason
from protocols.selectors import next_injection
from protocols.services import course_start, course_stop, planned_injection_mark_missed
from registry.action_events import ActionKind
from registry.choices import DiseaseArea
from registry.services import record_save
from review import services
from review.models import DataQuery, QueryStatus
from review.rules import check_patient, settle
from tests import factories as f
from tests.protocols.conftest import START, give, npsle_doses

pytestmark = pytest.mark.django_db

PASSWORD = "reviewer-password-1"


@pytest.fixture
def team(client):
    site = f.SiteFactory(code="north")
    study = f.StudyFactory(code="ev", disease_area=DiseaseArea.NPSLE, sites=[site])
    nurse = f.UserFactory(first_name="Lin", last_name="Wei")
    reviewer = f.UserFactory(first_name="Chen", last_name="Jing", password=PASSWORD)
    admin = f.UserFactory(first_name="Ana", last_name="Ruiz")
    f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
    f.MembershipFactory(user=reviewer, site=site, role=Role.REVIEWER)
    f.MembershipFactory(user=admin, site=site, role=Role.STUDY_ADMIN)
    patient = f.PatientFactory(
        study=study, site=site, study_code="EV-1", index_admission_date=dt.date(2021, 2, 25)
    )
    client.force_login(reviewer)
    return {
        "site": site,
        "study": study,
        "nurse": nurse,
        "reviewer": reviewer,
        "admin": admin,
        "patient": patient,
    }


def trail(client, team, kind: ActionKind) -> tuple[list[ActionEvent], list[dict[str, str]]]:
    """The events of ``kind`` on the patient's history page (filtered by kind) and the CSV rows."""
    page = client.get(reverse("audit:patient_history", args=[team["patient"].pk]), {"kind": kind})
    assert page.status_code == 200
    events = page.context["events"]
    assert all(e.kind == kind for e in events) and not page.context["changes"], "the kind filter"
    assert kind.label in page.content.decode()
    download = client.get(reverse("audit:export"), {"study": team["study"].pk})
    rows = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    return events, [r for r in rows if r["action"] == kind.label.lower()]


def one(client, team, kind: ActionKind):
    events, rows = trail(client, team, kind)
    assert len(events) == 1 and len(rows) == 1, (events, rows)
    return events[0], rows[0]


def submitted(team, section="therapy"):
    services.section_submit(patient=team["patient"], section=section, actor=team["nurse"])


def locked(team, section="therapy"):
    submitted(team, section)
    services.section_verify(patient=team["patient"], section=section, actor=team["reviewer"])
    return services.sections_lock(
        patient=team["patient"], sections=[section], actor=team["reviewer"], password=PASSWORD
    )


def test_section_submitted(client, team):
    submitted(team)
    event, row = one(client, team, ActionKind.SECTION_SUBMITTED)
    assert (event.actor, event.section, event.old_state, event.new_state) == (
        team["nurse"],
        "therapy",
        "draft",
        "submitted",
    )
    assert (row["user"], row["patient"], row["old_value"], row["new_value"]) == (
        "Lin Wei",
        "EV-1",
        "draft",
        "submitted",
    )


def test_section_verified(client, team):
    submitted(team)
    services.section_verify(patient=team["patient"], section="therapy", actor=team["reviewer"])
    event, row = one(client, team, ActionKind.SECTION_VERIFIED)
    assert (event.actor, event.old_state, event.new_state) == (team["reviewer"], "submitted", "verified")
    assert (row["user"], row["section"]) == ("Chen Jing", "therapy")


def test_section_locked_with_its_signature(client, team):
    signature = locked(team)
    event, row = one(client, team, ActionKind.SECTION_LOCKED)
    assert (event.old_state, event.new_state, event.signer) == ("verified", "locked", "Chen Jing")
    assert event.signature_meaning == signature.get_meaning_display()
    assert row["signer"] == "Chen Jing" and "complete and accurate" in row["signature_meaning"]


def test_section_unlocked_signed_with_a_reason(client, team):
    locked(team)
    services.section_unlock(
        patient=team["patient"],
        section="therapy",
        actor=team["reviewer"],
        reason="dose typo",
        password=PASSWORD,
    )
    event, row = one(client, team, ActionKind.SECTION_UNLOCKED)
    assert (event.old_state, event.new_state, event.reason, event.signer) == (
        "locked",
        "submitted",
        "dose typo",
        "Chen Jing",
    )
    assert row["signature_meaning"] == "I unlock these data for correction." and row["reason"] == "dose typo"
    page = client.get(reverse("audit:patient_history", args=[team["patient"].pk])).content.decode()
    assert "Signed by <strong>Chen Jing</strong>: “I unlock these data for correction.”" in page


def test_query_raised_by_a_reviewer_and_by_a_rule(client, team):
    services.query_raise(
        patient=team["patient"], actor=team["reviewer"], message="Which day?", section="therapy"
    )
    f.LumbarPunctureFactory(patient=team["patient"], opening_pressure_mmh2o=450)
    check_patient(team["patient"])
    events, rows = trail(client, team, ActionKind.QUERY_RAISED)
    assert {(e.actor, e.new_state) for e in events} == {(team["reviewer"], "open"), (None, "open")}
    assert {r["user"] for r in rows} == {"Chen Jing", "system"}
    rule_event = next(e for e in events if e.actor is None)
    assert rule_event.detail["rule"] == "outlier_opening_pressure_mmh2o"
    assert rule_event.object_model == "data query" and rule_event.section == "procedures"


def test_query_answered(client, team):
    query = services.query_raise(
        patient=team["patient"], actor=team["reviewer"], message="Why?", section="therapy"
    )
    services.query_answer(query=query, actor=team["nurse"], text="Per the chart.")
    event, row = one(client, team, ActionKind.QUERY_ANSWERED)
    assert (event.actor, event.old_state, event.new_state, event.reason) == (
        team["nurse"],
        "open",
        "answered",
        "Per the chart.",
    )
    assert row["model"] == "data query" and row["object_id"] == str(query.pk)


def test_query_closed_by_a_reviewer_and_by_its_rule_when_fixed(client, team):
    query = services.query_raise(
        patient=team["patient"], actor=team["reviewer"], message="Why?", section="therapy"
    )
    services.query_close(query=query, actor=team["reviewer"], text="Fine.")
    lp = f.LumbarPunctureFactory(patient=team["patient"], opening_pressure_mmh2o=450)
    check_patient(team["patient"])
    lp.opening_pressure_mmh2o = 250
    record_save(lp, actor=team["nurse"], reason="typo")
    settle(team["patient"].pk)  # what the page answering the save does before it shows the queries
    events, rows = trail(client, team, ActionKind.QUERY_CLOSED)
    assert {(e.actor, e.old_state, e.new_state) for e in events} == {
        (team["reviewer"], "open", "closed"),
        (None, "open", "closed"),
    }
    system = next(e for e in events if e.actor is None)
    assert "no longer finds" in system.reason
    assert {r["user"] for r in rows} == {"Chen Jing", "system"}


def test_query_reopened(client, team):
    query = services.query_raise(
        patient=team["patient"], actor=team["reviewer"], message="Why?", section="therapy"
    )
    services.query_answer(query=query, actor=team["nurse"], text="Because.")
    services.query_reopen(query=query, actor=team["reviewer"], text="Which source?")
    event, row = one(client, team, ActionKind.QUERY_REOPENED)
    assert (event.old_state, event.new_state, event.reason) == ("answered", "open", "Which source?")
    assert DataQuery.objects.get().status == QueryStatus.OPEN and row["reason"] == "Which source?"


@pytest.fixture
def course(team):
    from protocols.seed import ensure_seed_protocols  # noqa: PLC0415  (only these tests need the seeds)

    protocol = ensure_seed_protocols()["npsle-pumch"]
    return course_start(
        patient=team["patient"],
        protocol=protocol,
        start_date=START,
        actor=team["nurse"],
        reason="Started per plan",
    )


def test_course_started(client, team, course):
    event, row = one(client, team, ActionKind.COURSE_STARTED)
    assert (event.actor, event.object_id, event.new_state, event.reason) == (
        team["nurse"],
        str(course.pk),
        "active",
        "Started per plan",
    )
    assert row["section"] == "procedures" and row["patient"] == "EV-1"


def test_course_stopped(client, team, course):
    course_stop(course=course, ended_on=START, stop_reason=StopReason.RECOVERED, actor=team["nurse"])
    event, row = one(client, team, ActionKind.COURSE_STOPPED)
    assert (event.old_state, event.new_state) == ("active", "stopped")
    assert row["reason"].startswith("Course stopped: Recovered")


def test_injection_missed(client, team, course):
    give(team["patient"], START, npsle_doses(), team["nurse"])
    second = next_injection(team["patient"]).injection
    planned_injection_mark_missed(
        injection=second, deviation_reason="Platelets 30 ×10⁹/L", actor=team["nurse"]
    )
    event, row = one(client, team, ActionKind.INJECTION_MISSED)
    assert (event.old_state, event.new_state, event.object_id) == ("planned", "missed", str(second.pk))
    assert "Platelets 30" in row["reason"]


def test_safety_finding_overridden(client, team):
    give(team["patient"], START, npsle_doses(), team["nurse"], pressure=60, overrides={"low_icp": "Slow tap"})
    event, row = one(client, team, ActionKind.SAFETY_OVERRIDDEN)
    assert (event.actor, event.reason, event.detail["check"]) == (team["nurse"], "Slow tap", "low_icp")
    assert (row["old_value"], row["new_value"], row["reason"]) == ("blocked", "overridden", "Slow tap")


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        (ActionKind.EXPORT, ExportOptions()),
        (
            ActionKind.IDENTIFIED_EXPORT,
            ExportOptions(identified=True, dates=DateHandling.EXACT, reason="Linkage"),
        ),
    ],
)
def test_exports_identified_and_deidentified(client, team, kind, options):
    f.PatientFactory(study=team["study"], site=team["site"], study_code="EV-2")
    tables = export_tables(team["study"], user=team["admin"], options=options)
    export_record(team["study"], tables, options, fmt="csv", user=team["admin"])
    event, row = one(client, team, kind)
    assert event.actor == team["admin"] and event.detail["patients"] == 2
    assert "patients" in event.detail["tables"] and event.covered.count() == 2
    assert row["patient"] == "" and "patients: 2" in row["detail"] and "tables: [" in row["detail"]
    assert row["field"] == "tables" and row["new_value"].startswith("2 patients: patients, ")
    assert row["reason"] == ("Linkage" if options.identified else "")


def test_an_export_covers_every_patient_written_a_batch_at_a_time(team, monkeypatch):
    """The export's event lists each exported patient, ``PATIENTS_PER_INSERT`` rows per INSERT: the
    rows of a 100,000-patient export are never all in memory at once."""
    monkeypatch.setattr(audit_services, "PATIENTS_PER_INSERT", 3)
    for number in range(2, 8):
        f.PatientFactory(study=team["study"], site=team["site"], study_code=f"EV-{number}")
    tables = export_tables(team["study"], user=team["admin"], options=ExportOptions(), stream=True)
    with CaptureQueriesContext(connection) as queries:
        export_record(team["study"], tables, ExportOptions(), fmt="csv", user=team["admin"])
    covering = ActionEventPatient._meta.db_table
    inserts = [q["sql"] for q in queries if q["sql"].startswith(f'INSERT INTO "{covering}"')]
    event = ActionEvent.objects.get(kind=ActionKind.EXPORT)
    assert len(inserts) == 3 and event.actor == team["admin"] and event.detail["patients"] == 7
    exported = team["study"].patients.values_list("pk", flat=True)
    assert sorted(event.covered.values_list("patient_id", flat=True)) == sorted(exported)


def test_import_applied_with_its_batch_and_file_hash(client, team):
    content = b"study_code,site,sex,birth_year,index_admission_date\nEV-1,north,M,1990,2021-02-25\n"
    tables, notes = read_tables("patients.csv", content)
    result = Importer(study=team["study"], actor=system_user(), as_operator=True).run(
        tables,
        dry_run=False,
        file_name="patients.csv",
        sha256=sha256_of(content),
        source_format="csv",
        notes=notes,
    )
    event, row = one(client, team, ActionKind.IMPORT_APPLIED)
    assert (event.detail["batch"], event.detail["sha256"]) == (result.batch.pk, sha256_of(content))
    assert f"batch: {result.batch.pk}" in row["detail"] and sha256_of(content) in row["detail"]


def test_import_dry_run_leaves_no_event(team):
    content = b"study_code,site,sex,birth_year,index_admission_date\nEV-1,north,M,1990,2021-02-25\n"
    tables, notes = read_tables("patients.csv", content)
    Importer(study=team["study"], actor=system_user(), as_operator=True).run(
        tables,
        dry_run=True,
        file_name="patients.csv",
        sha256=sha256_of(content),
        source_format="csv",
        notes=notes,
    )
    assert not ActionEvent.objects.filter(kind=ActionKind.IMPORT_APPLIED).exists()


def test_report_definition_saved_is_a_study_event(client, team):
    researcher = f.UserFactory(first_name="Kim", last_name="Ode")
    definition = report_definition_create(
        study=team["study"], name="Women", filters={"sex": "F"}, options={}, created_by=researcher
    )
    rows = [r for r in audit_rows(team["study"]) if r["action"] == "report definition saved"]
    assert [(r["user"], r["object_id"], r["patient"]) for r in rows] == [("Kim Ode", str(definition.pk), "")]
    assert "name: Women" in rows[0]["detail"]
    # It concerns no patient, so no patient's history lists it; a site outside the study does not see it.
    assert not client.get(
        reverse("audit:patient_history", args=[team["patient"].pk]),
        {"kind": ActionKind.REPORT_DEFINITION_SAVED},
    ).context["events"]
    assert list(audit_rows(team["study"], site_ids={-1})) == []


def test_the_history_interleaves_events_with_field_changes_newest_first(client, team):
    therapy = f.SystemicTherapyFactory(patient=team["patient"])
    submitted(team)
    therapy.agent = "methylprednisolone"
    record_save(therapy, actor=team["nurse"], reason="agent corrected")
    entries = client.get(reverse("audit:patient_history", args=[team["patient"].pk])).context["entries"]
    lines = [(e.event.kind, "") if e.event else (e.change.action, e.change.model) for e in entries]
    assert lines == [
        ("changed", "systemictherapy"),
        (ActionKind.SECTION_SUBMITTED, ""),
        ("created", "systemictherapy"),
        ("created", "patient"),
    ]
    only_changes = client.get(
        reverse("audit:patient_history", args=[team["patient"].pk]), {"kind": "changes"}
    )
    assert [e.change.action for e in only_changes.context["entries"]] == ["changed", "created", "created"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the immutability trigger is PostgreSQL's")
def test_action_events_are_append_only_like_the_history_rows(team):
    assert {"audit_actionevent", "audit_actioneventpatient"} <= set(audit_tables())
    submitted(team)
    events = ActionEvent.objects.filter(patient=team["patient"])
    with pytest.raises(DatabaseError, match="cannot be changed or deleted"), transaction.atomic():
        events.update(reason="rewritten")
    with pytest.raises(DatabaseError, match="cannot be changed or deleted"), transaction.atomic():
        events.delete()
    assert events.get().reason == ""


def test_the_export_in_chunks_of_one_patient_is_the_export_in_one(team, monkeypatch):
    """The export works out and sorts its rows a chunk of patients at a time (on disk between) and
    merges them in time order: with one patient a chunk it gives the same rows in the same order as
    with all in one — history rows of different patients interleaved, events among them, ties kept."""
    import audit.export

    other = f.PatientFactory(study=team["study"], site=team["patient"].site, study_code="EV-2")
    for patient in (team["patient"], other, team["patient"], other):
        f.SystemicTherapyFactory(patient=patient)
    submitted(team)
    record_save(
        f.LumbarPunctureFactory(patient=other), actor=team["nurse"], reason="a second look at the sheet"
    )
    whole = list(audit_rows(team["study"]))
    assert audit.export.PATIENTS_PER_CHUNK > 2
    monkeypatch.setattr(audit.export, "PATIENTS_PER_CHUNK", 1)
    assert list(audit_rows(team["study"])) == whole
    patients_in_order = [row["patient"] for row in whole if row["patient"]]
    assert patients_in_order.count("EV-1") and patients_in_order.count("EV-2")
    assert patients_in_order != sorted(patients_in_order)  # interleaved, not one patient after the other
    assert any(row["action"] == "section submitted" for row in whole)


def test_a_record_moved_to_another_patient_is_exported_once_under_its_latest(team, monkeypatch):
    import audit.export

    other = f.PatientFactory(study=team["study"], site=team["patient"].site, study_code="EV-2")
    therapy = f.SystemicTherapyFactory(patient=team["patient"])
    therapy.patient = other
    record_save(therapy, actor=team["nurse"], reason="entered under the wrong patient")
    for per_chunk in (500, 1):
        monkeypatch.setattr(audit.export, "PATIENTS_PER_CHUNK", per_chunk)
        rows = [r for r in audit_rows(team["study"]) if r["model"] == "systemictherapy"]
        moved = [r for r in rows if r["field"] == "patient"]
        assert len(moved) == 2, rows  # created under EV-1, then moved
        assert {r["patient"] for r in rows} == {"EV-2"}
        assert len({(r["changed_at_utc"], r["field"], r["action"]) for r in rows}) == len(rows)


def test_events_of_one_instant_keep_their_order_among_the_changes(team):
    """Events are read in time order as the export merges them; two of one instant come newest
    (highest id) first, as the events' own ordering lists them, and both before a field change of
    that instant."""
    instant = timezone.now()
    first, second = (
        ActionEvent.objects.create(
            kind=ActionKind.SECTION_SUBMITTED,
            occurred_at=instant,
            actor=team["nurse"],
            study_id=team["study"].pk,
            patient_id=team["patient"].pk,
            section="therapy",
            old_state="draft",
            new_state=new_state,
        )
        for new_state in ("first", "second")
    )
    rows = [r for r in audit_rows(team["study"]) if r["action"] == "section submitted"]
    assert [r["new_value"] for r in rows] == ["second", "first"]
    assert list(ActionEvent.objects.filter(pk__in=[first.pk, second.pk])) == [second, first]
