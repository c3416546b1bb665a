"""Issue 18's table at 100,000 patients: every row measured in one run, beside its target and floor.

    python benchmarks/bench_100k.py                          # make bench; database registry_bench_100k
    python benchmarks/bench_100k.py --database bench_100k --load-log /tmp/bench_load.log

The 100,000-patient database is built once and reused by later runs: created, migrated, filled by
``manage.py load_demo --only npsle --patients 100000`` (timed, with its peak memory: the load_demo
row) and ANALYZEd; what the build measured is kept in ``var/bench/<database>.json`` (``--load-log``
reads it instead from a ``/usr/bin/time -v`` log, for a database built by hand). A small database of
the 386-patient demo study (``<database>_386``) is built the same way; it gives the 386-patient row
and the memory that a load and an export take at that size, which "flat" compares against.

The run uses production settings (DEBUG off, keys of this run, a shared Redis cache as a deployment
has, ``--cache-url``) in this process and in the gunicorn it starts. It never changes the records of
the study it measures: the report run and its cache rows, the sessions of its benchmark user and the
export's audit event are what it writes; the import and the invalidation write into another study
inside a transaction rolled back. Wall times are noisy on a shared machine, so CPU is shown beside.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django
import environ
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
RECORDS = ROOT / "var" / "bench"
SMALL_PATIENTS = 386  # load_demo's default NPSLE study
FLAT = 1.5  # "memory flat": the peak at 100,000 patients within this factor of the peak at 386


@dataclass(frozen=True)
class Measured:
    """A command run in its own process: wall and CPU seconds, peak resident memory."""

    wall: float
    cpu: float
    peak_rss_mib: float

    def text(self) -> str:
        return f"{self.wall:.1f} s (CPU {self.cpu:.1f} s), peak RSS {self.peak_rss_mib:.0f} MiB"


@dataclass(frozen=True)
class Row:
    """One line of the table: what, the figure, its floor and ratio, the target, and whether it is met."""

    what: str
    measured: str
    target: str
    met: bool | None
    floor: str = ""


def run_measured(command: list[str], env: dict[str, str]) -> Measured:
    """Run a command to its end and read its own resource usage (``measured.py`` says why it forks it)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as figures:
        wrapped = [sys.executable, str(ROOT / "benchmarks" / "measured.py"), figures.name, "--", *command]
        subprocess.run(wrapped, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
        return Measured(**json.loads(Path(figures.name).read_text()))


def manage(*arguments: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *arguments]


# --- the cached databases -------------------------------------------------------------------------


def server_url() -> str:
    """The PostgreSQL server of DATABASE_URL (its database name dropped), or the local one."""
    url = os.environ.get("DATABASE_URL", "")
    return url.rsplit("/", 1)[0] if url.startswith("postgres") else "postgres://postgres@127.0.0.1:5432"


def create_if_missing(server: str, name: str) -> bool:
    """Create the database unless it exists; True when it was created (never drops one)."""
    config = environ.Env.db_url_config(f"{server}/postgres")
    admin = psycopg2.connect(
        host=config["HOST"], port=config["PORT"] or 5432, user=config["USER"], dbname="postgres"
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        exists = cursor.fetchone() is not None
        if not exists:
            cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return not exists


def patients_in(env: dict[str, str]) -> int:
    """Patients of the npsle study in the database of ``env`` (0 when it is empty or not migrated)."""
    config = environ.Env.db_url_config(env["DATABASE_URL"])
    conn = psycopg2.connect(
        host=config["HOST"], port=config["PORT"] or 5432, user=config["USER"], dbname=config["NAME"]
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM registry_patient p JOIN registry_study s ON s.id = p.study_id "
                "WHERE s.code = 'npsle'"
            )
            return int(cursor.fetchone()[0])
    except psycopg2.errors.UndefinedTable:
        return 0
    finally:
        conn.close()


def ensure_cohort(name: str, patients: int, env: dict[str, str], load_log: str | None) -> dict[str, Any]:
    """The database's build record, building it first when it lacks the cohort (see the docstring)."""
    record_path = RECORDS / f"{name}.json"
    subprocess.run(manage("migrate", "--noinput", "-v0"), cwd=ROOT, env=env, check=True)  # no-op when current
    found = patients_in(env)
    if found == patients:
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        if load_log:  # kept, so later runs without the log still print the load_demo rows
            record = {"load_demo": read_time_log(Path(load_log)), "source": load_log}
            RECORDS.mkdir(parents=True, exist_ok=True)
            record_path.write_text(json.dumps(record))
        print(f"{name}: {found:,} patients, reused (built before: {describe_build(record)})", flush=True)
        return record
    if found:
        raise SystemExit(
            f"{name} holds {found:,} NPSLE patients, not {patients:,}: choose another --database"
        )
    print(f"{name}: building {patients:,} patients (once; later runs reuse it) …", flush=True)
    load = run_measured(manage("load_demo", "--only", "npsle", "--patients", str(patients)), env)
    with psycopg2.connect(env["DATABASE_URL"]) as conn, conn.cursor() as cursor:
        conn.autocommit = True
        cursor.execute("ANALYZE")
    record = {"load_demo": load.__dict__, "source": f"built by bench_100k on {time.strftime('%Y-%m-%d')}"}
    RECORDS.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record))
    print(f"{name}: built in {load.text()}", flush=True)
    return record


