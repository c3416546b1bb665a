"""Binary and multinomial logistic regression with Wald odds-ratio intervals, as R reports them.

``logistic`` matches ``summary(glm(y ~ x, family = binomial))`` with ``exp(coef ± z·se)``;
``multinomial_logistic`` matches ``nnet::multinom`` + ``summary`` z-tests. Both refuse data in
which the outcome is perfectly (or quasi-completely) separated, where R would print
estimates drifting to infinity with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize, stats
from statsmodels.discrete.discrete_model import DiscreteModel, DiscreteResults

from analytics.errors import AnalysisError
from analytics.frames import binary, complete_cases, design_matrix, group_levels
from analytics.results import Result

INTERCEPT = "(Intercept)"
Z_95 = float(stats.norm.ppf(0.975))


@dataclass(frozen=True, eq=False)
class LogisticResult(Result):
    """``table``: ``term``, ``coef``, ``se``, ``or``, ``lower``, ``upper``, ``z``, ``p`` (Wald)."""

    outcome: str
    table: pd.DataFrame
    n: int
    events: int
    n_excluded: int

    def linear_predictor(self, df: pd.DataFrame) -> pd.Series:
        """Log-odds for each row of ``df`` under the fitted coefficients (NaN where a covariate is
        missing: this predicts, it does not analyse)."""
        coefficients = self.table.set_index("term")["coef"]
        predictor = pd.Series(coefficients[INTERCEPT], index=df.index)
        for term, coefficient in coefficients.drop(INTERCEPT).items():
            predictor += coefficient * df[term].astype(float)
        return predictor


@dataclass(frozen=True, eq=False)
class MultinomialResult(Result):
    """``table``: one row per non-reference ``level`` and ``term`` (Wald z-tests, as R)."""

    outcome: str
    reference: str
    table: pd.DataFrame
    n: int
    n_excluded: int


def _wald_table(terms: Sequence[str], coefficients: np.ndarray, se: np.ndarray) -> pd.DataFrame:
    z = coefficients / se
    return pd.DataFrame(
        {
            "term": list(terms),
            "coef": coefficients,
            "se": se,
            "or": np.exp(coefficients),
            "lower": np.exp(coefficients - Z_95 * se),
            "upper": np.exp(coefficients + Z_95 * se),
            "z": z,
            "p": 2 * stats.norm.sf(np.abs(z)),
        }
    )


def _in_blocks(rows: np.ndarray, levels: np.ndarray, n_levels: int) -> np.ndarray:
    """Each row moved into the coefficient block of its level; the reference level has none."""
    width = rows.shape[1]
    placed = np.zeros((len(rows), width * (n_levels - 1)))
    for level in range(1, n_levels):
        mine = levels == level
        placed[mine, (level - 1) * width : level * width] = rows[mine]
    return placed


def _separating_terms(
    design: np.ndarray, codes: np.ndarray, n_levels: int, terms: Sequence[str]
) -> list[str]:
    """Terms of a direction that separates the outcome levels; empty when the MLE is finite.

    Finite estimates exist unless some non-zero coefficients B (reference level fixed at 0)
    give x_i'(β_{y_i} − β_k) ≥ 0 for every row i and level k (Albert & Anderson, 1984). A
    linear programme looks for the sparsest such B (least L1 norm) scaled so the margins sum to
    1: it is feasible exactly when the outcome is separated, and names the terms that do it.
    """
    scale = design.std(axis=0)
    standardized = design / np.where(scale == 0, 1.0, scale)
    margins = np.vstack(
        [
            _in_blocks(standardized[other], codes[other], n_levels)
            - _in_blocks(standardized[other], np.full(other.sum(), level), n_levels)
            for level in range(n_levels)
            if (other := codes != level).any()
        ]
    )
    # B = positive part - negative part, so that |B| is linear.
    split = np.hstack([margins, -margins])
    solution = optimize.linprog(
        np.ones(split.shape[1]),
        A_ub=np.vstack([-split, -split.sum(axis=0)]),
        b_ub=np.append(np.zeros(len(split)), -1.0),
        bounds=(0, None),
        method="highs",
    )
    if solution.status != 0:
        return []
    half = split.shape[1] // 2
    strength = np.abs(solution.x[:half] - solution.x[half:]).reshape(n_levels - 1, -1).max(axis=0)
    return [term for term, weight in zip(terms, strength, strict=True) if weight > 1e-6 * strength.max()]


def _refuse_separation(
    design: np.ndarray, codes: np.ndarray, n_levels: int, terms: Sequence[str], outcome: str
) -> None:
    separating = _separating_terms(design, codes, n_levels, terms)
    if separating:
        raise AnalysisError(
            f"outcome {outcome!r} is perfectly or quasi-completely separated by "
            f"{', '.join(separating)}: the odds ratios would be infinite"
        )


def _fit(model: DiscreteModel, outcome: str) -> DiscreteResults:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is checked below, separation was ruled out
        fitted = model.fit(method="newton", maxiter=100, disp=False)
    if not fitted.mle_retvals["converged"]:
        raise AnalysisError(f"logistic model for {outcome!r} did not converge")
    return fitted


def logistic(df: pd.DataFrame, outcome: str, covariates: Sequence[str]) -> LogisticResult:
    """Logistic regression of a 0/1 ``outcome``; rows missing any used column are excluded."""
    data, n_excluded = complete_cases(df, [outcome, *covariates])
    y = binary(data[outcome], outcome)
    if y.min() == y.max():
        raise AnalysisError(f"outcome {outcome!r} has only the value {y[0]}")
    design = design_matrix(data, covariates, intercept=True)
    terms = [INTERCEPT, *covariates]
    _refuse_separation(design, y, 2, terms, outcome)
    fitted = _fit(sm.Logit(y, design), outcome)
    table = _wald_table(terms, np.asarray(fitted.params), np.asarray(fitted.bse))
    return LogisticResult(outcome, table, len(data), int(y.sum()), n_excluded)


def multinomial_logistic(
    df: pd.DataFrame, outcome: str, covariates: Sequence[str], *, reference: str
) -> MultinomialResult:
    """Multinomial logistic regression against the ``reference`` level of ``outcome``.

    The other levels are reported in sorted order, each with its own odds ratios.
    """
    data, n_excluded = complete_cases(df, [outcome, *covariates])
    levels = group_levels(data[outcome], outcome)
    if reference not in levels:
        raise AnalysisError(f"reference level {reference!r} does not occur in {outcome!r}")
    ordered = [reference, *(level for level in levels if level != reference)]
    codes = data[outcome].map({level: code for code, level in enumerate(ordered)}).to_numpy()
    design = design_matrix(data, covariates, intercept=True)
    terms = [INTERCEPT, *covariates]
    _refuse_separation(design, codes, len(ordered), terms, outcome)
    fitted = _fit(sm.MNLogit(codes, design), outcome)
    params, se = np.asarray(fitted.params), np.asarray(fitted.bse)
    table = pd.concat(
        [
            _wald_table(terms, params[:, column], se[:, column]).assign(level=str(level))
            for column, level in enumerate(ordered[1:])
        ],
        ignore_index=True,
    )
    table = table[["level", *table.columns.drop("level")]]
    return MultinomialResult(outcome, str(reference), table, len(data), n_excluded)
