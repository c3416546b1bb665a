"""Each statistics step in Python beside the same step in R, on the same synthetic NPSLE cohorts.

Run from the project root: ``python -m benchmarks.bench_stats_vs_r [--sizes 386 2000 20000 100000]``.
For each size a cohort is generated once and written to CSV; an ``Rscript`` process
(benchmarks/bench_stats_vs_r.R) times R's own functions (survival, nnet, MatchIt, stats) on the
file, then Python times the library's public functions on the same data. Both sides time the call
alone (no start-up, import or CSV reading) in CPU seconds of the process (user + system: on a
shared machine wall-clock time counts other processes' turns): a warm-up call, then the median
of 3 measurements, each repeating the call until it takes 0.1 s or more; a warm-up of a second
or more counts as the first measurement. Without ``Rscript`` (or without MatchIt, for
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run directly as well as from run_all

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
    """CPU seconds per call: a warm-up, then the median of 3 runs of ≥ 0.1 s each (as the R side).

    A warm-up of a second or more is itself the first run (what it would warm is lost in it).
    """

    def run(reps: int) -> float:
        start = time.process_time()
        for _ in range(reps):
            call()
        return time.process_time() - start

    warm_up = run(1)
    if warm_up >= 1:
        return statistics.median([warm_up, run(1), run(1)])
    reps = 1
    while (elapsed := run(reps)) < 0.1:
        reps *= 10 if elapsed <= 0.01 else 2
    return statistics.median([elapsed, run(reps), run(reps)]) / reps


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
    print(f"{'step':<18} {'n':>7} {'python s':>9} {'R s':>9} {'python/R':>9}", flush=True)
    notes = set()
    for n in args.sizes:
        cohort = npsle_cohort(n)
        if args.no_r:
            r, note = {}, "R columns skipped (--no-r)"
        else:  # R right before Python on each size, so both meet the machine in the same state
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / f"cohort_{n}.csv"
                cohort.to_csv(path, index=False)
                r, note = r_timings([path])
        if note:
            notes.add(note)
        python_total = r_total = 0.0
        for step in args.steps:
            python = timed(lambda s=step, d=cohort: STEPS[s](d))
            python_total += python
            r_seconds = r.get(str(n), {}).get(step)
            if r_seconds is None:
                if not note and step == "matching":
                    notes.add(
                        "MatchIt is not installed in R: no R time for matching (apt-get install r-cran-matchit)"
                    )
                print(f"{step:<18} {n:>7} {python:>9.4f} {'-':>9} {'-':>9}", flush=True)
                continue
            r_total += r_seconds
            print(
                f"{step:<18} {n:>7} {python:>9.4f} {r_seconds:>9.4f} {python / r_seconds:>9.2f}", flush=True
            )
        ratio = f"{python_total / r_total:>9.2f}" if r_total else f"{'-':>9}"
        print(
            f"{'total':<18} {n:>7} {python_total:>9.4f} {r_total or float('nan'):>9.4f} {ratio}", flush=True
        )
    for note in sorted(notes):
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
