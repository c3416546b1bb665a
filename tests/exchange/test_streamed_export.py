"""Exports stream: the CSV zip is made while it is sent, a chunk of patients at a time, so memory
does not grow with the study; large exports and imports run as jobs whose page leads to the result."""

import io
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from django.db import connection, transaction
from django.urls import reverse

from accounts.models import Role
from accounts.services import system_user
from analytics.deidentify import DateHandling
from demo.npsle import generate_npsle_cohort
from exchange import export, views
from exchange.export import ExportOptions, export_tables, stream_csv_zip
from jobs.models import Job, JobStatus
from registry.choices import DiseaseArea
from registry.models import Patient
from tests import factories as f

pytestmark = pytest.mark.django_db

IDENTIFIED = ExportOptions(identified=True, dates=DateHandling.EXACT, reason="streaming test")


@pytest.fixture(scope="module")
def cohorts(django_db_setup, django_db_blocker):
    """Two NPSLE studies, one three times the other's size; made once for the module (the tests only
    export them), rolled back after."""
    with django_db_blocker.unblock(), transaction.atomic():
        actor = system_user()
        made = {}
        for code, size in (("small", 60), ("large", 180)):
            study = f.study_at_demo_sites(
                code, area=DiseaseArea.NPSLE, title=code, actor=actor, reason="Test"
            )
            generate_npsle_cohort(study=study, actor=actor, patients=size, seed=7)
            made[code] = study
        yield made
        transaction.set_rollback(True)


def peak_while_streaming(study) -> tuple[int, int, int]:
    """(peak bytes allocated while exporting, bytes sent, chunks sent)."""
    tracemalloc.start()
    sent = chunks = 0
    for chunk in stream_csv_zip(
        study, export_tables(study, user=None, options=IDENTIFIED, stream=True), IDENTIFIED
    ):
        sent, chunks = sent + len(chunk), chunks + 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, sent, chunks


def test_memory_stays_flat_when_the_study_triples(cohorts, monkeypatch):
    monkeypatch.setattr(export, "PATIENTS_PER_CHUNK", 30)
    monkeypatch.setattr(export, "PATIENTS_PER_COPY", 30)
    monkeypatch.setattr(export, "ROWS_PER_CHUNK", 50)
    small_peak, small_sent, _ = peak_while_streaming(cohorts["small"])
    large_peak, large_sent, large_chunks = peak_while_streaming(cohorts["large"])
    assert large_sent > 1.7 * small_sent  # compressed, after the fixed data dictionary and ABOUT
    assert large_chunks > 30  # handed on piece by piece, not as one file
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)


def test_the_page_streams_the_csv_zip(cohorts, client):
    study = cohorts["small"]
    researcher = f.UserFactory()
    for site in study.sites.all():
        f.MembershipFactory(user=researcher, site=site, role=Role.RESEARCHER)
    client.force_login(researcher)
    response = client.post(reverse("exchange:export"), {"study": study.pk, "format": "csv", "dates": "shift"})
    assert response.status_code == 200 and response.streaming
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        patients = archive.read("patients.csv").decode().splitlines()
    assert len(patients) == 1 + 60


@pytest.mark.parametrize("fmt", ["xlsx", "sav"])
def test_other_formats_are_sent_from_a_file(cohorts, client, fmt):
    study = cohorts["small"]
    researcher = f.UserFactory()
    for site in study.sites.all():
        f.MembershipFactory(user=researcher, site=site, role=Role.RESEARCHER)
    client.force_login(researcher)
    response = client.post(reverse("exchange:export"), {"study": study.pk, "format": fmt, "dates": "days"})
    assert response.status_code == 200 and response.streaming
    assert zipfile.is_zipfile(io.BytesIO(b"".join(response.streaming_content)))


