"""Fisher's exact test on r×c tables in Python beside R's ``fisher.test`` (FEXACT), table by table.

Run from the project root: ``python -m benchmarks.bench_fisher_vs_r``. The tables are the ones the
tests pin (tests/analytics/test_compare.py): small ones, ones the old network refused though R
answers them, and one R stops on at its default workspace. R (benchmarks/bench_fisher_vs_r.R) and
Python are timed alike (``bench_stats_vs_r.timed``: CPU seconds per call, median of 3). The figures
are printed, not asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run directly as well as from run_all

import numpy as np  # noqa: E402

from analytics.compare import fisher_exact_test  # noqa: E402
from analytics.errors import AnalysisError  # noqa: E402
from benchmarks.bench_stats_vs_r import timed  # noqa: E402

TABLES = [
    [[3, 1, 2], [1, 5, 6], [4, 9, 5]],
    [[6, 8, 2, 9], [1, 17, 6, 3], [4, 12, 1, 3]],
    [[9, 9, 5, 8], [9, 9, 5, 3], [10, 12, 5, 2], [4, 11, 6, 9]],
    [[91, 14, 2], [31, 6, 70], [16, 38, 30]],
    [[17, 23, 33, 26], [15, 21, 22, 30], [23, 17, 17, 23]],
    [[7, 8, 7, 7], [2, 1, 7, 5], [8, 11, 7, 12], [2, 0, 1, 3]],
    [[7, 0, 4, 2, 3], [2, 3, 3, 5, 2], [1, 1, 5, 2, 1], [5, 5, 3, 4, 2]],
    [[2, 3, 3, 3, 2], [6, 2, 2, 1, 1], [3, 5, 4, 1, 2], [2, 5, 2, 5, 3], [3, 5, 3, 1, 3]],
    [[10, 12, 9, 11], [8, 14, 10, 9], [12, 7, 11, 10], [9, 11, 8, 13]],
]


def r_results() -> list[dict[str, object]]:
    if shutil.which("Rscript") is None:
        return [{"error": "Rscript not found"} for _ in TABLES]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tables.json"
        path.write_text(json.dumps(TABLES))
        script = Path(__file__).with_suffix(".R")
        completed = subprocess.run(
            ["Rscript", "--vanilla", str(script), str(path)], capture_output=True, text=True, check=True
        )
    return list(json.loads(completed.stdout))


ROUNDS = int(os.environ.get("FISHER_ROUNDS", "5"))


def python_result(table: np.ndarray) -> tuple[str, float | None]:
    """Python's p (or "refused") and its CPU seconds per call."""
    try:
        p = fisher_exact_test(table).p
    except AnalysisError:
        return "refused", None
    return f"{p:.6g}", timed(lambda: fisher_exact_test(table))


def main() -> int:
    r_seconds: list[list[float]] = [[] for _ in TABLES]
    python_seconds: list[list[float]] = [[] for _ in TABLES]
    r_p, python_p = ["stops"] * len(TABLES), ["refused"] * len(TABLES)
    for _ in range(ROUNDS):
        for i, (rows, r) in enumerate(zip(TABLES, r_results(), strict=True)):
            if "error" not in r:
                r_p[i], seconds_in_r = f"{r['p']:.6g}", r["seconds"]
                assert isinstance(seconds_in_r, int | float)
                r_seconds[i].append(float(seconds_in_r))
            python_p[i], seconds = python_result(np.array(rows))
            if seconds is not None:
                python_seconds[i].append(seconds)
    print(f"{ROUNDS} rounds, each R then Python; seconds: medians over the rounds")
    print(
        f"{'shape':<6} {'n':>4} {'R s':>9} {'python s':>9} {'python/R':>8} {'range':>11} {'R p':>12} {'python p':>12}"
    )
    for i, rows in enumerate(TABLES):
        table = np.array(rows)
        shape = "×".join(map(str, table.shape))
        r_s = f"{statistics.median(r_seconds[i]):.3g}" if r_seconds[i] else "-"
        py_s = f"{statistics.median(python_seconds[i]):.3g}" if python_seconds[i] else "-"
        ratio = spread = "-"
        if r_seconds[i] and python_seconds[i]:
            ratios = [py / r for py, r in zip(python_seconds[i], r_seconds[i], strict=True)]
            ratio, spread = f"{statistics.median(ratios):.2f}", f"{min(ratios):.2f}–{max(ratios):.2f}"
        print(
            f"{shape:<6} {table.sum():>4} {r_s:>9} {py_s:>9} {ratio:>8} {spread:>11} {r_p[i]:>12} {python_p[i]:>12}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
