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
from analytics.fisher_network import fisher_rxc_p
from analytics.frames import complete_cases, group_label, group_levels, numeric
from analytics.results import Result

# Test names as results carry them (and Table 1 shows them, also on rows whose test could not run).
RANK_SUM = "Mann-Whitney (Wilcoxon rank-sum)"
CHI_SQUARE, CHI_SQUARE_YATES, FISHER = "chi-square", "chi-square, Yates-corrected", "Fisher exact"
EXACT_BELOW = 50  # wilcox.test's sample size limit for exact p-values
FISHER_RELATIVE_TOLERANCE = 1e-7  # fisher.test's `relErr - 1`
FISHER_MAX_TABLES = 20_000_000  # partial tables held at once (a few hundred MB)
FISHER_MAX_VERTEX_COLUMNS = 10  # columns up to which the exact least-likely bound is enumerated


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
    # special.ndtr is stats.norm.cdf without the distribution machinery's per-call overhead.
    return float(2 * min(special.ndtr(z), special.ndtr(-z)))


def _average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks with ties averaged (``stats.rankdata``, R's ``rank``) and the sizes of the ties."""
    _, where, sizes = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(sizes)
    return (last - (sizes - 1) / 2)[where], sizes


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
    ranks, ties = _average_ranks(pooled)
    statistic = float(ranks[: len(x)].sum() - len(x) * (len(x) + 1) / 2)
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
    return HypothesisTest(RANK_SUM, statistic, p, method, len(pooled))


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
    # scipy's chi2_contingency, step for step, without its per-call overhead (Table 1 runs many).
    observed = table.astype(float)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    if yates:  # R's YATES = min(0.5, |x - E|), taken off every |x - E|
        gap = expected - observed
        observed = observed + np.minimum(0.5, np.abs(gap)) * np.sign(gap)
    statistic = float(((observed - expected) ** 2 / expected).sum())
    degrees = (table.shape[0] - 1) * (table.shape[1] - 1)
    p = float(special.chdtrc(degrees, statistic))  # stats.chi2.sf
    test = CHI_SQUARE_YATES if yates else CHI_SQUARE
    return HypothesisTest(test, statistic, p, "asymptotic", int(table.sum()))


def _log_choose(total: int | np.ndarray, chosen: np.ndarray) -> np.ndarray:
    return special.gammaln(total + 1) - special.gammaln(chosen + 1) - special.gammaln(total - chosen + 1)


def _fisher_2x2(table: np.ndarray) -> float:
    """R's 2×2 branch: the hypergeometric law of the top-left cell given the margins."""
    first_row, first_column, n = int(table[0].sum()), int(table[:, 0].sum()), int(table.sum())
    low, high = max(0, first_column - (n - first_row)), min(first_row, first_column)
    support = np.arange(low, high + 1)
    # stats.hypergeom.logpmf up to a constant, which the ratios below cancel.
    log_density = _log_choose(first_row, support) + _log_choose(n - first_row, first_column - support)
    density = np.exp(log_density - log_density.max())
    observed = density[table[0, 0] - low]
    return float(density[density <= observed * (1 + FISHER_RELATIVE_TOLERANCE)].sum() / density.sum())


def _most_likely_rest(columns: np.ndarray) -> np.ndarray:
    """max Σ log C(c_i, x_i) over Σ x_i = t, for every t: log C(c, ·) is concave, so the best
    split takes the largest increments first — the sorted merge of every column's increments."""
    increments = np.concatenate([[], *(np.log((c - np.arange(c)) / (np.arange(c) + 1)) for c in columns)])
    return np.concatenate([[0.0], np.cumsum(np.sort(increments)[::-1])])


def _least_likely_rest(columns: np.ndarray) -> np.ndarray:
    """min Σ log C(c_i, x_i) over Σ x_i = t, for every t. A concave sum is least at a vertex:
    every column empty or full (log C = 0) but one, which holds the rest. With many columns
    the 2^k vertices are too many and 0, a lower bound, stands in."""
    bound = np.zeros(int(columns.sum()) + 1)
    if len(columns) > FISHER_MAX_VERTEX_COLUMNS:
        return bound
    bound[:] = np.inf
    for free, size in enumerate(columns):
        others = np.delete(columns, free)
        full = np.array([0])
        for other in others:
            full = np.unique(np.concatenate([full, full + other]))
        held = np.arange(size + 1)
        for start in full:
            np.minimum.at(bound, start + held, _log_choose(size, held))
    return bound


def _last_two_columns(sizes: tuple[int, int], needed: np.ndarray, room: np.ndarray) -> np.ndarray:
    """log Σ over the last two first-row cells (x, needed − x) of C(a, x)·C(b, needed − x), taking
    only splits with log weight ≤ ``room``. The weights are unimodal in x, so the splits taken
    are two tails, found by bisection on each side of the mode."""
    a, b = sizes
    total = np.zeros(len(needed))
    for value in np.unique(needed):
        mine = needed == value
        cells = np.arange(max(0, value - b), min(a, value) + 1)
        weight = _log_choose(a, cells) + _log_choose(b, value - cells)
        peak = int(np.argmax(weight))
        scale = weight[peak]
        mass = np.exp(weight - scale)
        rising, falling = weight[: peak + 1], weight[peak + 1 :]
        left = np.searchsorted(rising, room[mine], side="right")  # count of rising cells ≤ room
        right = len(falling) - np.searchsorted(-falling, -room[mine], side="left")
        left_mass = np.concatenate([[0.0], np.cumsum(mass[: peak + 1])])[left]
        right_mass = np.concatenate([[0.0], np.cumsum(mass[peak + 1 :][::-1])])[right]
        with np.errstate(divide="ignore"):  # no split taken: log 0 = -inf, weight 0
            total[mine] = np.log(left_mass + right_mass) + scale
    return total


def _fisher_2xk(table: np.ndarray) -> float:
    """Two-sided p of a 2×k table by a network algorithm (Mehta & Patel, as R's FEXACT):
    first-row cells are chosen column by column, smallest columns first; a partial table whose
    every completion is at most as likely as the observed table is counted whole (Vandermonde's
    sum of its completions), one whose every completion is more likely is dropped, and only the
    rest are expanded. The two largest columns are summed in closed form (`_last_two_columns`)."""
    table = table[:, np.argsort(table.sum(axis=0), kind="stable")]
    columns, first_row_total = table.sum(axis=0), int(table[0].sum())
    threshold = float(_log_choose(columns, table[0]).sum()) + np.log1p(FISHER_RELATIVE_TOLERANCE)
    log_all = float(_log_choose(int(columns.sum()), np.array(first_row_total)))
    totals, past = np.zeros(1, dtype=np.int64), np.zeros(1)
    p = 0.0
    for index, size in enumerate(columns[:-2]):
        rest = columns[index + 1 :]
        rest_size = int(rest.sum())
        most, least = _most_likely_rest(rest), _least_likely_rest(rest)
        cells = np.arange(size + 1)
        totals = (totals[:, None] + cells[None, :]).ravel()
        past = (past[:, None] + _log_choose(int(size), cells)[None, :]).ravel()
        needed = first_row_total - totals
        feasible = (needed >= 0) & (needed <= rest_size)
        totals, past, needed = totals[feasible], past[feasible], needed[feasible]
        if len(totals) > FISHER_MAX_TABLES:
            raise AnalysisError("table too large for Fisher's exact test; use simulate_p_value=True")
        counted = past + most[needed] <= threshold
        p += float(np.exp(past[counted] + _log_choose(rest_size, needed[counted]) - log_all).sum())
        open_ = ~counted & (past + least[needed] <= threshold)
        totals, past = totals[open_], past[open_]
    last = (int(columns[-2]), int(columns[-1]))
    completions = _last_two_columns(last, first_row_total - totals, threshold - past)
    p += float(np.exp(past + completions - log_all).sum())
    return min(p, 1.0)


def _fisher_simulated(table: np.ndarray, replicates: int, seed: int | None) -> float:
    """R's ``simulate.p.value``: random tables with the observed margins; p = (1 + number no more
    likely than the observed) / (B + 1), likelihood compared as −Σ log x! with R's 64-ε slack."""
    rows, columns = table.sum(axis=1), table.sum(axis=0)
    drawn = stats.random_table(rows, columns, seed=np.random.default_rng(seed)).rvs(replicates)
    statistic = -special.gammaln(drawn + 1).sum(axis=(1, 2))
    observed = -special.gammaln(table + 1).sum()
    almost_one = 1 + 64 * np.finfo(float).eps
    return float((1 + (statistic <= observed / almost_one).sum()) / (replicates + 1))


def fisher_exact_test(
    table: np.ndarray, *, simulate_p_value: bool = False, replicates: int = 2000, seed: int | None = None
) -> HypothesisTest:
    """Fisher's exact test, two-sided, as R's ``fisher.test``.

    2×2: the hypergeometric p-value at any n. 2×k (or k×2): the exact p-value by a network
    algorithm, as R's FEXACT. r×c: the exact p-value by Mehta and Patel's network algorithm as
    FEXACT runs it, with exact bounds (``analytics.fisher_network``); every table R answers at
    its default workspace is answered, and beyond about a second of work (``MAX_WORK``) it refuses
    and names ``simulate_p_value``. Tables count as "as extreme" within R's relative 1e-7 of the
    observed probability. ``simulate_p_value=True`` is R's ``simulate.p.value`` (``B =
    replicates``, any r×c table; the p-value then depends on ``seed``).
    """
    table = np.asarray(table, dtype=np.int64)
    if table.ndim != 2:
        raise AnalysisError("Fisher's exact test needs a two-way table of counts")
    # Checked on Python lists: a Table 1's tables have a few cells, and numpy's cost per call was
    # most of the checks (3×3, line-profiled: 14 µs of the test's 88; on lists 7).
    cells = table.tolist()
    if table.size and min(map(min, cells)) < 0:
        raise AnalysisError("Fisher's exact test needs counts, not negative numbers")
    row_totals = [sum(row) for row in cells]
    if min(table.shape) < 2 or 0 in row_totals or 0 in map(sum, zip(*cells, strict=True)):
        raise AnalysisError("Fisher's exact test needs at least two non-empty rows and columns")
    n = sum(row_totals)
    if simulate_p_value:
        p = _fisher_simulated(table, replicates, seed)
        return HypothesisTest(FISHER, None, p, f"simulated ({replicates} replicates)", n)
    if table.shape[0] != 2 and table.shape[1] == 2:
        table = table.T
    if table.shape == (2, 2):
        p = _fisher_2x2(table)
    elif table.shape[0] == 2:
        p = _fisher_2xk(table)
    else:
        p = fisher_rxc_p(table, FISHER_RELATIVE_TOLERANCE)
    return HypothesisTest(FISHER, None, p, "exact", n)


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
