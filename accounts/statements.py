"""Reads the ORM writes once per database and then runs as they stand, with new values.

Building and compiling a queryset costs the ORM far more than a lookup by key costs the database:
the user's roles, read on every request, took 1.0 ms of CPU inside a schemathesis request (3 of its
8.5 ms went to its five queries) against 0.22 ms in a warm loop and 0.03 ms run as SQL; the review
guard's read, made before every case-record write, was 13% of loading the LM demo. A read made that
often is declared here as a ``Statement``: its queryset is built once, with a stand-in value for each
parameter, compiled for the database it is first run on, and from then on only executed — the SQL
the ORM wrote, through the connection's cursor (so Django's query log and ``execute_wrapper`` hooks
see it), and the rows through the ORM's own converters and ``Model.from_db``.

Only the parameters change between runs: a queryset whose SQL depends on anything else (the length
of a list, the time of day) cannot be a statement. Model rows come back with their annotations but
without ``select_related``; anything else is refused when the statement is first compiled.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import FlatValuesListIterable, ModelIterable, ValuesListIterable
from django.db.transaction import TransactionManagementError

T = TypeVar("T")

#: Stand-in values by parameter type: unlikely in real data, kept apart from every other parameter
#: of the compiled query (a stand-in found twice, or not at all, refuses the statement).
_STAND_INS: dict[type, Callable[[int], Any]] = {
    int: lambda i: -7_391_004_217_000 - i,
    str: lambda i: f"\x1fstatement-parameter-{i}\x1f",
    dt.datetime: lambda i: dt.datetime(1901, 2, 3, 4, 5, i, 678_901, tzinfo=dt.UTC),
}


def _adapted(connection: Any, value: Any) -> Any:
    """A value as the ORM hands it to the database driver (a datetime as a DateTimeField adapts it)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise TypeError("a datetime parameter must be aware (USE_TZ)")
        return connection.ops.adapt_datetimefield_value(value)
    return value


@dataclass(frozen=True)
class _Compiled:
    sql: str
    #: For each SQL parameter: the statement parameter's name, or None with a constant value.
    params: tuple[tuple[str | None, Any], ...]
    convert: Callable[[list[tuple[Any, ...]]], list[Any]]


class Statement(Generic[T]):
    """A read built by ``build(**parameters)`` once, compiled once per database, run with new values.

    ``Statement(lambda user_id: Membership.objects.filter(user_id=user_id).values_list("role"),
    user_id=int)(user_id=7)`` returns what the queryset would, as a list.
    """

    def __init__(self, build: Callable[..., QuerySet[Any, T]], **parameters: type) -> None:
        unknown = set(parameters.values()) - set(_STAND_INS)
        if unknown:
            raise TypeError(f"statement parameters must be int, str or datetime, not {unknown}")
        self.build = build
        self.parameters = parameters
        self.stand_ins = {name: _STAND_INS[kind](i) for i, (name, kind) in enumerate(parameters.items())}
        self._queryset: QuerySet[Any, T] | None = None
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def __call__(self, **values: Any) -> list[T]:
        if values.keys() != self.parameters.keys():
            raise TypeError(f"give exactly {sorted(self.parameters)}, not {sorted(values)}")
        for name, value in values.items():
            if not isinstance(value, self.parameters[name]) or isinstance(value, bool):
                raise TypeError(f"{name} must be {self.parameters[name].__name__}, not {value!r}")
        queryset = self._queryset
        if queryset is None:  # built at the first run, when the models are surely loaded
            queryset = self._queryset = self.build(**self.stand_ins)
        locking = bool(queryset.query.select_for_update)
        alias = queryset.db  # routed as the ORM routes it (a locking read as a write)
        connection = connections[alias]
        if locking and connection.features.has_select_for_update and connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        compiled = self._compiled.get(alias)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(alias) or _compile(
                    queryset.all(),
                    alias,
                    {name: _adapted(connection, v) for name, v in self.stand_ins.items()},
                )
                self._compiled[alias] = compiled
        params = [
            _adapted(connection, values[name]) if name is not None else constant
            for name, constant in compiled.params
        ]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        return compiled.convert(rows)


def _compile(queryset: QuerySet[Any, Any], alias: str, stand_ins: dict[str, Any]) -> _Compiled:
    compiler = queryset.query.get_compiler(alias)
    sql, raw_params = compiler.as_sql()  # also sets up the compiler's select list, read by _converter
    by_value = {value: name for name, value in stand_ins.items()}
    params: list[tuple[str | None, Any]] = []
    for value in raw_params:
        name = by_value.get(value) if not isinstance(value, bool) and _hashable(value) else None
        params.append((name, None if name else value))
    found = sorted(name for name, _ in params if name)
    if found != sorted(stand_ins):
        raise ValueError(
            f"each parameter must reach the SQL once, as given: found {found} of {sorted(stand_ins)}"
        )
    return _Compiled(sql, tuple(params), _converter(queryset, compiler))


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _converter(queryset: QuerySet[Any, Any], compiler: Any) -> Callable[[list[tuple[Any, ...]]], list[Any]]:
    columns = [expression for expression, _sql, _alias in compiler.select[: compiler.col_count]]
    converters = compiler.get_converters(columns)

    def converted(rows: list[tuple[Any, ...]]) -> list[Any]:
        return list(compiler.apply_converters(rows, converters)) if converters else rows

    iterable = queryset._iterable_class
    if iterable is FlatValuesListIterable:
        return lambda rows: [row[0] for row in converted(rows)]
    if iterable is ValuesListIterable:
        return lambda rows: [tuple(row) for row in converted(rows)]
    if iterable is ModelIterable:
        info = compiler.klass_info
        if info.get("related_klass_infos"):
            raise ValueError("a statement reads one model's own fields and annotations (no select_related)")
        model: type[Model] = info["model"]
        start, end = info["select_fields"][0], info["select_fields"][-1] + 1
        names = [expression.target.attname for expression in columns[start:end]]
        annotations = list(compiler.annotation_col_map.items())

        def instances(rows: list[tuple[Any, ...]]) -> list[Model]:
            made = []
            for row in converted(rows):
                instance = model.from_db(compiler.using, names, row[start:end])
                for name, position in annotations:  # as the ORM's ModelIterable sets them
                    setattr(instance, name, row[position])
                made.append(instance)
            return made

        return instances
    raise ValueError(f"a statement returns model rows or values_list tuples, not {iterable.__name__}")
