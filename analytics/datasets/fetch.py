"""A queryset's values as a DataFrame: rows through the ORM, or, on PostgreSQL, columns through COPY.

At 100,000 NPSLE patients the dataset reads 1.9 million rows; psycopg2 building them as Python
tuples (0.6 million of them time-zone-aware datetimes) and Django iterating them cost 3.8 s of the
5 s of CPU ``build_dataset`` took (profiled 2026-12-05). On PostgreSQL the statement the ORM
compiles — its joins, filters and the caller's site scope unchanged — runs instead as
``COPY (…) TO STDOUT`` and ``pandas.read_csv`` parses each column at once.

Both ways give the same frame, column for column and dtype for dtype
(``tests/analytics/test_dataset_fetch.py``): what pandas makes of the rows, except that decimal
columns are float64 (NaN when missing) rather than ``Decimal`` objects, which every derivation
turned into floats anyway. Elsewhere (SQLite), or when a column's value is one Django converts
after reading (JSON), the rows are read.

Columns whose values repeat — coded choices, dates, yes/no — are read as categories: each distinct
text is made (and each date parsed) once, then spread by its codes (the dates alone went from 0.16
to 0.02 s of CPU at 100,000 patients). Nearly unique values (times, study codes, plain text) are
read as text: as categories they cost three times as much.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import Field, ForeignKey

#: Off, every query is read as rows (the tests compare the two ways).
COPY_FETCH = True
#: COPY's text format writes NULL as \N and escapes a backslash in a value as \\, so the two never
#: meet; tabs and newlines in a value are escaped too, so a row is one line.
NULL = "\\N"
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}

NUMBERS = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
        "PositiveBigIntegerField",
        "FloatField",
    }
)
TEXTS = frozenset({"CharField", "TextField", "SlugField", "EmailField", "URLField"})
_KINDS = {
    "DecimalField": "decimal",
    "BooleanField": "boolean",
    "DateField": "date",
    "DateTimeField": "datetime",
}
#: How read_csv reads each kind of column: numbers as it infers them (int64, or float64 with a
#: missing value), decimals as floats, repeating values as categories, the rest as text.
_READ_AS: dict[str, object] = {
    "decimal": "float64",
    "code": "category",
    "boolean": "category",
    "date": "category",
    "text": object,
    "datetime": object,
}


def values_frame(queryset, names: list[str]) -> pd.DataFrame:
    """The rows of a ``values_list()`` queryset as a frame with these column names."""
    compiler = queryset.query.get_compiler(queryset.db)
    compiler.setup_query()
    kinds = [_kind(expression.output_field) for expression, _, _ in compiler.select]
    if COPY_FETCH and connections[queryset.db].vendor == "postgresql" and _copyable(compiler, kinds):
        frame = _copied(compiler, names, kinds)
    else:
        frame = pd.DataFrame(list(queryset), columns=names)
    for name, kind in zip(names, kinds, strict=False):
        if kind == "decimal":
            frame[name] = frame[name].astype(float)
    return frame


def _kind(field: Field) -> str | None:
    """What a column holds, as far as reading it goes; None for what only the rows read."""
    while isinstance(field, ForeignKey):  # a foreign key holds its target's value
        field = field.target_field
    internal = field.get_internal_type()
    if internal in TEXTS:
        return "code" if field.choices else "text"
    return "number" if internal in NUMBERS else _KINDS.get(internal)


def _copyable(compiler, kinds: list[str | None]) -> bool:
    """Every column is of a kind read from COPY's text, and Django converts none after reading."""
    expressions = [expression for expression, _, _ in compiler.select]
    return None not in kinds and not compiler.get_converters(expressions)


