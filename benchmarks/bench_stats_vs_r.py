"""Each statistics step in Python beside the same step in R, on the same synthetic NPSLE cohorts.

Run from the project root: ``python -m benchmarks.bench_stats_vs_r [--sizes 386 2000 20000 100000]``.
For each size a cohort is generated once and written to CSV; Python times the library's public
functions on it, and one ``Rscript`` process (benchmarks/bench_stats_vs_r.R) times R's own
functions (survival, nnet, MatchIt, stats) on the same file. Both sides time the call alone (no
start-up, import or CSV reading): a warm-up call, then the median of 3 measurements, each
repeating the call until it takes 0.1 s or more. Without ``Rscript`` (or without MatchIt, for
matching) the R columns are left empty with a message. The figures are printed, not asserted.

R here does its linear algebra with the reference BLAS, on one core; numpy is given one BLAS
thread too (``OPENBLAS_NUM_THREADS=1`` unless already set), so each side has one core. On a
shared machine OpenBLAS's threads wait for a busy core and can make numpy's small products
slower, not faster.
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # before numpy loads its BLAS (module docstring)

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analytics.describe import table_one  # noqa: E402
from analytics.matching import match_nearest  # noqa: E402
from analytics.regression import logistic, multinomial_logistic  # noqa: E402
from analytics.survival import cox, kaplan_meier, logrank, univariable_cox  # noqa: E402

R_SCRIPT = Path(__file__).with_suffix(".R")
COVARIATES = ["age", "sledai", "male", "headache", "psychosis", "mpp"]
SIZES = [386, 2_000, 20_000, 100_000]


def npsle_cohort(n: int, seed: int = 20240501) -> pd.DataFrame:
    """NPSLE-like patients: treatment depends on the covariates; follow-up in months from whole
    days (ties and calendar near-ties), about 40% events; a three-level response."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "age": rng.normal(32, 9, n).round(1),
            "sledai": rng.poisson(14, n),
            "male": rng.binomial(1, 0.12, n),
            "headache": rng.binomial(1, 0.3, n),
            "psychosis": rng.binomial(1, 0.25, n),
            "mpp": rng.binomial(1, 0.5, n),
        }
    )
    frame["sledai_band"] = pd.cut(frame["sledai"], [-1, 9, 19, 200], labels=["0-9", "10-19", "20+"]).astype(
        str
    )
    logit = (
        -1.2
        + 0.06 * frame["sledai"]
        - 0.5 * frame["headache"]
        + 0.9 * frame["psychosis"]
        + 0.5 * frame["mpp"]
    )
    frame["intrathecal"] = rng.binomial(1, 1 / (1 + np.exp(-logit)))
    hazard = 0.02 * np.exp(
        -0.5 * frame["intrathecal"] + 0.03 * (frame["sledai"] - 14) + 0.4 * frame["psychosis"]
    )
    event_days = np.ceil(rng.exponential(1 / hazard) * 30.4375)
    censor_days = np.ceil(rng.uniform(30, 1_500, n))
    frame["time"] = np.minimum(event_days, censor_days) / 30.4375
    frame["event"] = (event_days <= censor_days).astype(int)
    score = np.column_stack(
        [
            np.zeros(n),
            -0.8 + 1.0 * frame["intrathecal"] + 0.03 * (frame["sledai"] - 14),
            -1.5 + 0.5 * frame["intrathecal"] + 0.6 * frame["psychosis"] - 0.01 * (frame["age"] - 32),
        ]
    )
    probabilities = np.exp(score) / np.exp(score).sum(axis=1, keepdims=True)
    frame["response"] = (rng.random(n)[:, None] > np.cumsum(probabilities, axis=1)).sum(axis=1)
    return frame


