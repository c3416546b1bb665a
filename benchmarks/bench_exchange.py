"""Time the study export and import against their floors: PostgreSQL's COPY of the same data.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python benchmarks/bench_exchange.py --patients 100000

On PostgreSQL the cohort lives in its own database, ``bench_exchange_<N>``, built once (migrated,
the demo NPSLE generator, ANALYZE) and reused by later runs (``--rebuild`` builds it again). On
SQLite the cohort is generated in a transaction and rolled back. Then:

- **export**: the identified CSV zip, streamed to a file, its time and the peak of Python's
  allocations (tracemalloc) and of the process (RSS); the floor is ``COPY (SELECT …) TO STDOUT`` of
  the same tables' rows.
- **import**: that zip into an empty study (in a transaction rolled back at the end): validated,
  audited, all or nothing, rows per second; the floor is ``COPY … FROM STDIN`` of the same CSV
  files into unlogged text tables.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import django
import environ

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def _database_for(patients: int, rebuild: bool) -> bool:
    """Point DATABASE_URL at the cached benchmark database (PostgreSQL); True when it must be built."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return True
    import psycopg2  # imported here: only the PostgreSQL path needs it, before Django is set up

    config = environ.Env.db_url_config(url)
    name = f"bench_exchange_{patients}"
    admin = psycopg2.connect(
        host=config["HOST"], port=config["PORT"] or 5432, user=config["USER"], dbname="postgres"
    )
    admin.autocommit = True
    cursor = admin.cursor()
    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
    exists = cursor.fetchone() is not None
    if exists and rebuild:
        cursor.execute(f"DROP DATABASE {name} WITH (FORCE)")
    if not exists or rebuild:
        cursor.execute(f"CREATE DATABASE {name}")
    admin.close()
    os.environ["DATABASE_URL"] = url.rsplit("/", 1)[0] + f"/{name}"
    return not exists or rebuild


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--rebuild", action="store_true", help="Build the cached database again")
    args = parser.parse_args()
    build = _database_for(args.patients, args.rebuild)
    django.setup()
    from django.conf import settings

    settings.DEBUG = False  # no query log: it would keep every SQL string of the run
    from django.db import connection, transaction

    if connection.vendor == "postgresql":
        study = _cohort(args.patients, build)  # committed: the cached database keeps it
    with transaction.atomic():
        if connection.vendor != "postgresql":
            study = _cohort(args.patients, build)
        export = _time_export(study)
        imported = _time_import(study, export["path"])
        transaction.set_rollback(True)  # the import's rows (and, on SQLite, the cohort) go
    floors = _copy_floors(study, export["path"]) if connection.vendor == "postgresql" else {}
    _print(args.patients, export, imported, floors, connection.vendor)


def _cohort(patients: int, build: bool):
    from django.core.management import call_command
    from django.db import connection

    from accounts.services import system_user
    from demo.npsle import generate_npsle_cohort
    from registry.models import Study

    if build and connection.vendor == "postgresql":  # SQLite: the project's database, migrated already
        call_command("migrate", verbosity=0)
    existing = Study.objects.filter(code="bench-npsle").first()
    if existing is not None and not build:
        return existing
    from bench_demo_npsle import _throwaway_study  # imported here: it sets Django up when imported

    actor = system_user()
    study = _throwaway_study(actor)
    started = time.perf_counter()
    generate_npsle_cohort(study=study, actor=actor, patients=patients, seed=7)
    print(f"built {patients:,} patients in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return study


def _time_export(study) -> dict:
    from analytics.deidentify import DateHandling
    from exchange.export import ExportOptions, export_tables, stream_csv_zip

    options = ExportOptions(identified=True, dates=DateHandling.EXACT, reason="benchmark")
    path = Path(tempfile.mkdtemp()) / f"{study.code}.zip"
    tracemalloc.start()
    started = time.perf_counter()
    with path.open("wb") as out:
        tables = export_tables(study, user=None, options=options, stream=True)
        for chunk in stream_csv_zip(study, tables, options):
            out.write(chunk)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"path": path, "seconds": seconds, "peak_mib": peak / 2**20, "bytes": path.stat().st_size}


