"""Logistic and multinomial fits on data that push the optimiser: finite estimates or a refusal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.errors import AnalysisError
from analytics.regression import logistic, multinomial_logistic


def near_separated(seed: int) -> pd.DataFrame:
    """20,000 patients whose outcome is cut by x at ±0.8, with one to three outcomes redrawn."""
    rng = np.random.default_rng(seed)
    n = 20_000
    x, z = rng.normal(0, 1, n), rng.normal(50, 10, n)
    codes = np.where(x > 0.8, 1, np.where(x < -0.8, 2, 0))
    flipped = rng.choice(n, int(rng.integers(1, 4)), replace=False)
    codes[flipped] = rng.integers(0, 3, len(flipped))
    return pd.DataFrame({"y": codes.astype(str), "x": x * 100, "z": z})


def test_near_separated_multinomial_converges_to_r_estimates_not_nan() -> None:
    # Issue 14: statsmodels overflowed in exp and reported convergence with every estimate NaN.
    # R: multinom(y ~ x + z, maxit = 10000, reltol = 1e-15) (R's default maxit = 100 stops short).
    result = multinomial_logistic(near_separated(0), "y", ["x", "z"], reference="0")
    r_coefficients = [-236.7298, 2.9526656, 0.01264979, -60.3198, -0.7468274, 0.01012156]
    assert result.table["coef"].tolist() == pytest.approx(r_coefficients, rel=1e-5)
    assert np.isfinite(result.table.drop(columns=["level", "term"]).to_numpy(dtype=float)).all()


def test_separated_multinomial_is_refused_naming_the_terms() -> None:
    # R's estimates drift without bound here (−4077 for level 2's intercept at maxit = 10000).
    with pytest.raises(AnalysisError, match="separated by .*x"):
        multinomial_logistic(near_separated(3), "y", ["x", "z"], reference="0")


def test_logistic_separation_is_refused_and_a_finite_fit_is_glm() -> None:
    frame = pd.DataFrame({"y": [0, 0, 0, 1, 1, 1], "x": [1.0, 2, 3, 4, 5, 6]})
    with pytest.raises(AnalysisError, match="separated by .*x"):
        logistic(frame, "y", ["x"])
    # R: glm(y ~ x, binomial) on x = 1..6, y = 0 0 1 0 1 1
    fitted = logistic(frame.assign(y=[0, 0, 1, 0, 1, 1]), "y", ["x"]).table
    assert fitted["coef"].tolist() == pytest.approx([-4.249096550, 1.214027586], rel=1e-6)
    assert fitted["se"].tolist() == pytest.approx([3.3878477096, 0.9125848383], rel=1e-6)


def reference_outcome_never_at_stage_1(seed: int) -> pd.DataFrame:
    """240 patients, outcome 1 or 2 by age, outcome 0 (the reference) in 6% of those not at stage
    1: stage 1 separates 0 from the rest, quasi-completely (issue 14's R oracle, 200 examples)."""
    rng = np.random.default_rng(seed)
    age, stage = rng.normal(60, 12, 240).round(), rng.integers(0, 4, 240)
    y = np.where(rng.random(240) < 1 / (1 + np.exp(-8 * (age - 60) / 12)), 1, 2)
    y[(stage != 1) & (rng.random(240) < 0.06)] = 0
    return pd.DataFrame({"y": y, "age": age, **{f"stage_{k}": (stage == k).astype(int) for k in (1, 2, 3)}})


@pytest.mark.parametrize("seed", [10, 39])
def test_quasi_separation_newton_takes_for_convergence_is_refused(seed: int) -> None:
    # Newton's steps along the separating direction flatten out in rounding, and it reported
    # "converged" with stage 1's coefficients at 35 (seed 10) and 2.4e12 (seed 39), odds ratios of
    # inf. R's multinom stopped at 12 on such data; Newton in R from there drifts on (26 after 14
    # steps, the log-likelihood still rising).
    frame = reference_outcome_never_at_stage_1(seed)
    assert not ((frame["y"] == 0) & (frame["stage_1"] == 1)).any()
    with pytest.raises(AnalysisError, match="separated by stage_1"):
        multinomial_logistic(frame, "y", ["age", "stage_1", "stage_2", "stage_3"], reference=0)