def test_a_large_export_is_a_job_whose_page_links_to_the_file(
    cohorts, client, monkeypatch, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    monkeypatch.setattr(views, "EXPORT_JOB_MIN_PATIENTS", 100)
    study = cohorts["large"]
    researcher = f.UserFactory()
    for site in study.sites.all():
        f.MembershipFactory(user=researcher, site=site, role=Role.RESEARCHER)
    client.force_login(researcher)
    response = client.post(reverse("exchange:export"), {"study": study.pk, "format": "csv", "dates": "shift"})
    job = Job.objects.get(requested_by=researcher)
    assert response.status_code == 302 and response["Location"] == reverse("jobs:detail", args=[job.pk])
    assert job.status == JobStatus.SUCCEEDED  # no broker in the tests: run in the request
    page = client.get(reverse("jobs:detail", args=[job.pk])).content.decode()
    download = reverse("exchange:export_download", args=[job.pk])
    assert download in page
    response = client.get(download)
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        assert len(archive.read("patients.csv").decode().splitlines()) == 1 + 180
    other = f.UserFactory()
    client.force_login(other)
    assert client.get(download).status_code == 404  # only the person who asked


def test_a_one_site_export_in_small_chunks_holds_only_that_sites_patients(cohorts, monkeypatch):
    """Chunks are id ranges (the dataset) and id lists written into the SQL (the tables): with chunks
    of a few patients, other sites' patients fall inside every range and must still stay out."""
    study = cohorts["small"]
    site = study.sites.order_by("code").first()
    researcher = f.UserFactory()
    f.MembershipFactory(user=researcher, site=site, role=Role.RESEARCHER)
    options = ExportOptions(dates=DateHandling.DAYS)
    at_site = set(Patient.objects.filter(study=study, site=site).values_list("study_code", flat=True))
    assert 0 < len(at_site) < Patient.objects.filter(study=study).count()

    def tables() -> dict[str, list[dict]]:
        return {
            t.name: list(t.rows) for t in export_tables(study, user=researcher, options=options, stream=True)
        }

    whole = tables()
    monkeypatch.setattr(export, "PATIENTS_PER_CHUNK", 3)
    monkeypatch.setattr(export, "DATASET_PATIENTS_PER_CHUNK", 4)
    chunked = tables()
    assert chunked == whole
    assert {row["study_code"] for row in chunked["dataset"]} == at_site
    assert len(chunked["dataset"]) == len(at_site)
    for name, rows in chunked.items():
        assert {row["study_code"] for row in rows} <= at_site, name
    assert {row["study_code"] for row in chunked["patients"]} == at_site


class _CountedFetches:
    """A cursor that records the size of each batch fetched from it."""

    def __init__(self, cursor) -> None:
        self.cursor, self.batches = cursor, []

    def fetchmany(self, size):
        rows = self.cursor.fetchmany(size)
        self.batches.append(len(rows))
        return rows

    def __getattr__(self, name):
        return getattr(self.cursor, name)


def test_the_patients_are_read_in_batches_into_columns(cohorts, monkeypatch):
    """The export's patient list is read ``PATIENTS_PER_FETCH`` rows at a time (through a server-side
    cursor on PostgreSQL; psycopg2 holds a client-side cursor's whole result) and kept as arrays,
    in study-code order as Python sorts the codes."""
    study = cohorts["small"]
    monkeypatch.setattr(export, "PATIENTS_PER_FETCH", 25)
    opened = []

    def chunked_cursor(original=connection.chunked_cursor):
        opened.append(_CountedFetches(original()))
        return opened[-1]

    monkeypatch.setattr(connection, "chunked_cursor", chunked_cursor)
    patients = export.export_patients(study, None, IDENTIFIED)
    assert len(opened) == 1 and opened[0].batches[:3] == [25, 25, 10]
    if connection.vendor == "postgresql":
        assert opened[0].cursor.cursor.name  # a named cursor: PostgreSQL keeps the rows until fetched
    codes = dict(Patient.objects.filter(study=study).values_list("study_code", "pk"))
    assert patients.ids.dtype == np.int64 and patients.study_codes.tolist() == sorted(codes)
    assert patients.ids.tolist() == [codes[code] for code in sorted(codes)]
    assert patients.site_codes == tuple(sorted(study.sites.values_list("code", flat=True)))


def test_the_same_data_give_the_same_workbook_bytes(cohorts, monkeypatch):
    """openpyxl's own save stamps the save time into docProps/core.xml and its zip members; the
    export's workbook is written with a fixed one, so an export an hour later is the same file."""

    study = cohorts["small"]

    def workbook() -> bytes:
        out = io.BytesIO()
        export.write_xlsx(study, export_tables(study, user=None, options=IDENTIFIED), IDENTIFIED, out)
        return out.getvalue()

    first = workbook()
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 3600)
    assert workbook() == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert b"2000-01-01T00:00:00Z" in archive.read("docProps/core.xml")
        assert {info.date_time for info in archive.infolist()} == {export.ZIP_TIMESTAMP}
        assert archive.testzip() is None
        assert "patients" in archive.read("xl/workbook.xml").decode()
