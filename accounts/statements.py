r"""Reads the ORM writes once per database and then runs as they stand, with new values.

Building and compiling a queryset costs the ORM far more than a lookup by key costs the database:
the user's roles, read on every request, took 1.0 ms of CPU inside a schemathesis request (3 of its
8.5 ms went to its five queries) against 0.22 ms in a warm loop and 0.03 ms run as SQL; the review
guard's read, made before every case-record write, was 13% of loading the LM demo. A read made that
often is declared here as a ``Statement``: its queryset is built once, with a stand-in value for each
parameter, compiled for the database it is first run on, and from then on only executed — the SQL
the ORM wrote, through the connection's cursor (so Django's query log and ``execute_wrapper`` hooks
see it), and the rows through the ORM's own converters and ``Model.from_db``.

Only the parameters change between runs: a queryset whose SQL depends on anything else (the length
of a list, the time of day, a value worked out from a parameter) cannot be a statement. The first
run builds the queryset twice, with two sets of stand-ins, and refuses it unless the two compile to
the same SQL with the stand-ins, each once, as the only parameters that differ; a lookup that
rewrites its value (``startswith``, ``iexact`` on SQLite) is refused the same way, since the
stand-ins hold ``%``, ``_`` and ``\``. Model rows come back with their annotations; ``select_related``
and ``prefetch_related`` are refused.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import FlatValuesListIterable, ModelIterable, ValuesListIterable
from django.db.transaction import TransactionManagementError

T = TypeVar("T")

#: Stand-in values by parameter type, two sets (``round`` 0 and 1). Matched by their position among
#: the compiled parameters, so real values never collide with them; the integers fit any integer
#: column but the smallest, the texts hold what LIKE lookups escape.
_STAND_INS: dict[type, Callable[[int, int], Any]] = {
    int: lambda i, round: 2_061_830_417 + 1_000 * round + i,
    str: lambda i, round: f"\x1f%_\\statement-parameter-{round}-{i}\x1f",
    dt.datetime: lambda i, round: dt.datetime(1901 + round, 2, 3, 4, 5, i, 678_901, tzinfo=dt.UTC),
}


def _stand_ins(parameters: dict[str, type], round: int) -> dict[str, Any]:
    made = {name: _STAND_INS[kind](i, round) for i, (name, kind) in enumerate(parameters.items())}
    if not settings.USE_TZ:  # datetimes are naive throughout, as the ORM expects them then
        made = {name: v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v for name, v in made.items()}
    return made


def _adapted(connection: Any, value: Any) -> Any:
    """A value as the ORM hands it to the database driver (a datetime as a DateTimeField adapts it)."""
    if isinstance(value, dt.datetime):
        if settings.USE_TZ and value.tzinfo is None:
            raise TypeError("a datetime parameter must be aware (USE_TZ)")
        return connection.ops.adapt_datetimefield_value(value)
    return value


#: Turns fetched rows into what the queryset returns, given the running thread's connection.
Convert = Callable[[list[tuple[Any, ...]], Any], list[Any]]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    #: For each SQL parameter: the statement parameter's name, or None with a constant value.
    params: tuple[tuple[str | None, Any], ...]
    convert: Convert


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
        self._querysets: tuple[QuerySet[Any, T], QuerySet[Any, T]] | None = None
        self._compiled: dict[tuple[str, str], _Compiled] = {}
        self._lock = threading.Lock()

    def __call__(self, **values: Any) -> list[T]:
        if values.keys() != self.parameters.keys():
            raise TypeError(f"give exactly {sorted(self.parameters)}, not {sorted(values)}")
        for name, value in values.items():
            if not isinstance(value, self.parameters[name]) or isinstance(value, bool):
                raise TypeError(f"{name} must be {self.parameters[name].__name__}, not {value!r}")
        if self._querysets is None:  # built at the first run, when the models are surely loaded
            self._querysets = (
                self.build(**_stand_ins(self.parameters, 0)),
                self.build(**_stand_ins(self.parameters, 1)),
            )
        queryset = self._querysets[0]
        alias = queryset.db  # routed as the ORM routes it (a locking read as a write)
        connection = connections[alias]
        if (
            queryset.query.select_for_update
            and connection.features.has_select_for_update
            and connection.get_autocommit()
        ):
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        key = (alias, connection.settings_dict["ENGINE"])
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key) or self._compile(alias, connection)
                self._compiled[key] = compiled
        params = [
            _adapted(connection, values[name]) if name is not None else constant
            for name, constant in compiled.params
        ]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        return compiled.convert(rows, connection)

    def _compile(self, alias: str, connection: Any) -> _Compiled:
        assert self._querysets is not None
        first, second = (queryset.all() for queryset in self._querysets)
        if getattr(first, "_prefetch_related_lookups", ()):
            raise ValueError("a statement cannot prefetch (prefetch_related)")
        compiler = first.query.get_compiler(alias)
        sql, raw_params = compiler.as_sql()  # also sets up the compiler's select list, read below
        other_sql, other_params = second.query.get_compiler(alias).as_sql()
        stand_ins = [
            {_key(_adapted(connection, v)): name for name, v in _stand_ins(self.parameters, round).items()}
            for round in (0, 1)
        ]
        params: list[tuple[str | None, Any]] = []
        same_shape = other_sql == sql and len(other_params) == len(raw_params)
        for value, other in zip(raw_params, other_params, strict=False):
            name = stand_ins[0].get(_key(value))
            if name is not None and stand_ins[1].get(_key(other)) != name:
                same_shape = False
            if name is None and other != value:
                same_shape = False  # a constant that moved with the parameters: worked out from one
            params.append((name, None if name else value))
        found = sorted(name for name, _ in params if name)
        if not same_shape or found != sorted(self.parameters):
            raise ValueError(
                "each parameter must reach the SQL once, as given, and nothing else may change with it: "
                f"found {found} of {sorted(self.parameters)}"
            )
        return _Compiled(sql, tuple(params), _converter(first, compiler, alias))


def _key(value: Any) -> Any:
    """A parameter value as a dictionary key (None for one that cannot be: a list, a bool)."""
    if isinstance(value, bool):
        return None
    try:
        hash(value)
    except TypeError:
        return None
    return value


def _converter(queryset: QuerySet[Any, Any], compiler: Any, alias: str) -> Convert:
    """What the ORM does to fetched rows, kept without the compiler (which holds the compiling
    thread's connection): each column's converters, called with the running thread's connection."""
    columns = [expression for expression, _sql, _alias in compiler.select[: compiler.col_count]]
    converters = list(compiler.get_converters(columns).items())

    def converted(rows: list[tuple[Any, ...]], connection: Any) -> list[Any]:
        if not converters:
            return rows
        out = []
        for row in map(list, rows):
            for position, (functions, expression) in converters:
                value = row[position]
                for function in functions:
                    value = function(value, expression, connection)
                row[position] = value
            out.append(row)
        return out

    iterable = queryset._iterable_class
    if iterable is FlatValuesListIterable:
        return lambda rows, connection: [row[0] for row in converted(rows, connection)]
    if iterable is ValuesListIterable:
        return lambda rows, connection: [tuple(row) for row in converted(rows, connection)]
    if iterable is ModelIterable:
        info = compiler.klass_info
        if info.get("related_klass_infos"):
            raise ValueError("a statement reads one model's own fields and annotations (no select_related)")
        model: type[Model] = info["model"]
        start, end = info["select_fields"][0], info["select_fields"][-1] + 1
        names = [expression.target.attname for expression in columns[start:end]]
        annotations = list(compiler.annotation_col_map.items())

        def instances(rows: list[tuple[Any, ...]], connection: Any) -> list[Model]:
            made = []
            for row in converted(rows, connection):
                instance = model.from_db(alias, names, row[start:end])
                for name, position in annotations:  # as the ORM's ModelIterable sets them
                    setattr(instance, name, row[position])
                made.append(instance)
            return made

        return instances
    raise ValueError(f"a statement returns model rows or values_list tuples, not {iterable.__name__}")