def _time_import(study, path: Path) -> dict:
    from accounts.services import system_user
    from exchange.importer import Importer, read_tables, sha256_of
    from exchange.limits import ImportLimits
    from registry.models import Study

    content = path.read_bytes()
    tables, notes = read_tables(path.name, content, limits=ImportLimits.for_command())
    rows = sum(len(r) for r in tables.values())
    copy = Study.objects.create(code="bench-copy", disease_area=study.disease_area, title="copy")
    copy.sites.set(study.sites.all())
    started = time.perf_counter()
    result = Importer(study=copy, actor=system_user(), as_operator=True).run(
        tables,
        dry_run=False,
        file_name=path.name,
        sha256=sha256_of(content),
        source_format="zip",
        notes=notes,
    )
    seconds = time.perf_counter() - started
    assert result.ok, result.issues[:5]
    return {"rows": rows, "seconds": seconds, "tables": {n: len(r) for n, r in tables.items()}}


def _copy_floors(study, path: Path) -> dict:
    """COPY of the same data: out of the tables (export) and into text tables (import)."""
    return {"copy_out": copy_out_seconds(), "copy_in": copy_in_seconds(path)}


def copy_out_seconds() -> float:
    """Seconds to copy every exchange table's rows out as CSV (``COPY … TO STDOUT``): the export's floor."""
    from django.db import connection

    from exchange.layout import TABLES

    with connection.cursor() as cursor:
        started = time.perf_counter()
        for table in TABLES:
            sink = io.BytesIO()
            cursor.copy_expert(f"COPY (SELECT * FROM {table.model._meta.db_table}) TO STDOUT WITH CSV", sink)
        return time.perf_counter() - started


def copy_in_seconds(path: Path) -> float:
    """Seconds to copy an export zip's table CSVs into text tables (``COPY … FROM STDIN``): the import's
    floor. Each table is dropped after its copy, so the database keeps nothing."""
    from django.db import connection

    seconds = 0.0
    with connection.cursor() as cursor, zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if not name.endswith(".csv") or name in ("dataset.csv", "data_dictionary.csv"):
                continue
            data = archive.read(name)
            header = data.split(b"\n", 1)[0].decode().split(",")
            columns = ", ".join(f'"{c}" text' for c in header)
            cursor.execute(f"CREATE UNLOGGED TABLE IF NOT EXISTS bench_copy_in ({columns})")
            started = time.perf_counter()
            cursor.copy_expert("COPY bench_copy_in FROM STDIN WITH CSV HEADER", io.BytesIO(data))
            seconds += time.perf_counter() - started
            cursor.execute("DROP TABLE bench_copy_in")
    return seconds


def _print(patients: int, export: dict, imported: dict, floors: dict, vendor: str) -> None:
    rate = imported["rows"] / imported["seconds"]
    print(f"database              {vendor}")
    print(f"patients              {patients:,}")
    line = f"export CSV zip        {export['seconds']:.1f} s, {export['bytes'] / 2**20:.0f} MiB written"
    if floors:
        line += f" ({export['seconds'] / floors['copy_out']:.1f}× COPY TO: {floors['copy_out']:.1f} s)"
    print(line)
    print(f"export peak memory    {export['peak_mib']:.0f} MiB of Python allocations (tracemalloc)")
    line = (
        f"import                {imported['rows']:,} rows in {imported['seconds']:.1f} s = {rate:,.0f} rows/s"
    )
    if floors:
        line += f" ({imported['seconds'] / floors['copy_in']:.1f}× COPY FROM: {floors['copy_in']:.1f} s)"
    print(line)
    print(f"peak RSS (MiB)        {_peak_rss_mib():.0f}")


if __name__ == "__main__":
    sys.exit(main())
