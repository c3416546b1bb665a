"""The exchange tables' CSV written by PostgreSQL: ``COPY (SELECT …) TO STDOUT WITH (FORMAT csv)``.

At 100,000 patients the export's rows path spent most of its time in Python: Django reading each
value (and decoding every JSON cell), the text of each cell, a dict per row, the csv module. On
PostgreSQL each chunk of patients of a table is instead one ``COPY`` whose columns are already the
texts the rows path writes (``export._layout_rows``, then ``export._csv_chunks``), rows in the same
order, so Python hands the bytes on. The rows path stays for SQLite, for the other formats and for
the de-identified patients table (the model computes its capped age).

Why the bytes are the same (``tests/exchange/test_copied_csv.py`` compares both ways):

- an empty value is NULL, which COPY writes unquoted as the csv module writes ``''`` (COPY would
  quote an empty string); otherwise both quote the values holding a comma, a quote or a newline,
  and double the quotes;
- dates ``YYYY-MM-DD``; moments in UTC to the second with ``Z``, shifted in UTC by whole days as
  adding a ``timedelta`` does; days from index between UTC dates; decimals without trailing zeros
  (``trim_scale``, as ``Decimal.normalize``); yes/no as ``1``/``0``; a link as the natural key of the
  record it names (a JSON map from its id, looked up per row);
- text a spreadsheet would run as a formula gets its apostrophe, after the rows are ordered by
  their key columns' texts (``COLLATE "C"`` compares UTF-8 bytes, i.e. the code points Python does);
- a value holding a carriage return: the chunk is read back and written by the csv module, which
  leaves it unquoted;
- JSON as ``json.dumps(…, ensure_ascii=False, sort_keys=True)``: ``{}`` and ``[]`` as they are,
  objects of strings, yes/no and nulls (and arrays of them) put together in SQL (``jsonb`` escapes a
  string as ``json`` does but orders keys by length); any other value comes marked, and Python
  decodes and encodes it again.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import io
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from django.db import connections, models
from django.db.models import F, Func

from analytics.datasets.fetch import copy_out, copy_statement
from analytics.deidentify import DateHandling
from registry.formatting import FORMULA_PREFIXES, spreadsheet_safe

from .codec import FALSE, TRUE

#: Off, every table is written by the rows path (the tests compare the two ways).
COPY_CSV = True
#: Starts a JSON cell that SQL left to Python (no text of COPY's CSV starts a JSON column with it).
MARK = "\x01"


class Kind(enum.StrEnum):
    """How a column's value becomes its text."""

    TEXT = "text"  # text, codes and whole numbers: as they are
    BOOLEAN = "boolean"
    DECIMAL = "decimal"
    DATE = "date"
    DATETIME = "datetime"
    JSON = "json"
    LINK = "link"  # a foreign key to reference data, written as that record's natural key


def kind_of(model_field: models.Field | None) -> Kind | None:
    """The column's kind, as ``export._formatter`` tells them apart; None for what only Python writes."""
    if model_field is None:
        return None
    if isinstance(model_field, models.ForeignKey):
        return Kind.LINK
    if isinstance(model_field, models.DateTimeField):
        return Kind.DATETIME
    for kind, types in (
        (Kind.DATE, models.DateField),
        (Kind.JSON, models.JSONField),
        (Kind.BOOLEAN, models.BooleanField),
        (Kind.DECIMAL, models.DecimalField),
        (Kind.TEXT, (models.CharField, models.TextField, models.IntegerField)),
    ):
        if isinstance(model_field, types):
            return kind
    return None


@dataclass(frozen=True)
class Column:
    """One column of the file after ``study_code``: where it is read (a ``values()`` path) and how."""

    path: str
    kind: Kind
    key: bool = False
    #: A link's natural keys by the linked record's id.
    links: Mapping[int, str] = field(default_factory=dict)
    #: Whether a text may start as a formula does (else SQL need not look: codes, counts).
    formula_like: bool = True


def formula_like(model_field: models.Field | None, links: Mapping[int, str]) -> bool:
    """Whether the field's text may start with a character a spreadsheet reads as a formula: not a
    code of a list that has none such, a whole number that cannot be negative, or a link's key
    that does not."""
    if model_field is None:
        return True
    starts = tuple(FORMULA_PREFIXES)
    if links:
        return any(text.startswith(starts) for text in links.values())
    if model_field.choices:
        return any(str(code).startswith(starts) for code, _ in model_field.flatchoices)
    positive = (models.PositiveIntegerField, models.PositiveSmallIntegerField, models.PositiveBigIntegerField)
    return not isinstance(model_field, positive)


