"""On PostgreSQL the exchange tables' CSV is written by COPY (``exchange.copied_csv``): the same bytes
as the rows path, in every date mode, with text, decimals, moments and JSON that could trip either."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, models, transaction

from accounts.services import system_user
from analytics.deidentify import DateHandling
from demo.common import ensure_sites_and_studies
from demo.icans import load_icans_cohort
from demo.lm import load_lm_cohort
from demo.npsle import generate_npsle_cohort
from exchange import copied_csv, export
from exchange.export import ExportOptions, export_tables, stream_csv_zip
from exchange.layout import TABLES
from registry.formatting import spreadsheet_safe
from registry.models import Patient, Study

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's"),
]

#: Text starting or holding what a spreadsheet, the CSV or COPY could trip on.
TRICKY = [
    "=1+1",
    "+",
    "-x",
    "@a",
    "\tt",
    "\rr",
    'quote " ,;',
    "new\nline",
    "back\\slash",
    "\\N",
    "é ü 中",
    "",
]
#: Missing-data codes (and other JSON) SQL writes itself, and what it leaves to Python.
JSON_VALUES = [
    {"wbc_per_ul": "ND", "protein_g_per_l": "UNK", "é": "NA", "b": 'q"\\\n\x01'},
    {"a": 1.5, "b": [1, {"y": 2, "x": None}]},
    [{"drug": "MTX", "dose_mg": 12.5}],
    "-text",
    -5,
    models.Value(None, output_field=models.JSONField()),  # JSON's null, written as an empty cell
]

OPTIONS = [
    ExportOptions(identified=True, dates=DateHandling.EXACT, reason="test"),
    ExportOptions(identified=True, dates=DateHandling.SHIFT, reason="test"),
    ExportOptions(dates=DateHandling.SHIFT),
    ExportOptions(dates=DateHandling.DAYS),
    ExportOptions(dates=DateHandling.DAYS, free_text=True),
]


@pytest.fixture(scope="module")
def studies(django_db_setup, django_db_blocker) -> Iterator[dict[str, Study]]:
    """The three demo studies (NPSLE at 60 patients) with awkward values written over some records."""
    with django_db_blocker.unblock(), transaction.atomic():
        actor = system_user()
        made = ensure_sites_and_studies(actor=actor)
        generate_npsle_cohort(study=made["npsle"], actor=actor, patients=60, seed=5)
        load_lm_cohort(study=made["lm"], actor=actor)
        load_icans_cohort(study=made["icans"], actor=actor)
        for table in TABLES:
            _awkward(table.model, table.free_text())
        first = Patient.objects.filter(study=made["npsle"]).order_by("pk").values_list("pk", flat=True)[0]
        models.QuerySet(Patient).filter(pk=first).update(study_code="-NP odd")  # a formula's start
        yield made
        transaction.set_rollback(True)


def _awkward(model: type[models.Model], free_text: tuple[str, ...]) -> None:
    """Tricky text in the free-text columns, JSON of every shape, padded decimals, and
    moments with microseconds — written past validation, as the rows path must write them too."""
    fields = {f.name: f for f in model._meta.concrete_fields}
    pks = list(model._default_manager.order_by("pk").values_list("pk", flat=True)[:24])
    for number, pk in enumerate(pks):
        changes = {
            name: f"{TRICKY[number % len(TRICKY)]}{number}"[: fields[name].max_length or None]
            for name in free_text
            if name in fields
        }
        for name, model_field in fields.items():
            if name == "missing_codes":  # the other JSON (proposed doses) the dataset reads too
                changes[name] = JSON_VALUES[number % len(JSON_VALUES)]
            elif isinstance(model_field, models.DecimalField) and number % 3 == 0:
                changes[name] = Decimal("0.500") if number % 2 else Decimal("10.00")
            elif isinstance(model_field, models.DateTimeField) and name not in ("created_at", "updated_at"):
                moment = model._default_manager.values_list(name, flat=True).get(pk=pk)
                if moment is not None:
                    changes[name] = moment + dt.timedelta(microseconds=999_999)
        for name, value in changes.items():  # past the audited manager and validation, on purpose
            try:
                with transaction.atomic():
                    models.QuerySet(model).filter(pk=pk).update(**{name: value})
            except IntegrityError:  # a constraint of the database: that value cannot be stored
                continue


def members(study: Study, options: ExportOptions) -> tuple[dict[str, bytes], int]:
    """The CSV zip's exchange tables, and how many of them PostgreSQL wrote."""
    tables = export_tables(study, user=None, options=options, stream=True)
    tables = [table for table in tables if table.name != "dataset"]  # it reads no JSON of these shapes
    content = b"".join(stream_csv_zip(study, tables, options))
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    return files, sum(table.csv_rows is not None for table in tables)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: f"{o.identified}-{o.dates}-{o.free_text}")
@pytest.mark.parametrize("code", ["npsle", "lm", "icans"])
def test_copy_writes_the_bytes_the_rows_path_writes(studies, monkeypatch, code, options):
    monkeypatch.setattr(export, "PATIENTS_PER_COPY", 7)
    monkeypatch.setattr(copied_csv, "ROWS_PER_REWRITE", 3)  # chunks read back in several batches
    copied, written_by_postgresql = members(studies[code], options)
    monkeypatch.setattr(copied_csv, "COPY_CSV", False)
    rows, none = members(studies[code], options)
    assert none == 0 and written_by_postgresql >= len(TABLES) - 2
    assert copied.keys() == rows.keys()
    for name in rows:
        assert copied[name] == rows[name], name


def test_a_chunk_left_to_python_is_written_again_a_batch_of_rows_at_a_time(studies, monkeypatch):
    """Every planned injection's proposed doses are JSON that SQL leaves to Python: each chunk of
    patients is read back and handed on ``ROWS_PER_REWRITE`` rows at a time, never whole (a
    10,000-patient chunk was 60 MiB of Python strings)."""
    monkeypatch.setattr(export, "PATIENTS_PER_COPY", 20)
    monkeypatch.setattr(copied_csv, "ROWS_PER_REWRITE", 4)
    tables = export_tables(studies["npsle"], user=None, options=OPTIONS[0], stream=True)
    planned = next(table for table in tables if table.name == "planned_injections")
    assert planned.csv_rows is not None
    rows, pieces = len(list(planned.rows)), list(planned.csv_rows())
    assert rows > 3 * 20 and len(pieces) >= rows / 4  # a piece per 4 rows, not one per 20 patients


def test_the_awkward_values_are_in_the_export(studies):
    files, _ = members(studies["npsle"], OPTIONS[0])
    cells = {
        cell
        for name, content in files.items()
        if name.endswith(".csv")
        for row in csv.reader(io.StringIO(content.decode(), newline=""))
        for cell in row
    }
    for value in JSON_VALUES[:5]:
        assert spreadsheet_safe(json.dumps(value, ensure_ascii=False, sort_keys=True)) in cells
    assert {"'=1+10", "'-x2", "new\nline7", "0.5", "10", "'-NP odd"} <= cells
