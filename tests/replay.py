"""Demo loads built once per test run and replayed as rows.

Several modules load the same demo studies (the LM cohort through every service, the three studies
for the reports), each inside a transaction it rolls back, and each load cost 9-14 s on PostgreSQL.
``replayed(key, build)`` runs ``build`` the first time and keeps the rows it inserted, table by table;
a later call with the same key, on a database in the same state as the first one found (row counts,
highest keys and a digest of every table but the content types and permissions, which Django writes
again after each transactional test), inserts those rows instead: ``COPY`` on PostgreSQL,
``INSERT`` of SQLite's own literals (``quote()``) there, so no value passes through Python types. The
rows are shared between the xdist workers of one run through files in the run's temporary directory.

A build that changed or deleted a row that was there before it, added one to a table whose keys
are not integers, or one that refers to a content type or a permission, is not replayed: it runs again each time. Replaying does what the build did to the
report tokens (``analytics.reports.invalidation``), the one thing a load keeps outside the database.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.core.management import call_command
from django.db import connection, transaction

from analytics.reports import invalidation
from registry.models import Patient, Study

_INTEGER_KEYS = {"AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField"}
#: Rows Django writes again, under new keys, after each transactional test empties the tables: a
#: worker's content types are not where they were when the other worker (or this one) built. Their
#: state does not count, and a build inserting rows that refer to them is not replayed.
_REWRITTEN_AFTER_FLUSH = {"django_content_type", "auth_permission"}


@dataclass(frozen=True)
class _Table:
    name: str
    key: str  # the primary key's column
    integer_key: bool
    refers_to_rewritten: bool  # holds a key of a table in _REWRITTEN_AFTER_FLUSH


@dataclass(frozen=True)
class _Snapshot:
    before: dict[str, tuple[int, object, str]]  # table: (rows, highest key, digest)
    #: table: the rows the build inserted (PostgreSQL's COPY text, SQLite's literals); None: not replayable
    rows: dict[str, bytes | list[str]] | None


_memory: dict[str, _Snapshot] = {}


def _tables() -> list[_Table]:
    existing = set(connection.introspection.table_names())
    seen: dict[str, _Table] = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.proxy or not meta.managed or meta.db_table not in existing or meta.db_table in seen:
            continue
        pk = meta.pk
        integer = pk.get_internal_type() in _INTEGER_KEYS or (
            pk.remote_field is not None and pk.target_field.get_internal_type() in _INTEGER_KEYS
        )
        refers = any(
            field.remote_field.model._meta.db_table in _REWRITTEN_AFTER_FLUSH
            for field in meta.concrete_fields
            if field.remote_field is not None
        )
        seen[meta.db_table] = _Table(meta.db_table, pk.column, integer, refers)
    return sorted(seen.values(), key=lambda table: table.name)


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _state(cursor, table: _Table, upto=None) -> tuple[int, object, str]:
    """(rows, highest key, digest) of the table, or of its rows up to a key."""
    where = f" WHERE {_quote(table.key)} <= %s" if upto is not None else ""
    params = [upto] if upto is not None else []
    name, key = _quote(table.name), _quote(table.key)
    highest_key = f"max({key})" if table.integer_key else "NULL"
    if connection.vendor == "postgresql":
        cursor.execute(
            f"SELECT count(*), {highest_key}, md5(coalesce(string_agg(t::text, '|' ORDER BY {key}), '')) "
            f"FROM {name} t{where}",
            params,
        )
        return tuple(cursor.fetchone())
    cursor.execute(f"SELECT count(*), {highest_key} FROM {name}{where}", params)
    count, highest = cursor.fetchone()
    digest = hashlib.md5(usedforsecurity=False)
    if count:
        for row in _sqlite_literals(cursor, table, where, params):
            digest.update(row.encode())
    return count, highest, digest.hexdigest()


def _sqlite_literals(cursor, table: _Table, where: str, params: list) -> list[str]:
    """Each row as SQLite writes it in SQL, ``(1,'text',X'00',NULL)``: its stored values, untouched."""
    cursor.execute(f"SELECT * FROM {_quote(table.name)} LIMIT 0")
    columns = [_quote(column[0]) for column in cursor.description]
    literal = " || ',' || ".join(f"quote({column})" for column in columns)
    cursor.execute(
        f"SELECT '(' || {literal} || ')' FROM {_quote(table.name)}{where} ORDER BY {_quote(table.key)}",
        params,
    )
    return [row for (row,) in cursor.fetchall()]


def _inserted(cursor, table: _Table, after_key) -> bytes | list[str]:
    """The rows with keys above ``after_key`` (all of them when None), in the backend's own text."""
    where = f" WHERE {_quote(table.key)} > %s" if after_key is not None else ""
    params = [after_key] if after_key is not None else []
    if connection.vendor == "postgresql":
        query = cursor.mogrify(
            f"SELECT * FROM {_quote(table.name)}{where} ORDER BY {_quote(table.key)}", params
        ).decode()
        buffer = io.BytesIO()
        cursor.copy_expert(f"COPY ({query}) TO STDOUT", buffer)
        return buffer.getvalue()
    return _sqlite_literals(cursor, table, where, params)