def _copied(compiler, names: list[str], kinds: list) -> pd.DataFrame:
    data = _copy_out(compiler)
    if not data:
        return pd.DataFrame([], columns=names)
    # The rows hold the statement's columns in order; any beyond the names (an ordering the statement
    # had to select) the rows leave out too.
    selected = [*names, *(f"_ordering_{n}" for n in range(len(names), len(kinds)))]
    read = pd.read_csv(
        io.BytesIO(data),
        sep="\t",
        header=None,
        names=selected,
        quoting=csv.QUOTE_NONE,
        keep_default_na=False,
        na_values=dict.fromkeys(selected, [NULL]),
        dtype={n: _READ_AS[kind] for n, kind in zip(selected, kinds, strict=True) if kind in _READ_AS},
        skip_blank_lines=False,
        float_precision="round_trip",  # correctly rounded, as Python's float() of the text
        encoding="utf-8",
    )
    missing = {name: read[name].isna().to_numpy() for name in selected}
    # Each NULL is one backslash (\N); a backslash more belongs to an escape in some value.
    escaped = data.count(b"\\") != sum(int(mask.sum()) for mask in missing.values())
    columns = {}
    for name, kind in zip(names, kinds, strict=False):
        values = _unescaped(read[name]) if escaped and kind == "text" else read[name]
        columns[name] = _COLUMNS[kind](values, missing[name])
    return pd.DataFrame(columns)


def _copy_out(compiler) -> bytes:
    """The statement's rows in COPY's text format (nothing when the statement can match no row)."""
    statement = copy_statement(compiler)
    return b"" if statement is None else copy_out(compiler.connection, statement)


def copy_statement(compiler) -> str | None:
    """The compiled statement with its parameters written in, as COPY takes it (it has no
    parameters of its own); None when the statement can match no row."""
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return None
    with compiler.connection.cursor() as cursor:
        return cursor.mogrify(sql, params).decode()


def copy_out(connection, statement: str, *, options: str = "") -> bytes:
    """``COPY (statement) TO STDOUT``, with COPY's ``options`` (e.g. ``FORMAT csv``) if any.

    JIT compilation is off on the registry's connections (``config/settings.py``): compiling a
    10,000-patient statement cost more than running it."""
    buffer = io.BytesIO()
    with connection.cursor() as cursor:
        cursor.copy_expert(f"COPY ({statement}) TO STDOUT{f' WITH ({options})' if options else ''}", buffer)
    return buffer.getvalue()


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda found: _ESCAPES.get(found[1], found[1]), text)


def _unescaped(values: pd.Series) -> pd.Series:
    escaped = values.str.contains("\\", regex=False, na=False)
    if not escaped.any():
        return values
    values = values.copy()
    values[escaped] = [_unescape(text) for text in values[escaped]]
    return values


def _with_none(values, missing: np.ndarray):
    """An object column with None where a value is missing, as the rows have it."""
    if not missing.any():
        return values
    out = np.asarray(values, dtype=object).copy()
    out[missing] = None
    return out


def _spread(categories: pd.Series, table: np.ndarray) -> np.ndarray:
    """Each row's entry of ``table`` (one per category); a missing row (code -1) gets None."""
    codes = categories.cat.codes.to_numpy()
    if (codes < 0).any():
        table = np.concatenate([table.astype(object), np.array([None], dtype=object)])
    return table[codes]


def _number(values: pd.Series, missing: np.ndarray):
    """int64, or float64 when one is missing, as pandas reads the rows; None when all are missing."""
    return np.full(len(values), None, dtype=object) if missing.all() else values


def _code(values: pd.Series, missing: np.ndarray) -> np.ndarray:
    categories = [_unescape(text) for text in values.cat.categories]
    return _spread(values, np.array(categories, dtype=object))


def _boolean(values: pd.Series, missing: np.ndarray) -> np.ndarray:
    return _spread(values, np.asarray(values.cat.categories == "t", dtype=bool))


def _date(values: pd.Series, missing: np.ndarray) -> np.ndarray:
    texts = values.cat.categories
    try:
        parsed = pd.to_datetime(texts, format="%Y-%m-%d").to_numpy().astype("datetime64[D]").astype(object)
    except pd.errors.OutOfBoundsDatetime:  # before 1677 or after 2262
        parsed = np.array([dt.date.fromisoformat(text) for text in texts], dtype=object)
    return _spread(values, parsed)


def _datetime(values: pd.Series, missing: np.ndarray):
    """Time-zone-aware, in UTC (the connection's time zone), as pandas reads the rows' datetimes."""
    if missing.all():
        return np.full(len(values), None, dtype=object)
    return pd.to_datetime(values, format="ISO8601", utc=True)


_COLUMNS: dict[str, Callable[[pd.Series, np.ndarray], object]] = {
    "number": _number,
    "decimal": lambda values, missing: values,
    "text": _with_none,
    "code": _code,
    "boolean": _boolean,
    "date": _date,
    "datetime": _datetime,
}