@dataclass(frozen=True)
class Dates:
    """How dates are written, and each patient's shift (days) and index admission date."""

    handling: DateHandling
    shift_days: Mapping[int, int]
    index: Mapping[int, dt.date]


def usable(using: str) -> bool:
    return COPY_CSV and connections[using].vendor == "postgresql"


def csv_chunks(
    model: type[models.Model],
    owner: str,
    columns: Sequence[Column],
    chunks: Iterator[list[int]],
    dates: Dates,
) -> Iterator[bytes]:
    """The table's CSV rows (no header), one ``COPY`` per chunk of patient ids, in key order."""
    using = model._default_manager.db
    json_at = [number for number, column in enumerate(columns, start=1) if column.kind == Kind.JSON]
    for ids in chunks:
        statement = _statement(model, owner, columns, ids, dates)
        data = copy_out(connections[using], statement, options="FORMAT csv") if statement else b""
        if MARK.encode() in data or b"\r" in data:
            yield from _written_again(data, json_at)
        elif data:
            yield data


# --- the statement -------------------------------------------------------------------------


class AmongIds(Func):
    """``<patient column> IN (1, 2, …)`` with the ids written into the SQL as integers. The ``__in``
    lookup prepares each of its values through the field (about 6 µs each), 9.6 s of a
    100,000-patient export that asks for every table's rows by their patients' ids; written as
    integers they need no parameters either (SQLite limits those)."""

    output_field = models.BooleanField()

    def __init__(self, expression, *, ids: list[int]) -> None:
        super().__init__(expression)
        self.ids = [int(pk) for pk in ids]

    def as_sql(self, compiler, connection, function=None, template=None, arg_joiner=None, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        return f"{column} IN ({', '.join(map(str, self.ids or [-1]))})", tuple(params)


def _statement(
    model: type[models.Model], owner: str, columns: Sequence[Column], ids: list[int], dates: Dates
) -> str | None:
    found = model._default_manager.filter(AmongIds(F(owner or "pk"), ids=ids)).order_by()
    read = found.values(
        copy_row=F("pk"),
        copy_patient=F(owner or "pk"),
        copy_code=F(f"{owner}__study_code" if owner else "study_code"),
        **{f"copy_{number}": F(column.path) for number, column in enumerate(columns)},
    )
    inner = copy_statement(read.query.get_compiler(read.db))
    if inner is None:
        return None
    maps = _maps(read.db, columns, ids, dates)
    texts = [_text(number, column, dates) for number, column in enumerate(columns)]
    code = _formula_safe("""nullif(t."copy_code", '')""")  # the rows path tests every text
    output = [code, *(_output(text, c, dates) for text, c in zip(texts, columns, strict=True))]
    order = ['t."copy_code" COLLATE "C"']
    order += [f"coalesce({text}, '') COLLATE \"C\"" for text, c in zip(texts, columns, strict=True) if c.key]
    return (
        f"SELECT {', '.join(output)} FROM ({inner}) AS t CROSS JOIN ({maps}) AS m "
        f'ORDER BY {", ".join(order)}, t."copy_row"'
    )


def _maps(using: str, columns: Sequence[Column], ids: list[int], dates: Dates) -> str:
    """One row of JSON maps the columns look values up in: the chunk's date shifts and index dates,
    each link's natural keys."""
    maps = {
        "shift": {pk: dates.shift_days[pk] for pk in ids} if dates.handling == DateHandling.SHIFT else {},
        "index_date": (
            {pk: dates.index[pk].isoformat() for pk in ids} if dates.handling == DateHandling.DAYS else {}
        ),
    }
    maps |= {f"link_{n}": dict(c.links) for n, c in enumerate(columns) if c.kind == Kind.LINK}
    with connections[using].cursor() as cursor:
        values = [
            cursor.mogrify("%s::jsonb", [json.dumps(mapping)]).decode() + f' AS "{name}"'
            for name, mapping in maps.items()
        ]
    return f"SELECT {', '.join(values)}"


_TIMESTAMP = """'YYYY-MM-DD"T"HH24:MI:SS"Z"'"""
_SHIFT = "(m.shift ->> t.copy_patient::text)::int"
_INDEX = "(m.index_date ->> t.copy_patient::text)::date"
#: The texts a spreadsheet reads as a formula start with one of these characters.
_FORMULA = ", ".join("'" + prefix.replace("'", "''") + "'" for prefix in FORMULA_PREFIXES)
assert all(len(prefix) == 1 for prefix in FORMULA_PREFIXES)


def _text(number: int, column: Column, dates: Dates) -> str:
    """The SQL of the column's text, NULL for an empty cell (before the formula apostrophe)."""
    value, kind, handling = f't."copy_{number}"', column.kind, dates.handling
    if kind == Kind.BOOLEAN:
        return f"CASE WHEN {value} THEN '{TRUE}' WHEN NOT {value} THEN '{FALSE}' END"
    if kind == Kind.DECIMAL:
        return f"trim_scale({value})::text"
    if kind == Kind.LINK:
        return f"(m.link_{number} ->> {value}::text)"
    if kind == Kind.DATE:
        if handling == DateHandling.DAYS:
            return f"({value} - {_INDEX})::text"
        shifted = f"{value} + {_SHIFT}" if handling == DateHandling.SHIFT else value
        return f"to_char(({shifted})::timestamp, 'YYYY-MM-DD')"
    if kind == Kind.DATETIME:
        utc = f"({value} AT TIME ZONE 'UTC')"
        if handling == DateHandling.DAYS:
            return f"({utc}::date - {_INDEX})::text"
        shifted = f"{utc} + {_SHIFT} * interval '1 day'" if handling == DateHandling.SHIFT else utc
        return f"to_char({shifted}, {_TIMESTAMP})"
    if kind == Kind.JSON:
        return _json_text(value)
    return f"{value}::text"


def _json_text(value: str) -> str:
    """``json.dumps(…, ensure_ascii=False, sort_keys=True)`` of the value where SQL can write it
    (``{}``, ``[]``, an object of strings); any other value marked, for Python to write."""
    strings_only = (
        f"jsonb_typeof({value}) = 'object' AND NOT EXISTS "
        f"(SELECT FROM jsonb_each({value}) AS e WHERE jsonb_typeof(e.value) <> 'string')"
    )
    sorted_object = (
        "(SELECT '{' || string_agg(to_jsonb(e.key)::text || ': ' || e.value::text, ', ' "
        f"ORDER BY e.key COLLATE \"C\") || '}}' FROM jsonb_each({value}) AS e)"
    )
    return (
        f"CASE WHEN {value} IS NULL OR {value} = 'null'::jsonb THEN NULL "
        f"WHEN {value} IN ('{{}}'::jsonb, '[]'::jsonb) THEN {value}::text "
        f"WHEN {strings_only} THEN {sorted_object} "
        f"ELSE chr({ord(MARK)}) || {value}::text END"
    )


def _output(text: str, column: Column, dates: Dates) -> str:
    """The cell as written: empty as NULL, and a formula's apostrophe where a text may need one."""
    if column.kind in (Kind.BOOLEAN, Kind.JSON) or (
        column.kind in (Kind.DATE, Kind.DATETIME) and dates.handling != DateHandling.DAYS
    ):
        return text
    cell = f"nullif({text}, '')"
    if not column.formula_like and column.kind in (Kind.TEXT, Kind.LINK):
        return cell
    return _formula_safe(cell)


def _formula_safe(cell: str) -> str:
    """The cell with a leading apostrophe if a spreadsheet would read it as a formula."""
    return f"CASE WHEN left({cell}, 1) IN ({_FORMULA}) THEN '''' || {cell} ELSE {cell} END"


# --- what the SQL left to Python ---------------------------------------------------------------


#: Rows of a chunk read back and written again at a time (``_written_again``).
ROWS_PER_REWRITE = 2000


def _written_again(data: bytes, json_at: list[int]) -> Iterator[bytes]:
    """The chunk read back and written by the csv module, its marked JSON cells decoded and encoded
    again: as the rows path writes them. The csv module (Python 3.11) leaves a carriage return
    unquoted where COPY quotes it.

    ``ROWS_PER_REWRITE`` rows at a time, read from the bytes as they are (no copy of the text): a
    10,000-patient chunk of the planned injections (every row's proposed doses are marked) is
    11 MB of CSV, and read whole into lists of strings it was 60 MiB, the export's peak at 100,000
    patients (memray's high-water mark)."""
    rows = csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=""))
    encoded: dict[str, str] = {}  # a chunk's JSON repeats (a protocol's proposed doses): each once
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    while batch := list(itertools.islice(rows, ROWS_PER_REWRITE)):
        for row in batch:
            for number in json_at:
                text = row[number]
                if text.startswith(MARK):
                    if text not in encoded:
                        encoded[text] = _json_cell(json.loads(text[len(MARK) :]))
                    row[number] = encoded[text]
        writer.writerows(batch)
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()


def _json_cell(value) -> str:
    return "" if value is None else spreadsheet_safe(json.dumps(value, ensure_ascii=False, sort_keys=True))
