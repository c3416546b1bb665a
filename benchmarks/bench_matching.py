"""Timing of propensity-score matching on synthetic cohorts of growing size.

Run from the project root: ``python -m benchmarks.bench_matching [--sizes 25000 100000 ...]``.
Prints seconds per run; time should grow roughly in proportion to the number of patients.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from analytics.matching import match_nearest

COVARIATES = ["age", "sledai", "male", "headache", "psychosis", "mpp"]


def synthetic_cohort(n: int, seed: int = 20240501) -> pd.DataFrame:
    """Patients with a treatment that depends on their covariates, as in an observational cohort."""
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
    logit = (
        -1.2
        + 0.06 * frame["sledai"]
        - 0.5 * frame["headache"]
        + 0.9 * frame["psychosis"]
        + 0.5 * frame["mpp"]
    )
    frame["intrathecal"] = rng.binomial(1, 1 / (1 + np.exp(-logit)))
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 50_000, 100_000, 200_000])
    args = parser.parse_args()
    print(f"{'patients':>9} {'scale':>6} {'ratio':>5} {'seconds':>8} {'treated matched':>16}")
    for n in args.sizes:
        cohort = synthetic_cohort(n)
        for scale, ratio in (("ps", 1), ("logit", 1), ("ps", 2)):
            start = time.perf_counter()
            result = match_nearest(cohort, "intrathecal", COVARIATES, scale=scale, ratio=ratio)
            elapsed = time.perf_counter() - start
            print(f"{n:>9} {scale:>6} {ratio:>5} {elapsed:>8.2f} {result.n_treated_matched:>16}")


if __name__ == "__main__":
    main()
