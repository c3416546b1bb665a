"""Two-sample and paired tests with R's defaults, and the before/after change comparison.

``rank_sum_test`` and ``signed_rank_test`` follow ``wilcox.test``: an exact p-value when every
sample has fewer than 50 values and there are no ties (and, paired, no zero differences);
otherwise the normal approximation with continuity and tie corrections. ``chi_square_test``
follows ``chisq.test`` (Yates' correction on 2×2 tables only) and ``fisher_exact_test``
follows ``fisher.test`` (two-sided, tables within a relative 1e-7 of the observed
probability count as "as extreme").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from analytics.errors import AnalysisError
from analytics.frames import complete_cases, group_label, group_levels, numeric
from analytics.results import Result

EXACT_BELOW = 50  # wilcox.test's sample size limit for exact p-values
FISHER_RELATIVE_TOLERANCE = 1e-7  # fisher.test's `relErr - 1`
FISHER_MAX_TABLES = 20_000_000  # partial tables held at once (a few hundred MB)


@dataclass(frozen=True, eq=False)
class HypothesisTest(Result):
    """A test statistic and its two-sided p-value, with how the p-value was obtained.

    ``statistic`` is None for Fisher's exact test, whose p-value comes from table probabilities.
    """

    test: str
    statistic: float | None
    p: float
    method: str
    n: int


@dataclass(frozen=True, eq=False)
class PairedChangeResult(Result):
    """Within-group signed-rank tests of before vs after, and the rank-sum test of the change.

    ``within`` has one row per group: ``group``, ``n`` (complete pairs), ``n_zero`` (of which
    unchanged; the test drops them, as R does), ``statistic`` (R's V), ``p``, ``method``.
    ``between`` compares ``after - before`` between the groups (R's W, first group as ``x``).
    """

    before: str
    after: str
    by: str
    within: pd.DataFrame
    between: HypothesisTest
    n_excluded: int


def _two_sided_normal_p(z: float) -> float:
    return float(2 * min(stats.norm.cdf(z), stats.norm.sf(z)))


def _tie_sizes(values: np.ndarray) -> np.ndarray:
    return np.unique(values, return_counts=True)[1]


def _corrected_z(statistic: float, mean: float, sd: float, what: str) -> float:
    """R's continuity-corrected z: shift the statistic half a unit towards its mean."""
    if sd == 0:
        raise AnalysisError(f"{what}: all values are identical, the test is undefined")
    centred = statistic - mean
    return (centred - np.sign(centred) * 0.5) / sd


def rank_sum_test(x: np.ndarray, y: np.ndarray) -> HypothesisTest:
    """Wilcoxon rank-sum (Mann–Whitney) test as R's ``wilcox.test(x, y)``; statistic is R's W."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) == 0 or len(y) == 0:
        raise AnalysisError("rank-sum test needs values in both groups")
    pooled = np.concatenate([x, y])
    ranks = stats.rankdata(pooled)
    statistic = float(ranks[: len(x)].sum() - len(x) * (len(x) + 1) / 2)
    ties = _tie_sizes(pooled)
    if len(x) < EXACT_BELOW and len(y) < EXACT_BELOW and (ties == 1).all():
        p = float(stats.mannwhitneyu(x, y, method="exact").pvalue)
        method = "exact"
    else:
        n = len(pooled)
        tie_term = (ties**3 - ties).sum() / (n * (n - 1))
        sd = np.sqrt(len(x) * len(y) / 12 * ((n + 1) - tie_term))
        z = _corrected_z(statistic, len(x) * len(y) / 2, sd, "rank-sum test")
        p = _two_sided_normal_p(z)
        method = "normal approximation, continuity and tie corrected"
    return HypothesisTest("Mann-Whitney (Wilcoxon rank-sum)", statistic, p, method, len(pooled))


def signed_rank_test(differences: np.ndarray) -> HypothesisTest:
    """Wilcoxon signed-rank test of paired differences as R's ``wilcox.test(paired=TRUE)``.

    Zero differences are dropped (and rule out the exact p-value), as in R; the statistic is
    R's V, the rank sum of the positive differences.
    """
    differences = np.asarray(differences, dtype=float)
    nonzero = differences[differences != 0]
    if len(nonzero) == 0:
        raise AnalysisError("signed-rank test: every difference is zero")
    n = len(nonzero)
    ranks = stats.rankdata(np.abs(nonzero))
    statistic = float(ranks[nonzero > 0].sum())
    ties = _tie_sizes(np.abs(nonzero))
    if n < EXACT_BELOW and (ties == 1).all() and n == len(differences):
        p = float(stats.wilcoxon(nonzero, method="exact").pvalue)
        method = "exact"
    else:
        sd = np.sqrt(n * (n + 1) * (2 * n + 1) / 24 - (ties**3 - ties).sum() / 48)
        z = _corrected_z(statistic, n * (n + 1) / 4, sd, "signed-rank test")
        p = _two_sided_normal_p(z)
        method = "normal approximation, continuity and tie corrected"
    return HypothesisTest("Wilcoxon signed-rank", statistic, p, method, n)


def chi_square_test(table: np.ndarray, *, correct: bool = True) -> HypothesisTest:
    """Pearson's chi-square test of a contingency table; Yates' correction only when it is 2×2 and
    ``correct`` (R's ``chisq.test(correct=)``; SPSS prints both on a 2×2 table)."""
    table = np.asarray(table)
    if min(table.shape) < 2 or (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        raise AnalysisError("chi-square test needs at least two non-empty rows and columns")
    yates = correct and table.shape == (2, 2)
    result = stats.chi2_contingency(table, correction=yates)
    test = "chi-square, Yates-corrected" if yates else "chi-square"
    return HypothesisTest(test, float(result.statistic), float(result.pvalue), "asymptotic", int(table.sum()))


def _log_column_weights(column_total: int, first_row: np.ndarray) -> np.ndarray:
    return (
        special.gammaln(column_total + 1)
        - special.gammaln(first_row + 1)
        - special.gammaln(column_total - first_row + 1)
    )


def fisher_exact_test(table: np.ndarray) -> HypothesisTest:
    """Fisher's exact test of a 2×k (or k×2) table, two-sided, as R's ``fisher.test``.

    Every table with the observed margins is enumerated; the p-value sums the probabilities
    of tables no more likely than the observed one (within R's relative tolerance 1e-7).
    """
    table = np.asarray(table, dtype=np.int64)
    if table.shape[0] != 2 and table.shape[1] == 2:
        table = table.T
    if table.shape[0] != 2 or table.shape[1] < 2:
        raise AnalysisError(f"Fisher's exact test here needs a 2×k table, got {table.shape}")
    columns = table.sum(axis=0)
    if (columns == 0).any() or (table.sum(axis=1) == 0).any():
        raise AnalysisError("Fisher's exact test needs non-empty rows and columns")
    first_row_total = int(table[0].sum())
    # Grow all partial first rows column by column: (running total, log weight) per table.
    totals = np.zeros(1, dtype=np.int64)
    log_weights = np.zeros(1)
    remaining = int(columns.sum())
    for column_total in columns:
        if len(totals) * (column_total + 1) > FISHER_MAX_TABLES:
            raise AnalysisError("table too large for Fisher's exact enumeration; use chi-square")
        remaining -= int(column_total)
        cells = np.arange(column_total + 1)
        totals = (totals[:, None] + cells[None, :]).ravel()
        log_weights = (log_weights[:, None] + _log_column_weights(column_total, cells)[None, :]).ravel()
        reachable = (totals <= first_row_total) & (totals + remaining >= first_row_total)
        totals, log_weights = totals[reachable], log_weights[reachable]
    observed = _log_column_weights(columns, table[0]).sum()
    relative = np.exp(log_weights - log_weights.max())
    observed_relative = np.exp(observed - log_weights.max())
    p = relative[relative <= observed_relative * (1 + FISHER_RELATIVE_TOLERANCE)].sum() / relative.sum()
    return HypothesisTest("Fisher exact", None, float(min(p, 1.0)), "exact", int(table.sum()))


def paired_change(df: pd.DataFrame, before: str, after: str, *, by: str) -> PairedChangeResult:
    """Compare a measurement before and after treatment within and between groups.

    Within each level of ``by``: signed-rank test of ``before`` vs ``after``. Between groups
    (exactly two): rank-sum test of ``after - before``. Rows missing ``before``, ``after`` or
    ``by`` are excluded and counted.
    """
    data, n_excluded = complete_cases(df, [before, after, by])
    levels = group_levels(data[by], by)
    if len(levels) != 2:
        raise AnalysisError(f"paired_change compares two groups; {by!r} has {len(levels)} levels")
    before_values, after_values = numeric(data[before], before), numeric(data[after], after)
    change = after_values - before_values
    rows = []
    for level in levels:
        in_group = (data[by] == level).to_numpy()
        # before - after, the order of R's wilcox.test(before, after, paired = TRUE), so V agrees.
        result = signed_rank_test(before_values[in_group] - after_values[in_group])
        rows.append(
            {
                "group": group_label(by, level),
                "n": int(in_group.sum()),
                "n_zero": int((change[in_group] == 0).sum()),
                "statistic": result.statistic,
                "p": result.p,
                "method": result.method,
            }
        )
    first = (data[by] == levels[0]).to_numpy()
    between = rank_sum_test(change[first], change[~first])
    return PairedChangeResult(before, after, by, pd.DataFrame(rows), between, n_excluded)
