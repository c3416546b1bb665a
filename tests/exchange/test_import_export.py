"""Import and export: round trip, dry runs, all-or-nothing, idempotence, de-identification, formats."""

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import pyreadstat
import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.models import Role
from accounts.services import system_user
from analytics.deidentify import AGE_CAP_YEARS, DateHandling, date_shift_days
from audit.models import SecurityEvent, SecurityEventKind
from demo.common import ensure_sites_and_studies
from demo.icans import load_icans_cohort
from demo.lm import load_lm_cohort
from demo.npsle import generate_npsle_cohort
from exchange.export import (
    ExportOptions,
    ExportRefused,
    export_tables,
    stream_csv_zip,
    to_statistics_zip,
)
from exchange.importer import Importer, read_tables, sha256_of
from exchange.models import ImportBatch, ImportStatus
from exchange.redcap import RedcapMappingError, redcap_tables
from protocols.models import Course, PlannedInjection, SafetyOverride
from registry.choices import DiseaseArea
from registry.models import LumbarPuncture, Patient, Study
from registry.services import record_save
from tests import factories as f

pytestmark = pytest.mark.django_db

IDENTIFIED = ExportOptions(identified=True, dates=DateHandling.EXACT, reason="round trip test")
EXAMPLES = Path(__file__).resolve().parents[2] / "exchange" / "examples" / "redcap"


def to_csv_zip(study, tables, options) -> bytes:
    return b"".join(stream_csv_zip(study, tables, options))


def files(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rows(content: bytes, name: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(files(content)[name].decode())))


def run_import(content: bytes, study, *, dry_run=False, name="export.zip", site=None, user=None):
    tables, notes = read_tables(name, content)
    return Importer(study=study, actor=user or system_user(), site=site, as_operator=user is None).run(
        tables, dry_run=dry_run, file_name=name, sha256=sha256_of(content), source_format="zip", notes=notes
    )


@pytest.fixture(scope="class")
def demo(django_db_setup, django_db_blocker):
    """25 NPSLE patients and the ICANS cohort, built once for the class of tests that read them, in a
    transaction rolled back after its last test (each test's own writes are rolled back after it, as
    always). Built per test it cost ~3 s of setup a test, 9 times; the tests outside the class must
    not see these studies, hence a class and not the module."""
    from django.db import transaction

    with django_db_blocker.unblock(), transaction.atomic():
        actor = system_user()
        studies = ensure_sites_and_studies(actor=actor)
        generate_npsle_cohort(study=studies["npsle"], actor=actor, patients=25, seed=7)
        load_icans_cohort(study=studies["icans"], actor=actor)
        yield studies
        transaction.set_rollback(True)


def empty_copy(study: Study) -> Study:
    """An empty study at the same sites: the 'empty database' the round trip imports into."""
    copy = Study.objects.create(code=f"{study.code}-copy", disease_area=study.disease_area, title="copy")
    copy.sites.set(study.sites.all())
    return copy


def test_dry_run_reports_per_row_per_field_errors_and_writes_nothing():
    study = f.StudyFactory(code="imp", sites=[f.SiteFactory(code="north")])
    content = (
        b"study_code,site,sex,birth_year,index_admission_date\n"
        b"P1,north,F,1990,2021-03-01\n"
        b"P2,north,X,1990,2021-13-01\n"
        b"P3,south,F,abc,2021-03-01\n"
    )
    result = run_import(content, study, dry_run=True, name="patients.csv")
    issues = {(i.line, i.column) for i in result.issues}
    assert {(3, "sex"), (3, "index_admission_date"), (4, "site"), (4, "birth_year")} <= issues
    assert result.created["patients"] == 1  # what line 2 would do
    assert not Patient.objects.exists()
    assert ImportBatch.objects.get().status == ImportStatus.DRY_RUN


def test_a_real_run_is_all_or_nothing():
    study = f.StudyFactory(code="imp", sites=[f.SiteFactory(code="north")])
    content = b"study_code,site,sex,birth_year,index_admission_date\nP1,north,F,1990,2021-03-01\nP2,north,F,1990,2099-01-01\n"
    result = run_import(content, study, name="patients.csv")
    assert [(i.line, i.column) for i in result.issues] == [(3, "index_admission_date")]
    assert not Patient.objects.exists()
    assert ImportBatch.objects.get().status == ImportStatus.REFUSED


