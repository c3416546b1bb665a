"""The ways ``analytics.fisher_network`` sums an r×c table agree wherever more than one applies:
every table as one grid (small tables), partial tables against sorted completions (small
networks) and the network with exact bounds (any table)."""

from __future__ import annotations

import functools
import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from analytics import fisher_network
from analytics.fisher_network import (
    EVERY_TABLE_LIMIT,
    _every_table_p,
    _fillings,
    _Network,
    _oriented,
    _symmetric_weight,
)

TOLERANCE = 1e-7  # fisher.test's relErr − 1


def _free_cell_sizes(table: np.ndarray) -> list[int]:
    """How many values each free cell can take (all rows but the largest, all columns but the
    largest), for a table with rows and columns ascending: the size of the every-table grid."""
    rows, columns = table.sum(axis=1).tolist(), table.sum(axis=0).tolist()
    return [min(row, column) + 1 for row in rows[:-1] for column in columns[:-1]]


def _ascending(table: np.ndarray) -> np.ndarray:
    return table[np.argsort(table.sum(axis=1), kind="stable")][
        :, np.argsort(table.sum(axis=0), kind="stable")
    ]


@pytest.mark.parametrize(
    "table",
    [
        [[3, 1, 2], [1, 5, 6], [4, 9, 5]],
        [[4, 0, 0], [0, 4, 0], [0, 0, 4]],
        [[2, 0, 3, 1], [1, 4, 1, 2], [0, 2, 5, 1]],
        [[3, 1, 0, 0], [0, 2, 1, 1], [1, 0, 2, 1], [0, 1, 1, 2]],
        [[1, 0, 2, 1, 3], [2, 2, 0, 1, 0], [0, 3, 1, 0, 2]],
        [[6, 8, 2, 9], [1, 17, 6, 3], [4, 12, 1, 3]],
        [[5, 0, 2], [1, 6, 3], [2, 2, 7], [0, 4, 1]],
        [[2, 2, 2, 2], [2, 2, 2, 2], [2, 2, 2, 2]],  # p = 1: every partial table counts whole
        [[2, 2, 2, 3], [3, 2, 2, 2], [2, 3, 2, 2]],
    ],
)
def test_every_way_of_summing_gives_the_network_p(table: list[list[int]]) -> None:
    observed = np.array(table)
    network = _Network(_oriented(observed), TOLERANCE)
    bounded = network.network_p()
    by_sorting = network.sorted_completions_p()
    assert by_sorting is not None
    assert by_sorting == pytest.approx(bounded, rel=1e-9)
    ascending = _ascending(observed)
    if np.prod(_free_cell_sizes(ascending)) <= EVERY_TABLE_LIMIT:
        assert _every_table_p(ascending, TOLERANCE) == pytest.approx(bounded, rel=1e-9)


def test_sorted_completions_leave_large_networks_to_the_bounds() -> None:
    # 4×4 of n = 116 (issue 14's table): far more partial tables than PARTIAL_LIMIT.
    table = np.array([[9, 9, 5, 8], [9, 9, 5, 3], [10, 12, 5, 2], [4, 11, 6, 9]])
    assert _Network(_oriented(table), TOLERANCE).sorted_completions_p() is None


@pytest.mark.parametrize(
    "table",
    [
        [[6, 8, 2, 9], [1, 17, 6, 3], [4, 12, 1, 3]],
        [[7, 8, 7, 7], [2, 1, 7, 5], [8, 11, 7, 12], [2, 0, 1, 3]],
        [[2, 0, 3, 1], [1, 4, 1, 2], [0, 2, 5, 1]],
    ],
)
def test_by_sorting_counts_every_table_of_the_chosen_nodes(table: list[list[int]]) -> None:
    # The network's pasts with two columns left, half their nodes chosen: ``by_sorting`` (whole
    # lines in closed form, the others point by point) against every past with every point.
    network = _Network(_oriented(np.array(table)), TOLERANCE)
    pasts = fisher_network._Pasts(
        np.array([int(network.rows[:-1] @ network.place)]),
        np.zeros(1, dtype=np.int64),
        np.zeros(1),
        np.ones(1),
    )
    for stage in range(network.last_stage):
        pasts = network.advance(stage, pasts)[1]
    lines = fisher_network._Lines(
        network.decode(pasts.nodes, network.last_stage),
        int(network.columns[-2]),
        network.log_factorial,
        network.ranges,
    )
    chosen = np.random.default_rng(0).random(len(pasts.nodes)) < 0.5
    expected, whole = 0.0, 0
    for line in np.flatnonzero(chosen[lines.owner]):
        y = np.arange(lines.low[line], lines.high[line] + 1)
        weight = lines.log_weight(y, np.full(len(y), line))
        mine = pasts.node == lines.owner[line]
        value, count = pasts.value[mine][:, None], pasts.count[mine][:, None]
        total = value + weight[None, :]
        expected += float((count * np.exp(total - network.log_total) * (total <= network.threshold)).sum())
        whole += bool((total <= network.threshold).all())
    assert 0 < whole < len(np.flatnonzero(chosen[lines.owner]))  # both ways of summing a line used
    assert network.by_sorting(lines, pasts, chosen) == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("total", [0, 1, 5, 9])
