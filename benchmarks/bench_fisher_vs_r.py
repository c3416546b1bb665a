"""Fisher's exact test on r×c tables in Python beside R's ``fisher.test`` (FEXACT), table by table.

Run from the project root: ``python -m benchmarks.bench_fisher_vs_r``. The tables are the ones the
tests pin (tests/analytics/test_compare.py): small ones, ones the old network refused though R
answers them, and one R stops on at its default workspace. R (benchmarks/bench_fisher_vs_r.R) and
Python are timed alike (``bench_stats_vs_r.timed``: CPU seconds per call, median of 3). The figures
are printed, not asserted.
"""

from __future__ import annotations

import json
import shutil
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


def python_result(table: np.ndarray) -> tuple[str, str]:
    try:
        p = fisher_exact_test(table).p
    except AnalysisError:
        return "refused", "-"
    return f"{p:.6g}", f"{timed(lambda: fisher_exact_test(table)):.3g}"


def main() -> int:
    print(
        f"{'shape':<6} {'n':>4} {'R s':>9} {'python s':>9} {'python/R':>8} {'R p':>12} {'python p':>12}",
        flush=True,
    )
    for rows, r in zip(TABLES, r_results(), strict=True):
        table = np.array(rows)
        p, seconds = python_result(table)
        if "error" in r:
            r_p, r_seconds = "stops", "-"
        else:
            r_p, r_seconds = f"{r['p']:.6g}", f"{r['seconds']:.3g}"
        shape = "×".join(map(str, table.shape))
        ratio = f"{float(seconds) / float(r_seconds):.2f}" if "-" not in (seconds, r_seconds) else "-"
        print(
            f"{shape:<6} {table.sum():>4} {r_seconds:>9} {seconds:>9} {ratio:>8} {r_p:>12} {p:>12}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
