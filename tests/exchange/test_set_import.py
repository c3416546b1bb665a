"""The set-based importer: whole tables at once, all or nothing, audited, refused by locked sections."""

import gc

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.services import system_user
from exchange.importer import Importer, read_tables, sha256_of
from exchange.tableset import TableImport
from registry.choices import DiseaseArea, Section
from registry.models import LumbarPuncture, Patient
from review.models import ReviewStatus, SectionReview
from tests import factories as f

pytestmark = pytest.mark.django_db

HEADER = "study_code,site,sex,birth_year,index_admission_date\n"


def run_import(text: str, study, name: str, *, dry_run=False):
    content = text.encode()
    tables, notes = read_tables(name, content)
    return Importer(study=study, actor=system_user(), as_operator=True).run(
        tables, dry_run=dry_run, file_name=name, sha256=sha256_of(content), source_format="csv", notes=notes
    )


@pytest.fixture
def study():
    return f.StudyFactory(code="imp", disease_area=DiseaseArea.NPSLE, sites=[f.SiteFactory(code="north")])


def patients_csv(count: int, bad_line: int | None = None) -> str:
    lines = [f"P{i:04d},north,F,1980,2021-03-01" for i in range(count)]
    if bad_line is not None:
        lines[bad_line - 2] = lines[bad_line - 2].replace("2021-03-01", "2099-01-01")
    return HEADER + "\n".join(lines) + "\n"


def test_a_bad_row_in_the_middle_writes_nothing_and_is_named(study):
    result = run_import(patients_csv(500, bad_line=251), study, "patients.csv")
    assert [(i.line, i.column) for i in result.issues] == [(251, "index_admission_date")]
    assert result.issues[0].message == "2099-01-01 is in the future."  # plain text, not a list's repr
    assert not Patient.objects.exists() and not Patient.history.exists()


def test_bulk_writes_leave_one_attributed_history_row_each(study):
    result = run_import(patients_csv(300), study, "patients.csv")
    assert result.ok and result.created["patients"] == 300
    history = Patient.history.filter(study=study)
    assert history.count() == 300
    assert set(history.values_list("history_change_reason", flat=True)) == {result.batch.reason}
    assert set(history.values_list("history_user", flat=True)) == {system_user().pk}
    assert set(history.values_list("history_type", flat=True)) == {"+"}


def test_a_table_costs_a_fixed_number_of_queries(study):
    """Validating and writing a table does not query per row: 50 rows and 400 rows cost the same
    reads and updates, and the inserts go in batches (as many as the backend's parameter limit needs:
    one per table on PostgreSQL, a few on SQLite), never one per row."""
    assert run_import(patients_csv(5).replace("\nP", "\nW"), study, "patients.csv").ok  # the system user etc.
    reads, inserts = [], []
    for size, prefix in ((50, "A"), (400, "B")):
        text = patients_csv(size).replace("\nP", f"\n{prefix}")
        with CaptureQueriesContext(connection) as queries:
            assert run_import(text, study, "patients.csv").ok
        statements = [q["sql"] for q in queries.captured_queries]
        inserts.append(sum(sql.startswith("INSERT") for sql in statements))
        reads.append(len(statements) - inserts[-1])
    assert reads[0] == reads[1], reads
    assert inserts[1] <= 400 / 20, f"{inserts[1]} insert statements for 400 rows"


def lp_csv(codes, day="2021-03-05") -> str:
    lines = [f"{code},{day}T09:00:00Z,lumbar,120" for code in codes]
    return "study_code,performed_at,route,opening_pressure_mmh2o\n" + "\n".join(lines) + "\n"


def test_a_locked_section_refuses_its_rows_and_nothing_is_written(study):
    assert run_import(patients_csv(20), study, "patients.csv").ok
    locked = Patient.objects.get(study_code="P0007")
    reviewer = f.UserFactory()
    f.locked_section(locked, by=reviewer)
    codes = [f"P{i:04d}" for i in range(20)]
    result = run_import(lp_csv(codes), study, "lumbar_punctures.csv")
    assert [(i.line, i.column) for i in result.issues] == [(9, "")]
    assert "section is locked" in result.issues[0].message
    assert not LumbarPuncture.objects.exists()


def test_a_verified_section_changed_in_bulk_goes_back_to_submitted(study):
    assert run_import(patients_csv(3), study, "patients.csv").ok
    patient = Patient.objects.get(study_code="P0001")
    SectionReview.objects.create(patient=patient, section=Section.PROCEDURES, status=ReviewStatus.VERIFIED)
    result = run_import(lp_csv(["P0000", "P0001", "P0002"]), study, "lumbar_punctures.csv")
    assert result.ok and LumbarPuncture.objects.count() == 3
    assert SectionReview.objects.get(patient=patient).status == ReviewStatus.SUBMITTED
    assert LumbarPuncture.history.filter(history_change_reason=result.batch.reason).count() == 3


def test_rows_of_one_file_clash_with_each_other_as_if_saved_one_by_one(study):
    assert run_import(patients_csv(2), study, "patients.csv").ok
    text = "study_code,event_type,event_date\nP0000,last_contact,2022-01-01\nP0000,last_contact,2022-02-01\n"
    result = run_import(text, study, "follow_up_events.csv")
    assert [(i.line, i.message) for i in result.issues][0][0] == 3


