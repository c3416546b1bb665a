"""Time the analysis dataset and the NPSLE report on a generated cohort; nothing is kept.

    python benchmarks/bench_dataset.py --patients 10000

Generates the cohort (as bench_demo_npsle does) in one transaction that is rolled back, then times
``build_dataset`` and a full NPSLE report run (matching, survival, Cox, plots) on it.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    args = parser.parse_args()
    with transaction.atomic():
        actor = system_user()
        study = _throwaway_study(actor)
        generate_npsle_cohort(study=study, actor=actor, patients=args.patients)
        started = time.perf_counter()
        dataset = build_dataset(study)
        dataset_seconds = time.perf_counter() - started
        started = time.perf_counter()
        run, _cached = report_run(study=study, filters={}, options={})
        report_seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    print(f"database          {connection.vendor}")
    print(f"patients          {len(dataset):,} ({dataset.shape[1]} columns)")
    print(f"build_dataset     {dataset_seconds:.1f} s")
    print(f"NPSLE report      {report_seconds:.1f} s ({run.n_records:,} patients analysed)")
    print(f"peak RSS (MiB)    {_peak_rss_mib():.0f}")


if __name__ == "__main__":
    sys.exit(main())
