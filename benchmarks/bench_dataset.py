"""Time the analysis dataset (beside its raw-SQL floor) and the NPSLE report on a cohort.

    python benchmarks/bench_dataset.py --patients 10000                 # generated, rolled back
    python benchmarks/bench_dataset.py --patients 100000 --keep bench-100k --skip-report
    python benchmarks/bench_dataset.py --study bench-100k --skip-report  # a kept cohort, reused

By default the cohort is generated (as bench_demo_npsle does) in one transaction that is rolled back.
``--keep CODE`` commits it instead, as the study CODE, and runs ANALYZE on PostgreSQL, so a database
holding a large cohort is built once (say ``DATABASE_URL=…/bench_100k``) and ``--study CODE`` times it
again later without regenerating it (``manage.py load_demo --only npsle --patients 100000`` makes the
same cohort with the same generator, as the study ``npsle``). The raw-SQL floor replays the statements
``build_dataset`` sends (captured with the columnar fetch off: a COPY goes past ``execute_wrapper``),
fetched with a plain cursor and nothing else; on PostgreSQL the COPY floor copies the same statements
out as text, the least the columnar fetch can cost, and the ratio is to that floor. Wall times are the
best of ``--repeat`` runs; CPU is this process's (the database server's is apart).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from typing import Any

from bench_demo_npsle import _peak_rss_mib, _throwaway_study  # noqa: I001  (sets up Django)
from django.db import connection, transaction

from accounts.services import system_user
from analytics.datasets import build_dataset, fetch
from analytics.models import ReportRun
from analytics.plots import drawn
from analytics.reports.figures import run_figures
from analytics.reports.runner import report_plan, report_run
from demo.npsle import generate_npsle_cohort
from registry.models import Study
from registry.services import record_save


def _time_dataset(study: Study, repeat: int) -> dict:
    """Best wall and CPU seconds of build_dataset, and of its statements with nothing else: fetched
    with a plain cursor (rows) and copied out by ``COPY … TO STDOUT`` (the columnar fetch's floor)."""
    statements: list[tuple[str, Any]] = []

    def capture(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    fetch.COPY_FETCH = False  # the statements as rows, where execute_wrapper sees each of them
    with connection.execute_wrapper(capture):
        build_dataset(study)  # also warms imports and the database's caches
    fetch.COPY_FETCH = True
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        dataset = build_dataset(study)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    floors = {"raw": _floor(statements, repeat, copy=False)}
    if connection.vendor == "postgresql":
        floors["copy"] = _floor(statements, repeat, copy=True)
    return {"dataset": dataset, "wall": min(wall), "cpu": min(cpu), "queries": len(statements), **floors}


def _floor(statements: list[tuple[str, Any]], repeat: int, *, copy: bool) -> dict:
    """Best wall and CPU seconds of the statements alone, and the rows (or bytes, for COPY) read."""
    wall, cpu, size = [], [], 0
    for _ in range(repeat):
        started, started_cpu, size = time.perf_counter(), time.process_time(), 0
        with connection.cursor() as cursor:
            for sql, params in statements:
                if copy:
                    sink = io.BytesIO()
                    cursor.copy_expert(f"COPY ({cursor.mogrify(sql, params).decode()}) TO STDOUT", sink)
                    size += sink.tell()
                else:
                    cursor.execute(sql, params)
                    size += len(cursor.fetchall())
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return {"wall": min(wall), "cpu": min(cpu), "size": size}


def time_cold_report(study: Study, *, viewer=None, repeat: int = 1) -> dict:
    """Wall and CPU seconds of the study's default report computed with its cache cleared, ``repeat``
    times: the first run (this process's first report, lazy imports included) and the best; and of
    drawing all its figures afterwards, as the first page or download showing them would.

    The cache is cleared by deleting the stored runs of the report's scope (what a write's new token
    makes unreachable), and the figures drawn lately are not looked up (``plots.drawn``), so each run
    computes the dataset and the analyses again and leaves every figure to be drawn.
    """
    wall, cpu, figures_wall, figures_cpu, n_records, n_figures = [], [], [], [], 0, 0
    for _ in range(repeat):
        plan = report_plan(study=study, filters={}, options={}, viewer=viewer)
        ReportRun.objects.filter(scope_key=plan.scope_key).delete()
        with drawn.fresh():  # cold: every figure drawn, none given back from the last run's
            started, started_cpu = time.perf_counter(), time.process_time()
            run, cached = report_run(study=study, filters={}, options={}, viewer=viewer)
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
            started, started_cpu = time.perf_counter(), time.process_time()
            n_figures = len(run_figures(run, draw=True))
            figures_wall.append(time.perf_counter() - started)
            figures_cpu.append(time.process_time() - started_cpu)
        assert not cached, "the report came from the cache"
        n_records = run.n_records
    best = wall.index(min(wall))
    drawing = figures_wall.index(min(figures_wall))
    return {
        "first": wall[0],
        "wall": wall[best],
        "cpu": cpu[best],
        "patients": n_records,
        "runs": repeat,
        "figures": n_figures,
        "figures_wall": figures_wall[drawing],
        "figures_cpu": figures_cpu[drawing],
    }


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
    parser.add_argument("--report-repeat", type=int, default=1, help="cold runs of the report")
    parser.add_argument("--skip-report", action="store_true", help="time the dataset only")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    report = None
    if args.study or args.keep:
        study = Study.objects.get(code=args.study) if args.study else _keep(args.patients, args.keep)
        timed = _time_dataset(study, args.repeat)
        if not args.skip_report:
            report = time_cold_report(study, repeat=args.report_repeat)
    else:
        with transaction.atomic():
            actor = system_user()
            study = _throwaway_study(actor)
            generate_npsle_cohort(study=study, actor=actor, patients=args.patients)
            timed = _time_dataset(study, args.repeat)
            if not args.skip_report:
                report = time_cold_report(study, repeat=args.report_repeat)
            transaction.set_rollback(True)
    if args.json:
        dataset = timed.pop("dataset")
        figures = {**timed, "patients": len(dataset), "report": report, "peak_rss_mib": _peak_rss_mib()}
        print(json.dumps(figures))
    else:
        _print(timed, report, args.repeat)


def _print(timed: dict, report: dict | None, repeat: int) -> None:
    dataset = timed["dataset"]
    print(f"database          {connection.vendor}")
    print(f"patients          {len(dataset):,} ({dataset.shape[1]} columns)")
    print(f"build_dataset     {timed['wall']:.2f} s (CPU {timed['cpu']:.2f} s; best of {repeat})")
    raw = timed["raw"]
    print(
        f"raw SQL floor     {raw['wall']:.2f} s (CPU {raw['cpu']:.2f} s): the same "
        f"{timed['queries']} statements, {raw['size']:,} rows, plain cursor"
    )
    floor = raw
    if "copy" in timed:
        floor = timed["copy"]
        print(
            f"COPY floor        {floor['wall']:.2f} s (CPU {floor['cpu']:.2f} s): the same statements "
            f"copied out, {floor['size'] / 2**20:,.0f} MiB of text"
        )
    print(f"ratio             {timed['wall'] / floor['wall']:.1f}× the floor")
    if report:
        print(
            f"NPSLE report      {report['wall']:.1f} s (CPU {report['cpu']:.1f} s; first {report['first']:.1f} s; "
            f"{report['patients']:,} patients analysed, cache cleared)"
        )
        print(
            f"its figures       {report['figures_wall']:.1f} s (CPU {report['figures_cpu']:.1f} s): all "
            f"{report['figures']} drawn after the run, as the first page or download showing them does"
        )
    print(f"peak RSS (MiB)    {_peak_rss_mib():.0f}")


if __name__ == "__main__":
    main()
