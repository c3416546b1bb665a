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
