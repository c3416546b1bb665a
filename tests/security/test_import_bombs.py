"""High finding: import bombs. A 194 KB zip holding a 200 MB CSV drove the server to 11 GB; a 420 KB
workbook of 3 million rows to 16 GB. Medium: a random-bytes .xlsx, a zip without
``[Content_Types].xml`` and an XML entity bomb answered 500.

Every upload is now bounded before anything is expanded; a file over a limit, or one that cannot be
read, gets one clear message (400, or 413 for an oversized request) and nothing is written.
"""

from __future__ import annotations

import io
import os
import tracemalloc
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openpyxl import Workbook

from accounts.models import Role
from exchange.importer import ImportFileError, read_tables
from exchange.limits import ImportLimits
from exchange.models import ImportBatch
from registry.models import Patient
from tests import factories as f

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


@pytest.fixture
def admin_client(client):
    site = f.SiteFactory(code="north")
    study = f.StudyFactory(code="npsle-b", sites=[site])
    user = f.UserFactory(username="bomb-admin")
    f.MembershipFactory(user=user, site=site, role=Role.SITE_ADMIN)
    client.force_login(user)
    client.target = {"study": study.pk, "site": site.pk}
    _post(client, "warm-up.csv", b"study_code\n")  # loads the modules, so memory is measured fairly
    return client


def _post(client, name: str, content: bytes):
    return client.post(
        reverse("exchange:import"), {**client.target, "file": SimpleUploadedFile(name, content)}
    )


def _zip_bomb(member: str, megabytes: int, *, zip64: bool = True) -> bytes:
    """A zip whose one CSV expands to ``megabytes`` MB of repeated rows, written in chunks."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open(member, "w", force_zip64=zip64) as out,
    ):
        out.write(b"study_code,sex,birth_year,index_admission_date\n")
        block = b"P1,F,1990,2021-03-01\n" * (MB // 21)
        for _ in range(megabytes):
            out.write(block)
    return buffer.getvalue()


def _peak_mb(post) -> float:
    """The most memory Python allocated while the request ran (tracemalloc), in MB."""
    tracemalloc.start()
    try:
        response = post()
        return response, tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()


def test_import_zip_bomb_is_refused_before_it_is_expanded(admin_client):
    bomb = _zip_bomb("patients.csv", 200)
    assert len(bomb) < 1 * MB  # a few hundred kilobytes on the wire
    response, peak = _peak_mb(lambda: _post(admin_client, "bomb.zip", bomb))
    html = response.content.decode()
    assert response.status_code == 400
    assert "looks like a zip bomb" in html and "IMPORT_MAX_COMPRESSION_RATIO" in html
    assert peak < 20, f"{peak:.0f} MB"  # nothing near 200 MB was held
    assert not Patient.objects.exists() and not ImportBatch.objects.exists()


def test_a_member_whose_header_lies_about_its_size_is_not_expanded_beyond_it():
    """Sizes in a zip's headers are the sender's claim: forge them to 1 KB over a 5 MB member."""
    forged = bytearray(_zip_bomb("patients.csv", 5, zip64=False))
    local = forged.index(b"PK\x03\x04")
    central = forged.index(b"PK\x01\x02")
    forged[local + 22 : local + 26] = (1000).to_bytes(4, "little")
    forged[central + 24 : central + 28] = (1000).to_bytes(4, "little")
    assert zipfile.ZipFile(io.BytesIO(bytes(forged))).infolist()[0].file_size == 1000
    with pytest.raises(ImportFileError, match="damaged"):
        read_tables("bomb.zip", bytes(forged), limits=ImportLimits.for_command())


def _xlsx(rows: int) -> bytes:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("patients")
    sheet.append(["study_code", "sex", "birth_year", "index_admission_date"])
    for n in range(rows):
        sheet.append([f"P{n}", "F", 1990, "2021-03-01"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_import_workbook_with_millions_of_rows_is_refused(admin_client):
    """The finding's file: 3 million rows in a few hundred kilobytes, streamed and refused."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(_xlsx(1))) as template,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out,
    ):
        for item in template.infolist():
            if item.filename.endswith("sheet1.xml"):
                with out.open(item.filename, "w", force_zip64=True) as sheet:
                    sheet.write(
                        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
                    )
                    chunk = b"".join(
                        b'<row><c t="inlineStr"><is><t>x</t></is></c></row>' for _ in range(10_000)
                    )
                    for _ in range(300):
                        sheet.write(chunk)
                    sheet.write(b"</sheetData></worksheet>")
            else:
                out.writestr(item, template.read(item.filename))
    bomb = buffer.getvalue()
    assert len(bomb) < 1 * MB
    response, peak = _peak_mb(lambda: _post(admin_client, "rows.xlsx", bomb))
    assert response.status_code == 400
    assert "IMPORT_MAX_COMPRESSION_RATIO" in response.content.decode()
    assert peak < 20, f"{peak:.0f} MB"