def test_changed_rows_are_saved_with_their_version_and_history(study):
    assert run_import(patients_csv(3), study, "patients.csv").ok
    changed = patients_csv(3).replace("P0001,north,F", "P0001,north,M")
    result = run_import(changed, study, "patients.csv")
    assert result.changes == ["changed patients line 3: sex F → M"]
    patient = Patient.objects.get(study_code="P0001")
    assert patient.sex == "M" and patient.version > 1 and patient.history.count() == 2
    assert result.unchanged["patients"] == 2  # the other two wrote nothing


def test_an_import_of_new_records_makes_the_studys_cached_reports_stale(study):
    from analytics.reports.runner import report_run

    run_import(patients_csv(3), study, "patients.csv")
    assert not report_run(study=study, filters={}, options={})[1]
    assert report_run(study=study, filters={}, options={})[1], "nothing changed: the run is cached"
    result = run_import(HEADER + "P9000,north,F,1975,2021-04-01\n", study, "patients.csv")
    assert result.ok and result.created["patients"] == 1
    assert not report_run(study=study, filters={}, options={})[1], "the imported patient is in the next run"


def test_a_new_record_takes_its_fields_defaults_for_the_columns_a_file_leaves_out(study):
    """New records are built positionally (Django's fast path): every field the file does not give
    holds what keyword construction would have given it, and the record links to its patient."""
    assert run_import(patients_csv(3), study, "patients.csv").ok
    result = run_import(lp_csv(["P0000", "P0001"]), study, "lumbar_punctures.csv")
    assert result.ok and result.created["lumbar_punctures"] == 2
    given = {"id", "patient", "performed_at", "route", "opening_pressure_mmh2o"}
    given |= {"created_at", "updated_at", "version"}  # set by the write
    by_keyword = LumbarPuncture(patient=Patient.objects.get(study=study, study_code="P0000"))
    for puncture in LumbarPuncture.objects.filter(patient__study=study).select_related("patient"):
        assert puncture.patient.study_code in ("P0000", "P0001")
        for field in LumbarPuncture._meta.concrete_fields:
            if field.name not in given:
                assert getattr(puncture, field.attname) == getattr(by_keyword, field.attname), field.name


def test_fields_are_judged_by_column_with_django_s_own_messages_on_every_row(study):
    """Each distinct value of a column is cleaned once; a value that fails is reported on every row
    that has it, with the message ``full_clean`` gives a record built by hand, and the row between
    them with a good value passes."""
    assert run_import(patients_csv(3), study, "patients.csv").ok
    text = lp_csv(["P0000", "P0001", "P0002"]).replace(",120\n", ",12\n")
    text = text.replace("P0001,2021-03-05T09:00:00Z,lumbar,12", "P0001,2021-03-05T09:00:00Z,lumbar,120")
    result = run_import(text, study, "lumbar_punctures.csv")
    by_hand = LumbarPuncture(
        patient=Patient.objects.get(study=study, study_code="P0000"),
        performed_at=timezone.now(),
        route="lumbar",
        opening_pressure_mmh2o=12,
    )
    with pytest.raises(ValidationError) as expected:
        by_hand.full_clean(exclude=["patient"], validate_unique=False, validate_constraints=False)
    message = expected.value.message_dict["opening_pressure_mmh2o"]
    assert [(i.line, i.column, i.message) for i in result.issues] == [
        (2, "opening_pressure_mmh2o", message[0]),
        (4, "opening_pressure_mmh2o", message[0]),
    ]
    assert not LumbarPuncture.objects.filter(patient__study=study).exists()


def test_an_import_schedules_one_quality_check_of_every_patient_it_wrote(
    study, django_capture_on_commit_callbacks
):
    """The bulk write schedules its patients' checks in one go: one callback at commit, holding every
    patient the file wrote, and no other."""
    with django_capture_on_commit_callbacks() as callbacks:
        assert run_import(patients_csv(30), study, "patients.csv").ok
    checks = [c for c in callbacks if hasattr(c, "quality_patients")]
    assert len(checks) == 1
    assert checks[0].quality_patients == set(Patient.objects.filter(study=study).values_list("pk", flat=True))
    assert len(checks[0].quality_patients) == 30


def test_the_cycle_collector_is_paused_during_an_import_and_on_again_after_even_a_failure(study, monkeypatch):
    """The import runs without Python's cycle collector (its passes walked every live record for
    nothing) and leaves it on, whether the import succeeds or stops with an error."""
    seen, original = [], TableImport.run

    def run(self, rows, result):
        seen.append(gc.isenabled())
        return original(self, rows, result)

    monkeypatch.setattr(TableImport, "run", run)
    assert gc.isenabled()
    assert run_import(patients_csv(3), study, "patients.csv").ok
    assert seen == [False] and gc.isenabled()

    def fail(self, rows, result):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(TableImport, "run", fail)
    with pytest.raises(RuntimeError):
        run_import(patients_csv(3).replace("P0", "Q0"), study, "patients.csv")
    assert gc.isenabled()
