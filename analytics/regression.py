"""Binary and multinomial logistic regression with Wald odds-ratio intervals, as R reports them.

``logistic`` matches ``summary(glm(y ~ x, family = binomial))`` with ``exp(coef ± z·se)``;
``multinomial_logistic`` matches ``nnet::multinom`` + ``summary`` z-tests. Both are fitted by
Newton–Raphson on a log-likelihood computed without overflow (never NaN), to the maximum that
``glm`` and ``multinom`` approach; standard errors are the exact inverse information (nnet's
``summary`` differentiates numerically and strays from it on badly scaled covariates such as
dates in days). Both refuse data in which the outcome is perfectly (or quasi-completely)
separated, where R would print estimates drifting to infinity with a warning, naming the terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from analytics.errors import AnalysisError
from analytics.frames import binary, complete_cases, design_matrix, group_levels
from analytics.results import Result

INTERCEPT = "(Intercept)"
Z_95 = float(stats.norm.ppf(0.975))
MAX_ITERATIONS = 50
CONVERGENCE = 1e-8  # Newton step relative to the coefficients
# A converged fit that gives some patient a probability below this for some level is checked for
# separation. Along a separating direction the likelihood only flattens out, and Newton "converges"
# once those probabilities are lost in rounding (seen at coefficients of 35 and of 6e11), while a
# finite maximum rarely comes near them: the linear programme is left to decide.
SEPARATION_SCREEN = 1e-10


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
        terms, coefficients = self.table["term"].tolist(), self.table["coef"].to_numpy()
        predictor = np.full(len(df), coefficients[terms.index(INTERCEPT)])
        for term, coefficient in zip(terms, coefficients, strict=True):
            if term != INTERCEPT:
                predictor += coefficient * df[term].to_numpy(dtype=float, na_value=np.nan)
        return pd.Series(predictor, index=df.index)


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
            "p": 2 * special.ndtr(-np.abs(z)),  # stats.norm.sf, without its per-call overhead,
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


def _log_likelihood(design: np.ndarray, codes: np.ndarray, beta: np.ndarray) -> tuple[float, np.ndarray]:
    """Multinomial log-likelihood and the fitted probabilities, computed without overflow."""
    eta = np.column_stack([np.zeros(len(design)), design @ beta])
    eta -= eta.max(axis=1, keepdims=True)
    log_total = np.log(np.exp(eta).sum(axis=1))
    loglik = float((eta[np.arange(len(codes)), codes] - log_total).sum())
    return loglik, np.exp(eta - log_total[:, None])


def _information(design: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Fisher information of the stacked coefficients (level by level), observed = expected."""
    others = probabilities[:, 1:]
    blocks = others.shape[1]
    width = design.shape[1]
    information = np.empty((blocks * width, blocks * width))
    for j in range(blocks):
        for k in range(j, blocks):
            weight = others[:, j] * ((j == k) - others[:, k])
            block = design.T @ (design * weight[:, None])
            information[j * width : (j + 1) * width, k * width : (k + 1) * width] = block
            information[k * width : (k + 1) * width, j * width : (j + 1) * width] = block.T
    return information


def _fit(
    design: np.ndarray, codes: np.ndarray, n_levels: int, terms: Sequence[str], outcome: str
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum likelihood by Newton–Raphson with step halving; (coefficients, SEs), p × levels−1.

    Converged when the step is below 1e-8 of the coefficients. A fit that does not get there, or
    gets there with a fitted probability below ``SEPARATION_SCREEN``, is checked for separation
    (`_separating_terms`), so the refusal names the terms; finite MLEs converge in a handful of
    steps with no probability that small, which spares the linear programme on ordinary data.
    """
    width, blocks = design.shape[1], n_levels - 1
    beta = np.zeros((width, blocks))
    observed = np.zeros((len(codes), n_levels))
    observed[np.arange(len(codes)), codes] = 1
    loglik, probabilities = _log_likelihood(design, codes, beta)
    for _ in range(MAX_ITERATIONS):
        score = (design.T @ (observed - probabilities)[:, 1:]).ravel(order="F")
        information = _information(design, probabilities)
        try:
            step = np.linalg.solve(information, score).reshape((width, blocks), order="F")
        except np.linalg.LinAlgError:
            break
        for _ in range(MAX_ITERATIONS):
            trial, trial_probabilities = _log_likelihood(design, codes, beta + step)
            if trial >= loglik or not np.isfinite(trial):
                break
            step /= 2
        beta = beta + step
        loglik, probabilities = trial, trial_probabilities
        if np.abs(step).max() <= CONVERGENCE * (1 + np.abs(beta).max()):
            if probabilities.min() < SEPARATION_SCREEN:
                _refuse_separation(design, codes, n_levels, terms, outcome)
            covariance = np.linalg.inv(_information(design, probabilities))
            with np.errstate(invalid="ignore"):  # a negative variance: not a maximum, checked below
                se = np.sqrt(np.diag(covariance)).reshape((width, blocks), order="F")
            if np.isfinite(beta).all() and np.isfinite(se).all():
                return beta, se
            break
    _refuse_separation(design, codes, n_levels, terms, outcome)
    raise AnalysisError(f"logistic model for {outcome!r} did not converge")


def logistic(df: pd.DataFrame, outcome: str, covariates: Sequence[str]) -> LogisticResult:
    """Logistic regression of a 0/1 ``outcome``; rows missing any used column are excluded."""
    data, n_excluded = complete_cases(df, [outcome, *covariates])
    y = binary(data[outcome], outcome)
    if y.min() == y.max():
        raise AnalysisError(f"outcome {outcome!r} has only the value {y[0]}")
    design = design_matrix(data, covariates, intercept=True)
    terms = [INTERCEPT, *covariates]
    beta, se = _fit(design, y, 2, terms, outcome)
    table = _wald_table(terms, beta[:, 0], se[:, 0])
    return LogisticResult(outcome, table, len(data), int(y.sum()), n_excluded)


def multinomial_logistic(
    df: pd.DataFrame, outcome: str, covariates: Sequence[str], *, reference: str
) -> MultinomialResult:
    """Multinomial logistic regression against the ``reference`` level of ``outcome``.

    The other levels are reported in sorted order, each with its own odds ratios. The estimates
    are the maximum-likelihood ones ``nnet::multinom`` approaches (its optimiser stops at a
    relative tolerance of 1e-8); separated data are refused with the terms that separate.
    """
    data, n_excluded = complete_cases(df, [outcome, *covariates])
    levels = group_levels(data[outcome], outcome)
    if reference not in levels:
        raise AnalysisError(f"reference level {reference!r} does not occur in {outcome!r}")
    ordered = [reference, *(level for level in levels if level != reference)]
    codes = data[outcome].map({level: code for code, level in enumerate(ordered)}).to_numpy()
    design = design_matrix(data, covariates, intercept=True)
    terms = [INTERCEPT, *covariates]
    params, se = _fit(design, codes, len(ordered), terms, outcome)
    table = pd.concat(
        [
            _wald_table(terms, params[:, column], se[:, column]).assign(level=str(level))
            for column, level in enumerate(ordered[1:])
        ],
        ignore_index=True,
    )
    table = table[["level", *table.columns.drop("level")]]
    return MultinomialResult(outcome, str(reference), table, len(data), n_excluded)