def test_symmetric_fillings_stand_for_every_filling(total: int) -> None:
    # Each filling, its cells sorted (descending) within runs of equal row totals, is the one
    # symmetric filling standing for it; its weight is how many fillings that is.
    room = np.array([[3, 3, 5, 5, 5], [2, 2, 2, 2, 2], [1, 4, 4, 6, 6], [0, 3, 3, 3, 7], [1, 2, 3, 4, 5]])

    def canonical(owner: int, cells: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        row, out, start = room[owner].tolist(), list(cells), 0
        for end in range(1, len(row) + 1):
            if end == len(row) or row[end] != row[start]:
                out[start:end] = sorted(out[start:end], reverse=True)
                start = end
        return owner, tuple(out)

    owner, cells = _fillings(room, total)
    every: dict[tuple[int, tuple[int, ...]], int] = {}
    for i, filling in enumerate(zip(*(cell.tolist() for cell in cells), strict=True)):
        key = canonical(int(owner[i]), filling)
        every[key] = every.get(key, 0) + 1
    owner, cells = _fillings(room, total, symmetric=True)
    weight = _symmetric_weight(room[owner], cells)
    symmetric = {
        (int(owner[i]), filling): weight[i]
        for i, filling in enumerate(zip(*(cell.tolist() for cell in cells), strict=True))
    }
    assert len(symmetric) == len(owner)  # no filling twice
    assert symmetric == every


@pytest.mark.parametrize(
    "table",
    [
        [[91, 14, 2], [31, 6, 70], [16, 38, 30]],  # p 2.4e-36: 40,352 crossings walked
        [[9, 9, 5, 8], [9, 9, 5, 3], [10, 12, 5, 2], [4, 11, 6, 9]],  # p 0.34: long tails
        [[12, 2, 9], [1, 14, 3], [7, 4, 22]],
    ],
)
@pytest.mark.parametrize("walk_range", [700.0, -np.inf])
def test_walked_tails_give_the_bisected_p(
    table: list[list[int]], walk_range: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every crossing walked, or every walk refused as underflowing (bisected): the same p.
    expected = _Network(_oriented(np.array(table)), TOLERANCE).network_p()
    monkeypatch.setattr(fisher_network, "WALK_RANGE", walk_range)
    assert _Network(_oriented(np.array(table)), TOLERANCE).network_p() == pytest.approx(
        expected, rel=1e-9, abs=0
    )


@pytest.mark.parametrize("width", [2, 3, 4, 5])
def test_most_likely_split_is_the_best_of_every_split(width: int) -> None:
    # Every split of ``first`` under random row totals (uneven, with zeros) enumerated.
    rng = np.random.default_rng(width)
    log_factorial = fisher_network._log_factorials(60)
    for _ in range(40):
        rows = rng.integers(0, rng.choice([3, 8, 14]), size=(1, width))
        first = int(rng.integers(0, rows.sum() + 1))
        best = max(
            -float(sum(log_factorial[x] + log_factorial[m - x] for x, m in zip(split, rows[0], strict=True)))
            for split in itertools.product(*(range(m + 1) for m in rows[0].tolist()))
            if sum(split) == first
        )
        cells = fisher_network._most_likely_split(rows, first)
        assert cells.sum() == first and (cells >= 0).all() and (cells <= rows).all()
        found = -(log_factorial[cells] + log_factorial[rows - cells]).sum()
        assert found == pytest.approx(best, rel=1e-12, abs=1e-12), (rows, first)


@pytest.mark.parametrize("block", [1 << 17, 16, 1])
def test_inward_sums_add_each_rows_terms_at_most_one(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Low tails of random lines (some longer than a block of cells, some empty), each walked up
    # from the line's end to a bracket at or one past its last point ≤ room, against their
    # weights summed one by one in Python; shorter rows of a block walk on past their mode.
    monkeypatch.setattr(fisher_network, "WALK_BLOCK", block)
    rng = np.random.default_rng(block)
    f = fisher_network._log_factorials(400)
    firsts, numerators, denominators, sizes, expected = [], [], [], [], []
    for _ in range(300):
        big, shared, excess = (int(x) for x in rng.integers(1, 90, size=3))
        shared = min(shared, big)
        y = np.arange(shared + 1)
        weight = -(f[y] + f[big - y] + f[shared - y] + f[excess + y])
        mode = int(np.argmax(weight))
        room = weight[mode] - rng.uniform(0.0, 30.0)
        inside = np.flatnonzero(weight[: mode + 1] <= room)
        size = min(int(inside[-1]) + 1 + int(rng.integers(0, 2)), mode) if len(inside) else 0
        firsts.append(np.exp(weight[0] - room))
        numerators.append((big, shared))
        denominators.append((1, excess + 1))
        sizes.append(size)
        expected.append(float(np.exp(weight[:size][weight[:size] <= room] - room).sum()))
    a, b = (np.array(column, dtype=float) for column in zip(*numerators, strict=True))
    c, d = (np.array(column, dtype=float) for column in zip(*denominators, strict=True))
    sums = fisher_network._inward_sums(np.array(firsts), (a, b), (c, d), np.array(sizes))
    assert sums == pytest.approx(expected, rel=1e-12, abs=0)
    assert sum(size > 0 for size in sizes) > 100


@pytest.mark.parametrize("table", [[[12, 2, 9], [1, 14, 3], [7, 4, 22]], [[0, 9, 1], [8, 1, 7], [3, 6, 0]]])
@pytest.mark.parametrize("walk_range", [700.0, -np.inf])
def test_walked_tails_give_the_exact_p(
    table: list[list[int]], walk_range: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fisher_network, "WALK_RANGE", walk_range)
    p = _Network(_oriented(np.array(table)), TOLERANCE).network_p()
    assert p == pytest.approx(_exact_rxc_p(table), rel=1e-10, abs=0)


def _exact_rxc_p(table: list[list[int]]) -> float:
    """The two-sided p by exact enumeration in fractions, any small r×c: every free block (all
    rows and columns but the last) with the margins, Π 1/x! compared exactly."""
    rows, columns = [sum(row) for row in table], [sum(column) for column in zip(*table, strict=True)]
    r, c = len(rows), len(columns)

    def weight(cells: list[list[int]]) -> Fraction:
        return Fraction(1, math.prod(math.factorial(x) for row in cells for x in row))

    threshold, total, counted = weight(table) * (1 + Fraction(1, 10**7)), Fraction(0), Fraction(0)
    ranges = [range(min(rows[i], columns[j]) + 1) for i in range(r - 1) for j in range(c - 1)]
    for free in itertools.product(*ranges):
        cells = [list(free[i * (c - 1) : (i + 1) * (c - 1)]) for i in range(r - 1)]
        for i, row in enumerate(cells):
            row.append(rows[i] - sum(row))
        cells.append([columns[j] - sum(row[j] for row in cells) for j in range(c)])
        if min(min(row) for row in cells) < 0:
            continue
        w = weight(cells)
        total += w
        counted += w if w <= threshold else 0
    return float(counted / total)


@pytest.mark.parametrize(
    "table",
    [
        [[3, 1, 2], [1, 5, 6], [4, 9, 5]],
        [[0, 0, 5], [1, 0, 0], [0, 7, 0]],  # infeasible row fillings and corners everywhere
        [[2, 0, 3, 1], [1, 4, 1, 2], [0, 2, 5, 1]],
        [[2, 0, 1], [1, 3, 1], [1, 1, 2], [0, 2, 1]],  # three free rows: a 3-d grid
        [[1, 0, 2, 1, 3], [2, 2, 0, 1, 0], [0, 3, 1, 0, 2]],
        [[4, 4, 4], [4, 4, 4], [4, 4, 4]],  # ties: every permutation of the observed counts
        [[1, 1, 1], [1, 1, 1], [0, 0, 30]],  # small rows, a large column: key spans, not boxes
    ],
)
def test_every_table_grid_gives_the_exact_p(table: list[list[int]]) -> None:
    # The grid over the free rows' fillings, keyed by the free columns' partial sums, against
    # exact fractions; through fisher_rxc_p too (its margins sorted as lists).
    expected = _exact_rxc_p(table)
    assert _every_table_p(_ascending(np.array(table)), TOLERANCE) == pytest.approx(expected, rel=1e-10, abs=0)
    assert fisher_network.fisher_rxc_p(np.array(table), TOLERANCE) == pytest.approx(
        expected, rel=1e-10, abs=0
    )


def test_every_table_grid_on_random_tables() -> None:
    rng = np.random.default_rng(20261206)
    for _ in range(20):
        shape = (3, int(rng.integers(3, 5)))
        table = rng.integers(0, 3, size=shape).tolist()
        if min(sum(row) for row in table) == 0 or min(map(sum, zip(*table, strict=True))) == 0:
            continue
        expected = _exact_rxc_p(table)
        assert fisher_network.fisher_rxc_p(np.array(table), TOLERANCE) == pytest.approx(
            expected, rel=1e-10, abs=0
        ), table


@pytest.mark.parametrize("segments", [1, 7, 60])
def test_sorted_segment_searches_and_running_sums_agree_with_the_plain_ones(segments: int) -> None:
    # Values sorted within segments count as a plain comparison does; running sums from the
    # padded grid (even segments) equal the doubling's (``_segment_cumsum``).
    rng = np.random.default_rng(segments)
    segment, values = rng.integers(0, segments, size=2_000), rng.normal(0, 5, size=2_000)
    order = fisher_network._SortedSegments.order(values, segment)
    assert (np.sort(order) == np.arange(2_000)).all()
    index = fisher_network._SortedSegments(values[order], segment[order], segments)
    owner, query = rng.integers(0, segments, size=900), rng.normal(0, 6, size=900)
    expected = ((segment[None, :] == owner[:, None]) & (values[None, :] <= query[:, None])).sum(axis=1)
    assert (index.count_at_most(owner, query) == expected).all()
    counts = rng.integers(1, 4, size=2_000).astype(float)
    prefix, top = index.running_mass(counts)
    doubled = fisher_network._segment_cumsum(
        counts * np.exp(index.values - top[index.segment]), index.position
    )
    assert prefix == pytest.approx(doubled, rel=1e-13, abs=0)


@pytest.mark.parametrize("spread", [1.0, 1e4, 1e12])
def test_key_order_sorts_up_to_the_quantum(spread: float) -> None:
    # Packed integer sort (narrow keys) or argsort (wide ones): a permutation, sorted up to
    # ORDER_QUANTUM, exact ties and near ties included.
    rng = np.random.default_rng(7)
    keys = np.concatenate(
        [rng.uniform(-spread, spread, 3_000), np.full(50, 0.25), 0.25 + rng.uniform(0, 1e-12, 50)]
    )
    rng.shuffle(keys)
    order = fisher_network._key_order(keys)
    assert (np.sort(order) == np.arange(len(keys))).all()
    assert (np.diff(keys[order]) >= -fisher_network.ORDER_QUANTUM).all()


@pytest.mark.parametrize("hint", [1, 1 << 14])
def test_merged_counts_equal_pasts_once(hint: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pasts hashed into a table that must grow (hint 1) or need not: each (child, value) once,
    # sorted by child then value, with its counts summed; nodes only those reached.
    monkeypatch.setattr(fisher_network, "MERGE_HASH_HINT", hint)
    rng = np.random.default_rng(hint)
    nodes = np.arange(100, 130)
    child, value = rng.integers(0, 30, size=5_000), rng.integers(-40, 0, size=5_000) / 4.0
    child[child == 7] = 8  # a node no past reaches
    count = rng.integers(1, 5, size=5_000).astype(float)
    totals: dict[tuple[int, float], float] = {}
    for c, v, n in zip(child.tolist(), value.tolist(), count.tolist(), strict=True):
        totals[(c, v)] = totals.get((c, v), 0.0) + n
    expected = sorted(totals)
    merged = fisher_network._merged(nodes, child, value, count)
    assert merged.nodes.tolist() == [100 + c for c in sorted({c for c, _ in expected})]
    assert merged.nodes[merged.node].tolist() == [100 + c for c, _ in expected]
    assert merged.value.tolist() == [v for _, v in expected]
    assert merged.count.tolist() == [totals[key] for key in expected]


def test_sorted_distinct_is_unique_of_sorted_values() -> None:
    values = np.sort(np.random.default_rng(3).integers(0, 50, size=400))
    found, inverse = fisher_network._sorted_distinct(values)
    expected, expected_inverse = np.unique(values, return_inverse=True)
    assert found.tolist() == expected.tolist()
    assert inverse.tolist() == expected_inverse.tolist()
    assert [len(part) for part in fisher_network._sorted_distinct(values[:0])] == [0, 0]


def test_fill_new_gives_each_node_the_fillings_fill_gives() -> None:
    # Nodes filled in fill_new's order (tied rows first) carry the same fillings as through fill's
    # memo in the order asked, and are memoized for fill.
    table = _oriented(
        _ascending(np.array([[7, 0, 4, 2, 3], [2, 3, 3, 5, 2], [1, 1, 5, 2, 1], [5, 5, 3, 4, 2]]))
    )
    network = _Network(table, TOLERANCE)
    codes = np.unique(network.fill(0, np.array([int(network.rows[:-1] @ network.place)]))[1])
    owner, child, steps, weight = network.fill(1, codes)
    fresh = _Network(table, TOLERANCE)
    order, new_owner, new_child, new_steps, new_weight = fresh.fill_new(1, codes)
    assert sorted(order.tolist()) == codes.tolist() and len(order) > 20
    assert bool((np.diff(new_owner) >= 0).all())
    for i, code in enumerate(codes.tolist()):
        j = order.tolist().index(code)
        mine, theirs = owner == i, new_owner == j
        assert new_child[theirs].tolist() == child[mine].tolist()
        assert new_steps[theirs].tolist() == steps[mine].tolist()
        assert new_weight[theirs].tolist() == weight[mine].tolist()
        assert [part.tolist() for part in fresh.filled[1][code]] == [
            child[mine].tolist(),
            steps[mine].tolist(),
            weight[mine].tolist(),
        ]


@functools.cache
def _best_and_worst(rows: tuple[int, ...], columns: tuple[int, ...]) -> tuple[float, float]:
    """max and min of −Σ log x! over every table with these margins, by brute force (the first
    row's cells, its last one derived, then the rest memoized)."""
    if len(rows) == 1:
        weight = -sum(math.lgamma(c + 1) for c in columns)
        return weight, weight
    best, worst = -math.inf, math.inf
    for free in itertools.product(*(range(min(c, rows[0]) + 1) for c in columns[:-1])):
        first = (*free, rows[0] - sum(free))
        if 0 <= first[-1] <= columns[-1]:
            head = -sum(math.lgamma(x + 1) for x in first)
            most, least = _best_and_worst(rows[1:], tuple(c - x for c, x in zip(columns, first, strict=True)))
            best, worst = max(best, head + most), min(worst, head + least)
    return best, worst


def test_exact_bounds_of_three_column_nodes_are_the_best_and_worst_completions() -> None:
    # The bounds come back in the order the nodes were asked for, though fill_new fills nodes
    # with tied rows first (the 3×4's stage-1 nodes have three columns left).
    table = _oriented(_ascending(np.array([[6, 8, 2, 9], [1, 17, 6, 3], [4, 12, 1, 3]])))
    network = _Network(table, TOLERANCE)
    codes = np.unique(network.fill(0, np.array([int(network.rows[:-1] @ network.place)]))[1])
    rows = network.decode(codes, 1)
    assert bool((rows[:, 1:] == rows[:, :-1]).any(axis=1).any()) and len(codes) > 20
    most, least = network.exact_bounds(1, codes)
    columns = tuple(network.columns[1:].tolist())
    for i, node in enumerate(rows.tolist()):
        best, worst = _best_and_worst(tuple(node), columns)
        assert most[i] == pytest.approx(best, rel=1e-12)
        assert least[i] == pytest.approx(worst, rel=1e-12)