def test_rows_over_the_limit_are_refused_while_streaming(settings):
    settings.IMPORT_MAX_ROWS_PER_TABLE = 50
    with pytest.raises(ImportFileError, match=r"patients: more than 50 rows.*IMPORT_MAX_ROWS_PER_TABLE"):
        read_tables("patients.xlsx", _xlsx(60), limits=ImportLimits.for_command())
    csv_content = b"study_code,sex\n" + b"".join(f"P{n},F\n".encode() for n in range(60))
    with pytest.raises(ImportFileError, match="more than 50 rows"):
        read_tables("patients.csv", csv_content, limits=ImportLimits.for_command())


def test_an_oversized_upload_is_refused_before_it_is_read(admin_client, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 100_000
    response = _post(admin_client, "patients.csv", b"study_code,sex\n" + b"P1,F\n" * 40_000)
    assert response.status_code == 413
    assert "IMPORT_MAX_UPLOAD_BYTES" in response.content.decode()
    assert not ImportBatch.objects.exists()


def test_a_large_import_on_the_page_is_sent_to_the_command(admin_client):
    rows = b"".join(f"P{n:06d},F,1990,2021-03-01\n".encode() for n in range(100_001))
    response = _post(admin_client, "patients.csv", b"study_code,sex,birth_year,index_admission_date\n" + rows)
    html = response.content.decode()
    assert response.status_code == 400
    assert "100,001 rows" in html and "python manage.py import_records" in html
    assert not Patient.objects.exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("random.xlsx", os.urandom(4096), "not an Excel workbook (it is not a zip archive)"),
        ("random.zip", os.urandom(4096), "not a zip archive"),
        ("no-types.xlsx", None, "no [Content_Types].xml"),
        ("laughs.xlsx", "entity-bomb", "The workbook cannot be read"),
        ("nul.csv", b"study_code,sex\nP1,F\x00\n", ""),
        ("long-field.csv", b"study_code,sex\n" + b'"' + b"x" * 200_000 + b'",F\n', "cannot be read"),
        ("latin1.csv", "study_code,sex\nP\xe9,F\n".encode("latin-1"), "not UTF-8 text"),
        ("ragged.csv", b"study_code,sex\nP1,F,extra\n", "more values than the header"),
        ("short.csv", b"study_code,sex,birth_year\nP1,F\n", "fewer values than the header"),
    ],
)
def test_an_unreadable_file_is_a_clear_400_not_a_server_error(admin_client, name, content, message):
    if content is None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("xl/workbook.xml", "<workbook/>")
        content = buffer.getvalue()
    elif content == "entity-bomb":
        content = _entity_bomb()
    response = _post(admin_client, name, content)
    assert response.status_code == 400, response.content[:500]
    assert message in response.content.decode()
    assert not Patient.objects.exists()


def _entity_bomb() -> bytes:
    """A real workbook whose sheet XML carries the 'billion laughs' entity expansion."""
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">'.encode()
            for n in range(1, 10)
        )
        + b']><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        b'<row><c t="inlineStr"><is><t>&lol9;</t></is></c></row></sheetData></worksheet>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(_xlsx(1))) as template, zipfile.ZipFile(buffer, "w") as out:
        for item in template.infolist():
            out.writestr(
                item, laughs if item.filename.endswith("sheet1.xml") else template.read(item.filename)
            )
    return buffer.getvalue()
