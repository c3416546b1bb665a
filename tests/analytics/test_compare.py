"""Which p-value R's tests use (exact or normal approximation), on samples worked out by hand."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest
from scipy import special, stats

from analytics.compare import chi_square_test, fisher_exact_test, rank_sum_test, signed_rank_test
from analytics.errors import AnalysisError


def test_rank_sum_is_exact_for_small_samples_without_ties() -> None:
    # W = 0 is the most extreme of C(6, 3) = 20 equally likely splits: p = 2/20.
    result = rank_sum_test(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]))
    assert (result.statistic, result.method) == (0.0, "exact")
    assert result.p == pytest.approx(0.1)


def test_rank_sum_with_ties_uses_corrected_normal_approximation() -> None:
    # W = 0; mean 4.5; ties (1,1) and (3,3): sd = sqrt(9/12 * (7 - 12/30)); z = (0 - 4.5 + 0.5)/sd
    result = rank_sum_test(np.array([1.0, 1, 2]), np.array([3.0, 3, 4]))
    z = -4 / np.sqrt(9 / 12 * (7 - 12 / 30))
    assert result.method.startswith("normal approximation")
    assert result.p == pytest.approx(2 * stats.norm.cdf(z))


def test_rank_sum_is_approximate_from_fifty_per_group() -> None:
    rng = np.random.default_rng(0)
    assert rank_sum_test(rng.normal(size=50), rng.normal(size=10)).method != "exact"
    assert rank_sum_test(rng.normal(size=49), rng.normal(size=49)).method == "exact"


def test_signed_rank_exact_and_its_statistic() -> None:
    # All five differences positive: V = 15, probability 1/32 each tail.
    result = signed_rank_test(np.array([1.0, 2, 3, 4, 5]))
    assert (result.statistic, result.method) == (15.0, "exact")
    assert result.p == pytest.approx(2 / 32)


def test_signed_rank_zero_differences_are_dropped_and_force_the_approximation() -> None:
    # Zeros dropped (n = 4, V = 10); with a zero present R uses the normal approximation.
    result = signed_rank_test(np.array([0.0, 1, 2, 3, 4]))
    z = (10 - 5 - 0.5) / np.sqrt(4 * 5 * 9 / 24)
    assert (result.n, result.statistic) == (4, 10.0)
    assert result.method.startswith("normal approximation")
    assert result.p == pytest.approx(2 * stats.norm.sf(z))


def test_fisher_two_by_two_matches_r_tea_tasting() -> None:
    # fisher.test(matrix(c(3, 1, 1, 3), 2)) in R: p-value = 0.4857
    assert fisher_exact_test(np.array([[3, 1], [1, 3]])).p == pytest.approx(0.4857, abs=5e-5)


def test_fisher_two_by_k_sums_every_table_no_more_likely_than_the_observed() -> None:
    table = np.array([[3, 1, 4], [1, 5, 2]])
    columns, first_row = table.sum(axis=0), table[0].sum()
    probabilities = []
    for cells in itertools.product(*(range(c + 1) for c in columns)):
        if sum(cells) == first_row:
            probabilities.append(stats.multivariate_hypergeom.pmf(cells, columns, first_row))
    observed = stats.multivariate_hypergeom.pmf(table[0], columns, first_row)
    expected = sum(p for p in probabilities if p <= observed * (1 + 1e-7))
    assert fisher_exact_test(table).p == pytest.approx(expected)
    assert fisher_exact_test(table.T).p == pytest.approx(expected)


def test_fisher_two_by_two_at_any_size_is_hypergeometric_as_r() -> None:
    # Issue 14: refused beyond the enumeration cap. R: fisher.test(matrix(c(4000, 4400, 6000, 5600), 2))
    result = fisher_exact_test(np.array([[4000, 6000], [4400, 5600]]))
    assert result.p == pytest.approx(1.08299873423273e-08, rel=1e-6)
    assert result.method == "exact"


def test_fisher_four_by_two_at_two_thousand_as_r_network_algorithm() -> None:
    # R: fisher.test(matrix(c(200, 260, 215, 240, 255, 230, 205, 195), ncol = 2)) (FEXACT)
    table = np.array([[200, 255], [260, 230], [215, 205], [240, 195]])
    assert fisher_exact_test(table).p == pytest.approx(0.00487914841688434, rel=1e-6)


def test_fisher_simulated_p_value_is_r_simulate_p_value() -> None:
    # R: fisher.test(matrix(c(3, 1, 4, 1, 5, 9, 2, 6, 5), 3)) exact p 0.28236; with
    # simulate.p.value = TRUE, B = 1e5 it printed 0.28286.
    table = np.array([[3, 1, 2], [1, 5, 6], [4, 9, 5]])
    result = fisher_exact_test(table, simulate_p_value=True, replicates=20_000, seed=1)
    assert result.p == pytest.approx(0.282360228768355, abs=0.01)  # ±3 binomial SDs at B = 20,000
    assert result.method == "simulated (20000 replicates)"
    again = fisher_exact_test(table, simulate_p_value=True, replicates=20_000, seed=1)
    assert again.p == result.p


@pytest.mark.parametrize(
    ("table", "r_p"),
    [
        # R 4.2.2: fisher.test(m, workspace = 2e8)$p.value, printed with %.15g
        ([[3, 1, 2], [1, 5, 6], [4, 9, 5]], 0.282360228768355),
        ([[3, 4, 3], [7, 1, 8], [6, 6, 1]], 0.0413705036396561),
        ([[6, 8, 2, 9], [1, 17, 6, 3], [4, 12, 1, 3]], 0.0241080523216522),
    ],
)
def test_fisher_r_by_c_is_exact_as_r_network_algorithm(table: list[list[int]], r_p: float) -> None:
    result = fisher_exact_test(np.array(table))
    assert result.method == "exact"
    assert result.p == pytest.approx(r_p, rel=1e-6)
    assert fisher_exact_test(np.array(table).T).p == pytest.approx(r_p, rel=1e-6)


@pytest.mark.parametrize(
    ("table", "r_p"),
    [
        # Issue 14: refused here (beyond 200,000 steps per column) though R answers them at its
        # default workspace. R 4.2.2: fisher.test(m)$p.value, printed with %.15g, where
        # m <- matrix(c(...), nrow = length(table), byrow = TRUE) holds the rows below.
        ([[9, 9, 5, 8], [9, 9, 5, 3], [10, 12, 5, 2], [4, 11, 6, 9]], 0.343142454897644),
        ([[91, 14, 2], [31, 6, 70], [16, 38, 30]], 2.36024766281343e-36),
        ([[17, 23, 33, 26], [15, 21, 22, 30], [23, 17, 17, 23]], 0.315299728045323),
        ([[7, 8, 7, 7], [2, 1, 7, 5], [8, 11, 7, 12], [2, 0, 1, 3]], 0.394345818586349),
        ([[7, 0, 4, 2, 3], [2, 3, 3, 5, 2], [1, 1, 5, 2, 1], [5, 5, 3, 4, 2]], 0.337162487989602),
        (
            [[2, 3, 3, 3, 2], [6, 2, 2, 1, 1], [3, 5, 4, 1, 2], [2, 5, 2, 5, 3], [3, 5, 3, 1, 3]],
            0.81471039199954,
        ),
    ],
)
def test_fisher_r_by_c_answers_every_table_r_answers_at_its_default_workspace(
    table: list[list[int]], r_p: float
) -> None:
    # Relative agreement, tiny p included (1 − the share of the rest loses it: 7e-5 off once).
    result = fisher_exact_test(np.array(table))
    assert result.method == "exact"
    assert result.p == pytest.approx(r_p, rel=1e-7, abs=0)
    assert fisher_exact_test(np.array(table).T).p == pytest.approx(r_p, rel=1e-7, abs=0)


def test_fisher_r_by_c_beyond_r_default_workspace_as_r_with_more() -> None:
    # R: fisher.test(m) stops ("FEXACT error 6. LDKEY=621 is too small"); with
    # fisher.test(m, workspace = 2e8)$p.value it prints 0.8716492870214.
    table = np.array([[10, 12, 9, 11], [8, 14, 10, 9], [12, 7, 11, 10], [9, 11, 8, 13]])
    assert fisher_exact_test(table).p == pytest.approx(0.8716492870214, rel=1e-6)


def _all_tables(rows: list[int], columns: list[int]) -> Iterator[np.ndarray]:
    """Every table with these margins: each row's cells, by brute force."""
    if len(rows) == 1:
        yield np.array([columns])
        return
    for first in itertools.product(*(range(min(c, rows[0]) + 1) for c in columns)):
        if sum(first) == rows[0]:
            rest = [c - x for c, x in zip(columns, first, strict=True)]
            for below in _all_tables(rows[1:], rest):
                yield np.vstack([first, below])