def describe_build(record: dict[str, Any]) -> str:
    if "load_demo" not in record:
        return "not recorded"
    return f"load_demo {Measured(**record['load_demo']).text()}, {record.get('source', '')}"


def read_time_log(path: Path) -> dict[str, float]:
    """Wall, CPU and peak RSS from the ``/usr/bin/time -v`` output in a log."""
    text = path.read_text()

    def number(label: str) -> str:
        found = re.search(rf"{re.escape(label)}: (\S+)", text)
        if found is None:
            raise SystemExit(f"{path}: no '{label}' (is the build finished?)")
        return found.group(1)

    *hours_minutes, seconds = number("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")
    wall = float(seconds) + sum(int(part) * 60 ** (i + 1) for i, part in enumerate(reversed(hours_minutes)))
    cpu = float(number("User time (seconds)")) + float(number("System time (seconds)"))
    return {
        "wall": wall,
        "cpu": cpu,
        "peak_rss_mib": int(number("Maximum resident set size (kbytes)")) / 1024,
    }


def production_environment(database_url: str, cache_url: str) -> dict[str, str]:
    """Settings as a deployment sets them: DEBUG off, keys of this run, a shared cache, no broker (so
    a report page must find its run in the cache, as the warm page does)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATE_SHIFT_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,testserver",
        "BEHIND_TLS_PROXY": "true",
        "CACHE_URL": cache_url,
        "DATABASE_CONN_MAX_AGE": "60",
    }
    env.pop("CELERY_BROKER_URL", None)
    return env


# --- the rows ----------------------------------------------------------------------------------------
# Each row imports the registry's code inside its function: Django is set up only in main(), once the
# environment of the chosen database is written (as bench_exchange.py does).


def met_text(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "—"}[met]


def dataset_row(study) -> Row:
    from bench_dataset import _time_dataset

    timed = _time_dataset(study, repeat=3)
    copy = timed["copy"]
    return Row(
        f"build_dataset('npsle'), {timed['dataset'].shape[0]:,}",
        f"{timed['wall']:.2f} s (CPU {timed['cpu']:.2f} s; best of 3)",
        "< 5 s",
        timed["wall"] < 5,
        f"COPY {copy['wall']:.2f} s, cursor {timed['raw']['wall']:.2f} s; {timed['wall'] / copy['wall']:.1f}× COPY",
    )


def small_report_row(env: dict[str, str]) -> Row:
    """The 386-patient demo study's report, cold, in a process of its own on the small database."""
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_dataset.py"), "--study", "npsle", "--json"]
    output = subprocess.run(
        [*command, "--repeat", "1", "--report-repeat", "3"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(output.stdout.strip().splitlines()[-1])["report"]
    return Row(
        f"cold NPSLE report, {report['patients']} patients (compute)",
        f"{report['wall']:.2f} s (CPU {report['cpu']:.2f} s; best of 3, first in the process {report['first']:.2f} s); "
        f"its {report['figures']} figures drawn when first shown: {report['figures_wall']:.2f} s in all",
        "< 1 s",
        report["wall"] < 1,
    )


def cold_report_row(study, viewer) -> Row:
    from bench_dataset import time_cold_report

    report = time_cold_report(study, viewer=viewer)
    total = report["wall"] + report["figures_wall"]
    return Row(
        f"cold NPSLE report, {report['patients']:,} (compute, then every figure drawn)",
        f"{total:.1f} s: compute {report['wall']:.1f} s (CPU {report['cpu']:.1f} s), "
        f"{report['figures']} figures {report['figures_wall']:.1f} s (CPU {report['figures_cpu']:.1f} s)",
        "< 30 s",
        total < 30,
    )


def invalidation_row(study, viewer) -> Row:
    """A patient enrolled in another study (rolled back): that study's runs go stale, this one's stays."""
    from django.db import transaction

    from accounts.services import system_user
    from analytics.reports.runner import cached_run, report_plan
    from registry.choices import Sex
    from registry.models import Study
    from registry.services.patients import patient_enrol

    other = Study.objects.exclude(pk=study.pk).filter(sites__isnull=False).first()
    assert other is not None, "no second study to write to"
    plans = {s: report_plan(study=s, filters={}, options={}, viewer=None) for s in (study, other)}
    kept = cached_run(report_plan(study=study, filters={}, options={}, viewer=viewer))
    with transaction.atomic():
        patient_enrol(
            study=other, site=other.sites.first(), study_code="BENCH-INVALIDATION", sex=Sex.FEMALE,
            index_admission_date=dt.date(2024, 1, 2), birth_year=1980,
            actor=system_user(), reason="Benchmark: a write to one study",
        )  # fmt: skip
        after = {s: report_plan(study=s, filters={}, options={}, viewer=None) for s in plans}
        still = cached_run(report_plan(study=study, filters={}, options={}, viewer=viewer))
        transaction.set_rollback(True)
    other_stale = after[other].cache_key != plans[other].cache_key
    this_kept = after[study].cache_key == plans[study].cache_key and kept is not None and still == kept
    return Row(
        "a write to one study",
        f"{other.code} runs stale: {'yes' if other_stale else 'no'}; {study.code} run still served: "
        f"{'yes' if this_kept else 'no'}",
        "invalidates only that study's reports",
        other_stale and this_kept,
    )


def query_rows(counts: dict[str, int]) -> list[Row]:
    one, many = counts["case record, 1 LP"], counts["case record, most LPs"]
    pages = [counts[f"API patients, page of {n}"] for n in (10, 50, 200)]
    others = ", ".join(
        f"{name} {n}" for name, n in counts.items() if not name.startswith(("case", "API patients"))
    )
    return [
        Row(
            "queries per case-record page",
            f"{one} (1 LP), {many} (most LPs)",
            "constant, ≤ 15",
            one == many <= 15,
        ),
        Row(
            "API patients, page of 10 / 50 / 200",
            " / ".join(map(str, pages)) + " queries",
            "constant query count",
            len(set(pages)) == 1,
        ),  # fmt: skip
        Row("(queries of the other pages)", others, "constant (pinned by the tests)", None),
    ]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def failures(latencies) -> str:
    if not latencies.failed:
        return "none failed"
    by_status = ", ".join(f"{status or 'no answer'}: {n}" for status, n in sorted(latencies.failed.items()))
    return f"{sum(latencies.failed.values())} failed ({by_status})"


def web_rows(study, user, workers: int, clients: int) -> list[Row]:
    """The pages served by gunicorn: the warm report page at 1 and 16 clients, the others at 1 and 16."""
    from bench_web import Browser, Gunicorn, drive, pages_for, warm_up

    pages = pages_for(study)
    hot = pages.hot()
    with Gunicorn(workers) as web:
        browsers = [Browser(web.port, user) for _ in range(clients)]
        warm_up(browsers, {"report": pages.report, **hot})
        alone = drive(browsers[:1], {"report": pages.report}, rounds=20)["report"]
        crowd = drive(browsers, {"report": pages.report}, rounds=3)["report"]
        single = drive(browsers[:1], hot, rounds=10)
        busy = drive(browsers, hot, rounds=10)
    rows = [
        Row("report page, warm: HTML, 1 client", f"{alone.size / 2**20:.2f} MB; p50 {ms(alone.percentile(50))}, "
            f"p95 {ms(alone.percentile(95))}, {failures(alone)}", "< 2 MB, < 300 ms (p50)",
            alone.size < 2 * 2**20 and alone.percentile(50) < 0.3 and not alone.failed),
        Row(f"report page, warm, {clients} clients", f"{len(crowd.seconds)} answered, {failures(crowd)}; "
            f"p50 {ms(crowd.percentile(50))}, p95 {ms(crowd.percentile(95))}, {crowd.per_second:.1f} pages/s",
            "no timeouts", not crowd.failed),
    ]  # fmt: skip
    for name, latencies in busy.items():
        p95 = latencies.percentile(95)
        rows.append(
            Row(f"{name}, {clients} clients", f"p95 {ms(p95)} (p50 {ms(latencies.percentile(50))}, "
                f"{latencies.per_second:.0f} pages/s, {failures(latencies)}); 1 client: p50 "
                f"{ms(single[name].percentile(50))}, p95 {ms(single[name].percentile(95))}",
                "p95 < 50 ms", p95 < 0.05 and not latencies.failed)
        )  # fmt: skip
    return rows


def export_command(path: Path) -> list[str]:
    return manage(
        "export_study",
        "npsle",
        "--format",
        "csv",
        "--identified",
        "--reason",
        "Benchmark",
        "--output",
        str(path),
    )


def export_rows(patients: int, path: Path, env: dict[str, str], small_env: dict[str, str]) -> list[Row]:
    """``export_study`` of the study, identified CSV zip, in its own process; its memory against the
    same export of the 386-patient study."""
    from bench_exchange import copy_out_seconds

    export = run_measured(export_command(path), env)
    small = run_measured(export_command(path.with_name("small.zip")), small_env)
    floor = copy_out_seconds()
    return [
        Row(f"export {patients:,} CSV (identified zip)", f"{export.wall:.1f} s (CPU {export.cpu:.1f} s)", "< 60 s",
            export.wall < 60, f"COPY TO {floor:.1f} s; {export.wall / floor:.0f}× COPY"),
        memory_row("export", export.peak_rss_mib, small.peak_rss_mib),
    ]  # fmt: skip


def memory_row(what: str, peak: float, reference: float | None) -> Row:
    """Flat memory: the peak at the large size within ``FLAT`` times the peak at 386 patients."""
    at_small = f"; at {SMALL_PATIENTS}: {reference:.0f} MiB ({peak / reference:.2f}×)" if reference else ""
    return Row(
        f"{what}: memory", f"peak RSS {peak:.0f} MiB{at_small}", f"flat: ≤ {FLAT}× the peak at {SMALL_PATIENTS}",
        reference is not None and peak <= FLAT * reference,
    )  # fmt: skip


def import_row(study, export: Path, most_rows: int) -> Row:
    """The export's first patients, as many as keep every table within ``most_rows`` rows, imported
    into an empty study (validated, audited) in a transaction rolled back; the floor is COPY FROM."""
    from bench_exchange import _time_import, copy_in_seconds
    from django.db import transaction
    from exchange_subset import first_patients

    subset = first_patients(export, export.with_name("subset.zip"), most_rows=most_rows)
    with transaction.atomic():
        imported = _time_import(study, subset)
        floor = copy_in_seconds(subset)
        transaction.set_rollback(True)
    rate = imported["rows"] / imported["seconds"]
    ratio = imported["seconds"] / floor
    return Row(
        f"import, validated and audited ({imported['tables']['patients']:,} patients, ≤ {most_rows:,} rows a table)",
        f"{imported['rows']:,} rows in {imported['seconds']:.1f} s = {rate:,.0f} rows/s",
        "≥ 10,000 rows/s, ≤ 10× COPY",
        rate >= 10_000 and ratio <= 10,
        f"COPY FROM {floor:.2f} s; {ratio:.0f}× COPY",
    )


def load_demo_rows(patients: int, record: dict[str, Any], small: dict[str, Any]) -> list[Row]:
    what = f"load_demo --patients {patients:,}"
    if "load_demo" not in record:
        return [Row(what, "not recorded (the database was built before)", "< 10 min, memory flat", None)]
    load = Measured(**record["load_demo"])
    reference = Measured(**small["load_demo"]).peak_rss_mib if "load_demo" in small else None
    return [
        Row(what, f"{load.wall:.0f} s (CPU {load.cpu:.0f} s; {record.get('source', '')})", "< 10 min", load.wall < 600),
        memory_row("load_demo", load.peak_rss_mib, reference),
    ]  # fmt: skip


def print_table(rows: list[Row]) -> None:
    header = Row("what", "measured", "target", None, "floor (raw SQL / COPY), ratio")
    cells = [
        [r.what, r.measured, r.floor, r.target, met_text(r.met) if r is not header else "verdict"]
        for r in [header, *rows]
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(5)]
    for number, line in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if number == 0:
            print("  ".join("-" * width for width in widths))


def measure(
    args: argparse.Namespace, env: dict[str, str], small_env: dict[str, str], records: tuple
) -> list[Row]:
    """Every row, in an order where each finds what it needs (the user's report run before the pages)."""
    from bench_web import bench_user, pages_for, query_counts

    from registry.models import Study

    study = Study.objects.get(code="npsle")
    user = bench_user(study)
    rows = [small_report_row(small_env), cold_report_row(study, user), dataset_row(study)]
    rows.append(invalidation_row(study, user))
    rows += query_rows(query_counts(user, pages_for(study)))
    rows += web_rows(study, user, args.web_workers, args.clients)
    export = Path(args.scratch) / "export.zip"
    export.parent.mkdir(parents=True, exist_ok=True)
    rows += export_rows(args.patients, export, env, small_env)
    rows.append(import_row(study, export, args.import_rows))
    rows += load_demo_rows(args.patients, *records)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "registry_bench_100k"))
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument(
        "--load-log",
        default=os.environ.get("BENCH_LOAD_LOG"),
        help="/usr/bin/time -v log of the load that built --database (kept for later runs)",
    )
    parser.add_argument("--cache-url", default=os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/7"))
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn processes (4 threads each)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--import-rows", type=int, default=10_000, help="most rows a table of the import")
    parser.add_argument("--scratch", default=str(ROOT / "var" / "bench" / "files"))
    args = parser.parse_args()
    started = time.perf_counter()
    server, small = server_url(), f"{args.database}_{SMALL_PATIENTS}"
    for name in (args.database, small):
        create_if_missing(server, name)
    env = production_environment(f"{server}/{args.database}", args.cache_url)
    small_env = {**env, "DATABASE_URL": f"{server}/{small}", "CACHE_URL": "locmemcache://"}  # its own tokens
    records = (
        ensure_cohort(args.database, args.patients, env, args.load_log),
        ensure_cohort(small, SMALL_PATIENTS, small_env, None),
    )
    os.environ.update(env)  # this process serves the in-process rows with the same settings
    warnings.filterwarnings("ignore", message="No directory at")  # whitenoise: no collectstatic needed here
    django.setup()
    rows = measure(args, env, small_env, records)
    print(f"\nIssue 18 at {args.patients:,} patients, database {args.database} "
          f"({time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}; run took "
          f"{(time.perf_counter() - started) / 60:.0f} min)\n")  # fmt: skip
    print_table(rows)
    return 0 if all(row.met is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
