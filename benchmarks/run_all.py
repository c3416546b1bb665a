"""``make bench``: the speed and memory benchmarks, each in its own process (so peak memory is its own).

The last step prints issue 18's table at 100,000 patients (``bench_100k.py``) from a database built
once and reused: BENCH_DATABASE names it (default registry_bench_100k, on the PostgreSQL server of
DATABASE_URL, else the local one). It replaces the dataset and exchange steps, which stay runnable by
hand on a generated cohort (``bench_dataset.py``, ``bench_exchange.py``). BENCH_PATIENTS (default
10000) sets the demo generator's cohort size; matching always runs at 25,000 and 100,000. The
figures are printed, not asserted: compare them across commits on the same machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    patients = os.environ.get("BENCH_PATIENTS", "10000")
    steps = [
        (
            "propensity matching",
            [sys.executable, "-m", "benchmarks.bench_matching", "--sizes", "25000", "100000"],
        ),
        ("statistics, python beside R", [sys.executable, "-m", "benchmarks.bench_stats_vs_r"]),
        ("Fisher r×c, python beside R", [sys.executable, "-m", "benchmarks.bench_fisher_vs_r"]),
        ("NPSLE demo generator", [sys.executable, "benchmarks/bench_demo_npsle.py", "--patients", patients]),
        ("issue 18 at 100,000 patients", [sys.executable, "benchmarks/bench_100k.py"]),
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'benchmarks'}"}
    failed = 0
    for title, command in steps:
        print(f"\n== {title} ==", flush=True)
        failed += subprocess.run(command, cwd=ROOT, env=env).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
