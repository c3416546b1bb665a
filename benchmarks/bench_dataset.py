"""Time the analysis dataset (beside its raw-SQL floor) and the NPSLE report on a cohort.

    python benchmarks/bench_dataset.py --patients 10000                 # generated, rolled back
    python benchmarks/bench_dataset.py --patients 100000 --keep bench-100k --skip-report
    python benchmarks/bench_dataset.py --study bench-100k --skip-report  # a kept cohort, reused

By default the cohort is generated (as bench_demo_npsle does) in one transaction that is rolled back.
``--keep CODE`` commits it instead, as the study CODE, and runs ANALYZE on PostgreSQL, so a database
holding a large cohort is built once (say ``DATABASE_URL=…/bench_100k``) and ``--study CODE`` times it
again later without regenerating it. The raw-SQL floor replays the statements ``build_dataset`` sent,
fetched with a plain cursor and nothing else: the ratio is what the frame building adds to the fetch.
Wall times are the best of ``--repeat`` runs; CPU is this process's (the database server's is apart).
"""

from __future__ import annotations

import argparse
import sys
import time

from bench_demo_npsle import _peak_rss_mib, _throwaway_study  # noqa: I001  (sets up Django)
from django.db import connection, transaction

from accounts.services import system_user
from analytics.datasets import build_dataset
from analytics.reports.runner import report_run
from demo.npsle import generate_npsle_cohort
from registry.models import Study
from registry.services import record_save


def _time_dataset(study: Study, repeat: int) -> dict:
    """Best wall and CPU seconds of build_dataset, and of its statements fetched with a plain cursor."""
    statements: list[tuple[str, object]] = []

    def capture(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    build_dataset(study)  # warm: imports, the database's caches
    wall, cpu = [], []
    for run in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        if run == 0:
            with connection.execute_wrapper(capture):
                dataset = build_dataset(study)
        else:
            dataset = build_dataset(study)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    raw_wall, raw_cpu, rows = [], [], 0
    for _ in range(repeat):
        started, started_cpu, rows = time.perf_counter(), time.process_time(), 0
        with connection.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)
                rows += len(cursor.fetchall())
        raw_wall.append(time.perf_counter() - started)
        raw_cpu.append(time.process_time() - started_cpu)
    return {
        "dataset": dataset,
        "wall": min(wall),
        "cpu": min(cpu),
        "raw_wall": min(raw_wall),
        "raw_cpu": min(raw_cpu),
        "queries": len(statements),
        "rows": rows,
    }


def _report(study: Study) -> tuple[float, int]:
    started = time.perf_counter()
    run, _cached = report_run(study=study, filters={}, options={})
    return time.perf_counter() - started, run.n_records


def _keep(patients: int, code: str) -> Study:
    """Generate and commit the cohort as the study ``code``; ANALYZE so the planner knows its size."""
    started = time.perf_counter()
    with transaction.atomic():
        actor = system_user()
        study = _throwaway_study(actor)
        study.code, study.title = code, f"Benchmark cohort of {patients:,} patients"
        study = record_save(study, actor=actor, reason="Benchmark cohort kept for later runs")
        generate_npsle_cohort(study=study, actor=actor, patients=patients)
    print(
        f"generated         {patients:,} patients in {time.perf_counter() - started:.0f} s (kept as {code})"
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--study", help="time this existing study instead of generating a cohort")
    parser.add_argument("--keep", metavar="CODE", help="commit the generated cohort as the study CODE")
    parser.add_argument("--repeat", type=int, default=3, help="runs of build_dataset (best is shown)")
    parser.add_argument("--skip-report", action="store_true", help="time the dataset only")
    args = parser.parse_args()
    report = None
    if args.study or args.keep:
        study = Study.objects.get(code=args.study) if args.study else _keep(args.patients, args.keep)
        timed = _time_dataset(study, args.repeat)
        if not args.skip_report:
            report = _report(study)
    else:
        with transaction.atomic():
            actor = system_user()
            study = _throwaway_study(actor)
            generate_npsle_cohort(study=study, actor=actor, patients=args.patients)
            timed = _time_dataset(study, args.repeat)
            if not args.skip_report:
                report = _report(study)
            transaction.set_rollback(True)
    dataset = timed["dataset"]
    print(f"database          {connection.vendor}")
    print(f"patients          {len(dataset):,} ({dataset.shape[1]} columns)")
    print(f"build_dataset     {timed['wall']:.2f} s (CPU {timed['cpu']:.2f} s; best of {args.repeat})")
    print(
        f"raw SQL floor     {timed['raw_wall']:.2f} s (CPU {timed['raw_cpu']:.2f} s): the same "
        f"{timed['queries']} statements, {timed['rows']:,} rows, plain cursor"
    )
    print(f"ratio             {timed['wall'] / timed['raw_wall']:.1f}× the floor")
    if report:
        print(f"NPSLE report      {report[0]:.1f} s ({report[1]:,} patients analysed)")
    print(f"peak RSS (MiB)    {_peak_rss_mib():.0f}")


if __name__ == "__main__":
    sys.exit(main())