def test_changes_are_attributed_to_the_batch_and_listed_with_old_and_new_values():
    study = f.StudyFactory(code="imp", sites=[f.SiteFactory(code="north")])
    first = b"study_code,site,sex,birth_year,index_admission_date\nP1,north,F,1990,2021-03-01\n"
    run_import(first, study, name="patients.csv")
    second = b"study_code,site,sex,birth_year,index_admission_date\nP1,north,M,1990,2021-03-01\n"
    result = run_import(second, study, name="patients.csv")
    assert result.changes == ["changed patients line 2: sex F → M"]
    batch = result.batch
    assert batch.file_sha256 == sha256_of(second) and batch.status == ImportStatus.APPLIED
    assert Patient.objects.get().history.latest().history_change_reason == batch.reason


def test_unknown_columns_and_tables_are_refused_not_dropped():
    study = f.StudyFactory(code="imp", sites=[f.SiteFactory(code="north")])
    content = (
        b"study_code,site,sex,birth_year,index_admission_date,shoe_size\nP1,north,F,1990,2021-03-01,39\n"
    )
    result = run_import(content, study, name="patients.csv")
    assert "unknown column(s) shoe_size" in str(result.issues[0])
    with pytest.raises(ValueError, match="Unknown table"):
        read_tables("lab_values.csv", b"study_code\nP1\n")


def test_spreadsheet_formulas_are_escaped_and_survive_a_round_trip():
    study = f.StudyFactory(code="imp", sites=[f.SiteFactory(code="north")])
    therapy = f.SystemicTherapyFactory(
        patient=f.PatientFactory(study=study, site=study.sites.get()), agent='=HYPERLINK("x")'
    )
    content = to_csv_zip(study, export_tables(study, user=None, options=IDENTIFIED), IDENTIFIED)
    assert rows(content, "systemic_therapies.csv")[0]["agent"] == '\'=HYPERLINK("x")'
    copy = empty_copy(study)
    assert run_import(content, copy).ok
    assert copy.patients.get().systemic_therapies.get().agent == therapy.agent


def test_redcap_mapping_must_cover_every_code():
    mapping = (EXAMPLES / "mapping.json").read_text().replace('"2": "M"', '"9": "M"')
    with pytest.raises(RedcapMappingError, match="codes 2 of sex are not mapped"):
        redcap_tables(
            (EXAMPLES / "records.csv").read_bytes(),
            (EXAMPLES / "data_dictionary.csv").read_bytes(),
            mapping.encode(),
        )


def test_import_command_dry_run_and_apply(tmp_path):
    study = f.StudyFactory(code="imp", sites=[f.SiteFactory(code="north")])
    path = tmp_path / "patients.csv"
    path.write_text("study_code,site,sex,birth_year,index_admission_date\nP1,north,F,1990,2021-03-01\n")
    out = io.StringIO()
    call_command("import_records", str(path), study="imp", dry_run=True, stdout=out)
    assert "dry run: nothing was written" in out.getvalue() and not Patient.objects.exists()
    call_command("import_records", str(path), study="imp", stdout=io.StringIO())
    assert Patient.objects.get().study == study


def test_the_upload_page_checks_first_then_applies(client):
    site = f.SiteFactory(code="north")
    study = f.StudyFactory(code="imp", disease_area=DiseaseArea.NPSLE, sites=[site])
    admin = f.UserFactory()
    f.MembershipFactory(user=admin, site=site, role=Role.SITE_ADMIN)
    client.force_login(admin)
    upload = io.BytesIO(b"study_code,site,sex,birth_year,index_admission_date\nP1,north,F,1990,2021-03-01\n")
    upload.name = "patients.csv"
    response = client.post(reverse("exchange:import"), {"study": study.pk, "site": site.pk, "file": upload})
    batch = response.context["batch"]
    assert batch.dry_run and "Apply this import" in response.content.decode() and not Patient.objects.exists()
    response = client.post(reverse("exchange:import_apply", args=[batch.pk]))
    assert response.context["batch"].status == ImportStatus.APPLIED and Patient.objects.count() == 1
    nurse = f.UserFactory()
    f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
    client.force_login(nurse)
    assert client.get(reverse("exchange:import")).status_code == 403


