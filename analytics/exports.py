"""Report downloads: self-contained HTML, PDF, an XLSX workbook of every table, JSON, the dataset.

Every export reads a stored ``ReportRun``, so a download shows exactly the numbers of the page.
Text cells of spreadsheets (XLSX and CSV) that start with =, +, - or @ get a leading apostrophe,
so a spreadsheet program shows them as text instead of running them as formulas.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterable
from typing import Any, cast

import pandas as pd
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from analytics.datasets import Variable
from analytics.models import ReportRun
from analytics.reports.display import display_report
from analytics.reports.runner import report_class
from registry.formatting import spreadsheet_safe

SVG_PROLOG = '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def svg_document(svg: str) -> str:
    """A stored (inline) figure as a stand-alone .svg file."""
    return SVG_PROLOG + svg


# --- HTML and PDF -----------------------------------------------------------------------------------


def report_html(run: ReportRun, *, name: str, images: bool = False) -> str:
    """The whole report as one HTML file: CSS and SVG inline, no external URL, no script.

    ``images`` embeds each figure as a data-URI image instead of an ``<svg>`` element (for the PDF).
    """
    stylesheet_path = cast(str, finders.find("css/reports.css"))  # the app's own static file
    with open(stylesheet_path, encoding="utf-8") as stylesheet:
        css = stylesheet.read()
    context = {
        "report": display_report(run, report_class(run.study)),
        "name": name,
        "css": css,
        "images": images,
    }
    return render_to_string("reports/export.html", context)


def report_pdf(run: ReportRun, *, name: str) -> bytes:
    """The HTML export printed to A4 by WeasyPrint, figures as SVG images (vector, not bitmaps)."""
    from weasyprint import HTML  # imported here: loading pango costs time the pages do not need

    return HTML(string=report_html(run, name=name, images=True)).write_pdf()


# --- JSON -------------------------------------------------------------------------------------------


def report_json(run: ReportRun) -> str:
    """The numbers (stable across runs of the same data) and, apart, when and how they were computed."""
    document = dict(run.numbers) | {
        "run": {
            "computed_at": run.computed_at.isoformat(),
            "duration_ms": run.duration_ms,
            "fingerprint": run.fingerprint,
        }
    }
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# --- XLSX -------------------------------------------------------------------------------------------


def _sheet_title(index: int, title: str, used: set[str]) -> str:
    base = re.sub(r"[\[\]:*?/\\]", " ", f"{index:02d} {title}")[:31].strip()
    name, n = base, 2
    while name in used:
        name = f"{base[:28]}~{n}"
        n += 1
    used.add(name)
    return name


def _header(column: dict[str, Any]) -> str:
    label = column["label"]
    return f"{label} lower" if column["kind"] == "lower" else label


def _cell(value: Any, column: dict[str, Any]) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool) and column["kind"] != "text":
        return value * column["scale"] if column["scale"] != 1 else value
    return spreadsheet_safe(value)


def report_xlsx(run: ReportRun, *, name: str) -> bytes:
    """A Contents sheet, then one sheet per table with every column (hidden ones too) as numbers."""
    workbook = Workbook()
    contents = workbook.active
    contents.title = "Contents"
    numbers = run.numbers
    contents.append([spreadsheet_safe(numbers["report"]["title"])])
    contents.append([spreadsheet_safe(name)])
    contents.append([f"Computed {run.computed_at:%Y-%m-%d %H:%M %Z} from {run.n_records} patients"])
    contents.append([])
    contents.append(["Sheet", "Section", "Table", "Key"])
    contents["A1"].font = Font(bold=True, size=13)
    for cell in contents[5]:
        cell.font = Font(bold=True)
    used: set[str] = {"Contents"}
    index = 0
    for section in numbers["sections"]:
        for table in section["tables"]:
            index += 1
            sheet = workbook.create_sheet(_sheet_title(index, table["title"], used))
            contents.append([sheet.title, section["title"], table["title"], table["key"]])
            _write_table(sheet, table)
    for column, width in zip("ABCD", (34, 48, 60, 34), strict=True):
        contents.column_dimensions[column].width = width
    workbook.properties.title = numbers["report"]["title"]
    workbook.properties.subject = name
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _write_table(sheet, table: dict[str, Any]) -> None:
    columns = table["columns"]
    sheet.append([_header(column) for column in columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="EEF3F8")
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for row in table["rows"]:
        sheet.append([_cell(row.get(column["key"]), column) for column in columns])
    for note in table["notes"]:
        sheet.append([])
        sheet.append([spreadsheet_safe(note)])
    sheet.freeze_panes = "A2"
    for position, column in enumerate(columns, start=1):
        width = 32 if column["kind"] == "text" else 13
        sheet.column_dimensions[get_column_letter(position)].width = width


# --- the analysis dataset ---------------------------------------------------------------------------


def _csv(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([spreadsheet_safe(value) for value in row] for row in rows)
    return buffer.getvalue()


def dataset_zip(frame: pd.DataFrame, dictionary: Iterable[Variable]) -> bytes:
    """dataset.csv (one row per patient, blank where missing) and data_dictionary.csv, zipped."""
    values = frame.astype(object).where(frame.notna(), "")
    dataset = _csv(frame.columns, values.itertuples(index=False, name=None))
    variables = _csv(
        ["name", "label", "unit", "derivation"], ((v.name, v.label, v.unit, v.derivation) for v in dictionary)
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("dataset.csv", dataset)
        archive.writestr("data_dictionary.csv", variables)
    return buffer.getvalue()
