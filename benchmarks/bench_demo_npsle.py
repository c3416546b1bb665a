"""Time the demo NPSLE generator and report its peak memory; nothing is kept.

    DJANGO_SETTINGS_MODULE=config.settings python benchmarks/bench_demo_npsle.py --patients 10000

Runs against the configured database (``DATABASE_URL``, else the project's SQLite file, which must be
migrated) inside one transaction that is rolled back at the end. The cohort goes into a throwaway
study, so existing demo data does not get in the way. Peak memory is the process's peak resident
set size (``getrusage``), which unlike tracemalloc costs nothing while timing.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.db import connection, transaction  # noqa: E402

from accounts.services import system_user  # noqa: E402
from demo.common import ensure_sites_and_studies  # noqa: E402
from demo.npsle import generate_npsle_cohort  # noqa: E402
from registry.choices import DiseaseArea  # noqa: E402
from registry.models import Study  # noqa: E402
from registry.services import record_save  # noqa: E402


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _throwaway_study(actor) -> Study:
    """An empty NPSLE study at the demo NPSLE sites."""
    demo = ensure_sites_and_studies(actor=actor)["npsle"]
    study = record_save(
        Study(code="bench-npsle", disease_area=DiseaseArea.NPSLE, title="Benchmark (rolled back)"),
        actor=actor,
        reason="Benchmark",
    )
    study.sites.set(demo.sites.all())
    return study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20240901)
    args = parser.parse_args()

    rss_before = _peak_rss_mib()
    with transaction.atomic():
        actor = system_user()
        study = _throwaway_study(actor)
        started = time.perf_counter()
        generate_npsle_cohort(
            study=study,
            actor=actor,
            patients=args.patients,
            seed=args.seed,
            progress=lambda done: print(
                f"  {done:>7,} patients  {time.perf_counter() - started:7.1f} s", file=sys.stderr, flush=True
            ),
        )
        seconds = time.perf_counter() - started
        transaction.set_rollback(True)

    print(f"database       {connection.vendor}")
    print(f"patients       {args.patients:,}")
    print(f"seconds        {seconds:.1f} ({seconds / args.patients * 1000:.2f} ms per patient)")
    print(f"peak RSS (MiB) {_peak_rss_mib():.0f} (at start {rss_before:.0f})")


if __name__ == "__main__":
    main()