STEPS: dict[str, Callable[[pd.DataFrame], object]] = {
    "propensity": lambda d: logistic(d, "intrathecal", COVARIATES),
    "matching": lambda d: match_nearest(d, "intrathecal", COVARIATES),
    "km": lambda d: kaplan_meier(d, "time", "event", by="intrathecal"),
    "logrank": lambda d: logrank(d, "time", "event", "intrathecal"),
    "cox_univariable": lambda d: univariable_cox(d, "time", "event", COVARIATES),
    "cox_multivariable": lambda d: cox(d, "time", "event", COVARIATES),
    "multinomial": lambda d: multinomial_logistic(d, "response", COVARIATES, reference=0),
    "table_one": lambda d: table_one(
        d,
        "intrathecal",
        continuous=["age", "sledai"],
        categorical=["male", "headache", "psychosis", "sledai_band"],
        exact=["mpp"],
    ),
}


def timed(call: Callable[[], object]) -> float:
    """Seconds per call: a warm-up, then the median of 3 runs of ≥ 0.1 s each (as the R side).

    A warm-up of a second or more is itself the first run (what it would warm is lost in it).
    """
    start = time.perf_counter()
    call()
    warm_up = time.perf_counter() - start
    if warm_up >= 1:
        runs = [warm_up]
        for _ in range(2):
            start = time.perf_counter()
            call()
            runs.append(time.perf_counter() - start)
        return statistics.median(runs)
    reps = 1
    while True:
        start = time.perf_counter()
        for _ in range(reps):
            call()
        elapsed = time.perf_counter() - start
        if elapsed >= 0.1:
            break
        reps *= 10 if elapsed <= 0.01 else 2
    runs = [elapsed]
    for _ in range(2):
        start = time.perf_counter()
        for _ in range(reps):
            call()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs) / reps


def r_timings(paths: list[Path]) -> tuple[dict[str, dict[str, float]], str | None]:
    """R's seconds per step per size, or why there are none."""
    if shutil.which("Rscript") is None:
        return (
            {},
            "Rscript not found: R columns skipped (apt-get install r-base-core r-cran-survival r-cran-nnet)",
        )
    completed = subprocess.run(
        ["Rscript", "--vanilla", str(R_SCRIPT), *map(str, paths)], capture_output=True, text=True
    )
    if completed.returncode != 0:
        return {}, f"Rscript failed, R columns skipped:\n{completed.stderr[-2000:]}"
    return json.loads(completed.stdout), None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS))
    parser.add_argument("--no-r", action="store_true", help="time Python only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cohorts, paths = {}, []
        for n in args.sizes:
            cohorts[n] = npsle_cohort(n)
            paths.append(Path(folder) / f"cohort_{n}.csv")
            cohorts[n].to_csv(paths[-1], index=False)
        r, note = ({}, "R columns skipped (--no-r)") if args.no_r else r_timings(paths)
    print(f"{'step':<18} {'n':>7} {'python s':>9} {'R s':>9} {'python/R':>9}", flush=True)
    totals: dict[int, list[float]] = {}
    for n in args.sizes:
        for step in args.steps:
            python = timed(lambda s=step, d=cohorts[n]: STEPS[s](d))
            r_seconds = r.get(str(n), {}).get(step)
            totals.setdefault(n, [0.0, 0.0])
            totals[n][0] += python
            if r_seconds is None:
                print(f"{step:<18} {n:>7} {python:>9.4f} {'-':>9} {'-':>9}", flush=True)
                continue
            totals[n][1] += r_seconds
            print(
                f"{step:<18} {n:>7} {python:>9.4f} {r_seconds:>9.4f} {python / r_seconds:>9.2f}", flush=True
            )
        python_total, r_total = totals[n]
        ratio = f"{python_total / r_total:>9.2f}" if r_total else f"{'-':>9}"
        print(
            f"{'total':<18} {n:>7} {python_total:>9.4f} {r_total or float('nan'):>9.4f} {ratio}", flush=True
        )
    if note:
        print(note)
    elif "matching" in args.steps and not any("matching" in steps for steps in r.values()):
        print(
            "MatchIt is not installed in R: the matching row has no R column (apt-get install r-cran-matchit)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