@pytest.mark.parametrize(
    "table",
    [
        [[2, 0, 1], [0, 3, 1], [1, 1, 2]],
        [[4, 0, 0], [0, 4, 0], [0, 0, 4]],  # ties: the permuted diagonals are as likely
        [[1, 2, 0, 3], [2, 0, 2, 1], [0, 1, 3, 0]],
        [[3, 1, 0, 0], [0, 2, 1, 1], [1, 0, 2, 1], [0, 1, 1, 2]],
        [[2, 0, 1, 1, 0], [0, 1, 1, 0, 2], [1, 1, 0, 2, 0]],
    ],
)
def test_fisher_r_by_c_sums_every_table_no_more_likely_than_the_observed(table: list[list[int]]) -> None:
    observed = np.array(table)
    rows, columns = observed.sum(axis=1).tolist(), observed.sum(axis=0).tolist()
    log_likelihood = [-special.gammaln(t + 1).sum() for t in _all_tables(rows, columns)]
    mine = -special.gammaln(observed + 1).sum()
    weights = np.exp(np.array(log_likelihood) - mine)
    expected = weights[weights <= 1 + 1e-7].sum() / weights.sum()
    assert fisher_exact_test(observed).p == pytest.approx(expected, rel=1e-9)
    assert fisher_exact_test(observed.T).p == pytest.approx(expected, rel=1e-9)