class TestTheDemoStudies:
    """Exports, round trips and labels of the demo studies (the class-scoped ``demo`` fixture)."""

    @pytest.mark.parametrize("code", ["npsle", "icans", "lm"])
    def test_export_import_export_gives_identical_files(self, demo, code):
        study = demo[code]
        if code == "lm":
            load_lm_cohort(study=study, actor=system_user())
        first = files(to_csv_zip(study, export_tables(study, user=None, options=IDENTIFIED), IDENTIFIED))
        copy = empty_copy(study)
        result = run_import(
            to_csv_zip(study, export_tables(study, user=None, options=IDENTIFIED), IDENTIFIED), copy
        )
        assert result.ok, result.issues[:5]
        second = files(to_csv_zip(copy, export_tables(copy, user=None, options=IDENTIFIED), IDENTIFIED))
        assert set(first) == set(second)
        for name in first:
            if name != "ABOUT.txt":  # names the study, whose code differs here
                assert first[name] == second[name], name
        assert Patient.objects.filter(study=copy).count() == Patient.objects.filter(study=study).count()
        # The demo LPs follow their protocol: the courses, their plans and overrides travel too.
        copied_courses = Course.objects.filter(patient__study=copy)
        assert copied_courses.count() == Course.objects.filter(patient__study=study).count() > 0
        assert PlannedInjection.objects.filter(
            course__in=copied_courses, lumbar_puncture__isnull=False
        ).count() == (
            PlannedInjection.objects.filter(
                course__patient__study=study, lumbar_puncture__isnull=False
            ).count()
        )
        if code == "lm":
            assert (
                SafetyOverride.objects.filter(lumbar_puncture__patient__study=copy).count()
                == (SafetyOverride.objects.filter(lumbar_puncture__patient__study=study).count())
                > 0
            )

    def test_course_rows_name_their_protocol_phase_and_lp_or_get_a_field_error(self, demo):
        study = demo["icans"]
        content = to_csv_zip(study, export_tables(study, user=None, options=IDENTIFIED), IDENTIFIED)
        tables = files(content)
        assert rows(content, "courses.csv")[0]["protocol"] == "icans-idm:1"
        injections = rows(content, "planned_injections.csv")
        injections[0]["phase_number"] = "9"
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(injections[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(injections)
        broken = dict(tables)
        broken["planned_injections.csv"] = out.getvalue().encode()
        head, _, last = (
            tables["courses.csv"].rstrip(b"\n").rpartition(b"\n")
        )  # the first row keeps its protocol
        broken["courses.csv"] = head + b"\n" + last.replace(b"icans-idm:1", b"icans-idm:7") + b"\n"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, content in broken.items():
                archive.writestr(name, content)
        result = run_import(buffer.getvalue(), empty_copy(study), dry_run=True)
        issues = {(i.table, i.column): i.message for i in result.issues}
        assert "no protocol 'icans-idm:7'" in issues[("courses", "protocol")]
        assert "no phase '9'" in issues[("planned_injections", "phase_number")]
        assert not Course.objects.filter(patient__study__code="icans-copy").exists()

    def test_reimporting_the_same_file_changes_nothing(self, demo):
        study = demo["icans"]
        content = to_csv_zip(study, export_tables(study, user=None, options=IDENTIFIED), IDENTIFIED)
        history_before = LumbarPuncture.history.count()
        result = run_import(content, study)
        assert result.ok and not result.created and not result.changed
        assert sum(result.unchanged.values()) > 100
        assert LumbarPuncture.history.count() == history_before

    def test_deidentified_export(self, demo):
        study = demo["icans"]
        patient = Patient.objects.filter(study=study).order_by("study_code").first()
        patient.birth_date, patient.birth_year = dt.date(1925, 1, 1), 1925
        record_save(patient, actor=system_user(), reason="test: an old patient")
        shifted = export_tables(study, user=None, options=ExportOptions())
        exact = export_tables(study, user=None, options=IDENTIFIED)
        names = [t.name for t in shifted]
        assert "patient_identifiers" not in names and "patient_identifiers" in [t.name for t in exact]
        patients = next(t for t in shifted if t.name == "patients")
        assert "birth_date" not in patients.columns and "birth_year" not in patients.columns
        old = next(r for r in patients.rows if r["study_code"] == patient.study_code)
        assert old["age_at_index"] == str(AGE_CAP_YEARS)
        # every date of a patient moves by the same secret offset: intervals survive, dates do not
        # (row by row: a set comparison failed whenever an offset equalled the gap between two daily LPs)
        pks = dict(Patient.objects.filter(study=study).values_list("study_code", "pk"))
        lp_rows = [
            next(t for t in tables if t.name == "lumbar_punctures").rows for tables in (shifted, exact)
        ]
        assert lp_rows[0]
        for moved, original in zip(*lp_rows, strict=True):
            assert moved["study_code"] == original["study_code"]
            offset = dt.timedelta(days=date_shift_days(study.code, pks[moved["study_code"]]))
            assert offset != dt.timedelta(0)
            assert (
                dt.datetime.fromisoformat(moved["performed_at"])
                - dt.datetime.fromisoformat(original["performed_at"])
                == offset
            )
        index = {r["study_code"]: dt.date.fromisoformat(r["index_admission_date"]) for r in patients.rows}
        index_exact = {
            r["study_code"]: dt.date.fromisoformat(r["index_admission_date"])
            for r in next(t for t in exact if t.name == "patients").rows
        }
        for code, day in index.items():
            events_shift = [
                r
                for r in next(t for t in shifted if t.name == "follow_up_events").rows
                if r["study_code"] == code
            ]
            events_exact = [
                r
                for r in next(t for t in exact if t.name == "follow_up_events").rows
                if r["study_code"] == code
            ]
            for a, b in zip(events_shift, events_exact, strict=True):
                assert (dt.date.fromisoformat(a["event_date"]) - day) == (
                    dt.date.fromisoformat(b["event_date"]) - index_exact[code]
                )
        days = export_tables(study, user=None, options=ExportOptions(dates=DateHandling.DAYS))
        assert {r["index_admission_date"] for r in next(t for t in days if t.name == "patients").rows} == {
            "0"
        }
        assert "notes" not in next(t for t in shifted if t.name == "response_assessments").columns

    def test_a_deidentified_export_cannot_be_imported(self, demo):
        study = demo["icans"]
        content = to_csv_zip(study, export_tables(study, user=None, options=ExportOptions()), ExportOptions())
        result = run_import(content, empty_copy(study))
        assert any(i.column == "age_at_index" for i in result.issues)

    def test_researchers_get_deidentified_exports_only(self, demo, client):
        researcher = f.UserFactory()
        f.MembershipFactory(user=researcher, site=demo["icans"].sites.get(), role=Role.RESEARCHER)
        with pytest.raises(ExportRefused):
            export_tables(demo["icans"], user=researcher, options=IDENTIFIED)
        client.force_login(researcher)
        form = client.get(reverse("exchange:export")).context["form"]
        assert "identified" not in form.fields
        response = client.post(
            reverse("exchange:export"), {"study": demo["icans"].pk, "format": "csv", "dates": "shift"}
        )
        assert response.status_code == 200 and response["Content-Disposition"].endswith(
            'icans-deidentified.csv.zip"'
        )
        assert response.streaming  # the CSV zip is streamed as it is made
        assert "patient_identifiers.csv" not in files(b"".join(response.streaming_content))
        event = SecurityEvent.objects.get(kind=SecurityEventKind.EXPORT, user=researcher)
        assert event.detail["identified"] is False and event.detail["patients"] == 13

    @pytest.mark.parametrize("kind", ["sav", "dta"])
    def test_spss_and_stata_files_carry_variable_and_value_labels(self, demo, kind, tmp_path):
        study = demo["icans"]
        tables = export_tables(study, user=None, options=ExportOptions())
        archive = files(to_statistics_zip(study, tables, ExportOptions(), kind))
        path = tmp_path / f"patients.{kind}"
        path.write_bytes(archive[f"patients.{kind}"])
        reader = pyreadstat.read_sav if kind == "sav" else pyreadstat.read_dta
        frame, meta = reader(str(path))
        assert len(frame) == 13
        assert meta.column_names_to_labels["sex"] == "sex"
        assert set(meta.variable_value_labels["sex"].values()) == {"Female", "Male"}
        assert (
            str(frame["index_admission_date"].dtype).startswith("datetime")
            or frame["index_admission_date"].dtype == object
        )

    def test_redcap_export_through_the_mapping(self, demo):
        tables, notes = redcap_tables(
            (EXAMPLES / "records.csv").read_bytes(),
            (EXAMPLES / "data_dictionary.csv").read_bytes(),
            (EXAMPLES / "mapping.json").read_bytes(),
        )
        result = Importer(study=demo["npsle"], actor=system_user(), as_operator=True).run(
            tables,
            dry_run=False,
            file_name="records.csv",
            sha256="0" * 64,
            source_format="redcap",
            notes=notes,
        )
        assert result.ok, result.issues
        patient = Patient.objects.get(study=demo["npsle"], study_code="RC-101")
        lp = patient.lumbar_punctures.order_by("performed_at").first()
        assert lp.performed_at == dt.datetime(2021, 3, 5, 1, 30, tzinfo=dt.UTC)  # 09:30 at +08:00
        assert sorted(lp.doses.values_list("drug", flat=True)) == ["dexamethasone", "methotrexate"]
        assert Patient.objects.get(study_code="RC-102").lumbar_punctures.get().doses.count() == 1
