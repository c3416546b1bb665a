"""A smaller import file cut from an export: its first patients and every row of theirs.

Importing all 100,000 patients of the benchmark would take far longer than the rest of the run, so
the import is timed on the export's first patients (study-code order), as many as keep every table
within a number of rows. Each row names its patient by ``study_code``, so a row is kept when its
patient is; tables without that column (reference data such as dose formulations) are kept whole.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from pathlib import Path

#: Not exchange tables: the analysis dataset and its dictionary travel with an export, not an import.
NOT_IMPORTED = ("dataset.csv", "data_dictionary.csv")


def _rows(archive: zipfile.ZipFile, name: str) -> tuple[list[str], csv.reader]:
    text = io.TextIOWrapper(archive.open(name), encoding="utf-8", newline="")
    reader = csv.reader(text)
    return next(reader), reader


def _patients_within(archive: zipfile.ZipFile, tables: list[str], most_rows: int) -> set[str]:
    """The first patients (in the patients table's order) whose rows keep every table within the limit."""
    counts: dict[str, Counter[str]] = {}
    for name in tables:
        header, reader = _rows(archive, name)
        if "study_code" in header:
            column = header.index("study_code")
            counts[name] = Counter(row[column] for row in reader)
    header, reader = _rows(archive, "patients.csv")
    column = header.index("study_code")
    totals: Counter[str] = Counter()
    kept: set[str] = set()
    for row in reader:
        code = row[column]
        if any(totals[name] + table[code] > most_rows for name, table in counts.items()):
            break
        for name, table in counts.items():
            totals[name] += table[code]
        kept.add(code)
    return kept


def first_patients(export: Path, subset: Path, *, most_rows: int) -> Path:
    """Write to ``subset`` the tables of ``export`` cut to its first patients (see the module docstring)."""
    with zipfile.ZipFile(export) as archive, zipfile.ZipFile(subset, "w", zipfile.ZIP_DEFLATED) as out:
        tables = [n for n in archive.namelist() if n.endswith(".csv") and n not in NOT_IMPORTED]
        kept = _patients_within(archive, tables, most_rows)
        for name in tables:
            header, reader = _rows(archive, name)
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\r\n")
            writer.writerow(header)
            if "study_code" in header:
                column = header.index("study_code")
                writer.writerows(row for row in reader if row[column] in kept)
            else:
                writer.writerows(reader)
            out.writestr(name, buffer.getvalue())
    return subset