def _restore(cursor, table: _Table, rows: bytes | list[str]) -> None:
    if isinstance(rows, bytes):
        cursor.copy_expert(f"COPY {_quote(table.name)} FROM STDIN", io.BytesIO(rows))
        if table.integer_key:
            # The rows may come from the other worker's database, whose identities ran further.
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table.name, table.key])
            (sequence,) = cursor.fetchone()
            if sequence:
                cursor.execute(f"SELECT max({_quote(table.key)}) FROM {_quote(table.name)}")
                (highest,) = cursor.fetchone()
                cursor.execute(f"SELECT last_value FROM {sequence}")
                if highest > cursor.fetchone()[0]:
                    cursor.execute("SELECT setval(%s, %s)", [sequence, highest])
        return
    for start in range(0, len(rows), 500):
        cursor.execute(f"INSERT INTO {_quote(table.name)} VALUES " + ",".join(rows[start : start + 500]))


def _directory() -> Path | None:
    """Where the xdist workers of this run share snapshots: a folder of pytest's temporary directory
    for the run, named by ``tests/conftest.py`` (None without workers: kept in memory only)."""
    path = os.environ.get("REGISTRY_REPLAY_DIR")
    if not path:
        return None
    Path(path).mkdir(parents=True, exist_ok=True)
    return Path(path)


def _load(key: str) -> _Snapshot | None:
    if key in _memory:
        return _memory[key]
    directory = _directory()
    file = directory / f"{hashlib.sha256(key.encode()).hexdigest()}.pickle" if directory else None
    if file is not None and file.exists():
        _memory[key] = pickle.loads(file.read_bytes())
        return _memory[key]
    return None


def _keep(key: str, snapshot: _Snapshot) -> None:
    _memory[key] = snapshot
    directory = _directory()
    if directory is not None:
        name = hashlib.sha256(key.encode()).hexdigest()
        partial = directory / f"{name}.{os.getpid()}.partial"
        partial.write_bytes(pickle.dumps(snapshot))
        partial.rename(directory / f"{name}.pickle")  # atomic: the other worker reads all of it or none


def replayed(key: str, build: Callable[[], object]) -> bool:
    """Run ``build`` in the current transaction, or insert the rows it inserted when it ran before on
    a database in this state. True when the rows were replayed."""
    tables = _tables()
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor if connection.vendor == "postgresql" else wrapper
        before = {table.name: _state(cursor, table) for table in tables}
        compared = {name: state for name, state in before.items() if name not in _REWRITTEN_AFTER_FLUSH}
        snapshot = _load(key)
        if snapshot is not None and snapshot.rows is not None and snapshot.before == compared:
            # All or nothing, and the keys between the tables checked at the end (in a transactional
            # test there is no transaction around this one).
            with transaction.atomic():
                for table in tables:
                    if table.name in snapshot.rows:
                        _restore(cursor, table, snapshot.rows[table.name])
                _invalidate_reports()
            return True
        build()
        if snapshot is not None:  # built again: a different state, or a build that cannot be replayed
            return False
        rows: dict[str, bytes | list[str]] | None = {}
        for table in tables:
            count, highest, _ = before[table.name]
            if not table.integer_key:
                if _state(cursor, table) != before[table.name]:
                    rows = None
                    break
                continue
            if count and _state(cursor, table, upto=highest) != before[table.name]:
                rows = None  # a row that was there before changed or went
                break
            inserted = _inserted(cursor, table, highest if count else None)
            if inserted and table.refers_to_rewritten:
                rows = None
                break
            if inserted:
                rows[table.name] = inserted
        _keep(key, _Snapshot(compared, rows))
    return False


def _invalidate_reports() -> None:
    """Replace the report tokens of the studies and sites the rows belong to, as their writes did."""
    keys = {invalidation.REGISTRY}
    for study_id in Study.objects.values_list("pk", flat=True):
        keys |= {invalidation.study_key(study_id), invalidation.patients_key(study_id)}
    for study_id, site_id in Patient.objects.order_by().values_list("study_id", "site_id").distinct():
        keys.add(invalidation.site_key(study_id, site_id))
    invalidation.invalidate(keys)


def load_demo_replayed(**options) -> bool:
    """``manage.py load_demo`` with these options, replayed after its first run (True when replayed)."""
    if "npsle" not in options.get("only", ["npsle"]):
        options.pop("patients", None)  # the NPSLE cohort's size: the same load without it

    def build() -> None:
        call_command("load_demo", **options, stdout=io.StringIO())

    return replayed(f"load_demo {sorted(options.items())}", build)


def demo_studies_replayed(*, npsle_patients: int) -> None:
    """The three demo studies, as ``load_demo --patients N`` loads them (LM, NPSLE, ICANS in that
    order), in two replayed steps: the LM cohort is the same load the LM tests replay."""
    load_demo_replayed(only=["lm"])
    load_demo_replayed(only=["npsle", "icans"], patients=npsle_patients)