def test_fisher_r_by_c_beyond_about_a_second_of_work_names_the_simulated_option() -> None:
    # R stops too: fisher.test(m) ("FEXACT error 6. LDKEY=621 is too small for this problem").
    table = np.array([[14, 26, 20, 18], [7, 11, 31, 15], [12, 31, 15, 17], [6, 3, 14, 10]])
    with pytest.raises(AnalysisError, match="too large for exact enumeration.*simulate_p_value=True"):
        fisher_exact_test(table)


def test_fisher_r_by_c_of_the_most_likely_table_is_one() -> None:
    # Every cell at its expected count: no table is more likely, p = 1. R stops on it
    # (fisher.test(matrix(20, 5, 5)): "FEXACT error 501"); refused here too before fillings that
    # only permute equal rows were counted once (the rows are all equal at the root).
    assert fisher_exact_test(np.full((5, 5), 20)).p == pytest.approx(1.0, rel=1e-12)


def test_chi_square_applies_yates_only_to_two_by_two() -> None:
    # Expected 15 in every cell, |O - E| = 5 shrunk to 4.5: 4 × 4.5² / 15 = 5.4
    two_by_two = chi_square_test(np.array([[10, 20], [20, 10]]))
    assert (two_by_two.test, two_by_two.statistic) == ("chi-square, Yates-corrected", pytest.approx(5.4))
    assert chi_square_test(np.array([[10, 20, 5], [20, 10, 5]])).test == "chi-square"


def test_chi_square_without_the_correction_is_pearsons_as_r_and_spss_print_it() -> None:
    # R: chisq.test(matrix(c(17, 17, 2, 5), 2), correct = FALSE) -> X-squared 1.0719412167, p 0.3005073823
    # (the LM paper's ECOG PS counts: of SPSS's tests, Pearson's is nearest the 0.302 it prints)
    pearson = chi_square_test(np.array([[17, 2], [17, 5]]), correct=False)
    assert pearson.test == "chi-square"
    assert pearson.statistic == pytest.approx(1.0719412167, rel=1e-9)
    assert pearson.p == pytest.approx(0.3005073823, rel=1e-9)


def test_fisher_r_by_c_where_r_counts_tables_more_likely_than_the_observed() -> None:
    # R 4.2.2 fisher.test(m)$p.value = 0.0918937379137286, 3.3e-6 above the p here. FEXACT
    # counts every table whose log-probability is within tol = 3.45254e-7 above the observed
    # (f2xact: obs = tol + ...), not fisher.test's 2×2 relErr of 1e-7; this table has three more
    # likely by 2.4e-7 to 2.6e-7, found by enumerating every table within 1e-6 (four others are
    # exact ties and count on both sides). The exact p (ties only) is the one here; R's equals it
    # plus those three tables.
    observed = [[23, 14, 16, 12], [32, 38, 28, 24], [7, 12, 4, 14]]
    more_likely = [
        [[19, 21, 11, 14], [37, 36, 28, 21], [6, 7, 9, 15]],
        [[19, 21, 11, 14], [36, 37, 28, 21], [7, 6, 9, 15]],
        [[13, 23, 17, 12], [37, 34, 19, 32], [12, 7, 12, 6]],
    ]

    def probability(table: list[list[int]]) -> Fraction:
        cells = np.array(table)
        margins = [*cells.sum(axis=0).tolist(), *cells.sum(axis=1).tolist()]
        numerator = math.prod(math.factorial(m) for m in margins)
        return Fraction(
            numerator, math.factorial(int(cells.sum())) * math.prod(map(math.factorial, cells.flat))
        )

    for table in more_likely:
        assert (np.array(table).sum(axis=0) == np.array(observed).sum(axis=0)).all()
        assert (np.array(table).sum(axis=1) == np.array(observed).sum(axis=1)).all()
        assert 1 + 2e-7 < probability(table) / probability(observed) < 1 + 3e-7
    p = fisher_exact_test(np.array(observed)).p
    assert p + float(sum(map(probability, more_likely))) == pytest.approx(0.0918937379137286, rel=1e-9)
