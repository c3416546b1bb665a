"""Fisher's exact test on r×c tables (both dimensions 3 or more), as R's ``fisher.test`` computes it.

Mehta and Patel's network algorithm in the form R's FEXACT gives it. The table is turned to have
fewer rows than columns (a square one the cheaper way), and its columns are filled one at a time,
smallest total first. A *node* is the sorted multiset of the row totals still to fill: rows with
equal remaining totals are exchangeable, so every partial table reaching a node has the same
completions. A node carries the
distinct likelihoods of the partial tables reaching it (their "pasts", −Σ log x! over the filled
cells) with their counts.

Each node has an exact most likely and least likely completion (FEXACT's longest and shortest
paths). A past whose most likely completion is no more likely than the observed table counts with
all its completions (their total is a multinomial coefficient); one whose least likely completion
is more likely is dropped; only pasts in between go on to the next column. Exact bounds are closed
form with two columns left and, with three, the best and worst over the column's fillings of the
filling's likelihood plus the child node's closed form; they are computed only for nodes where
cheap bounds (no search) leave some past undecided. Nodes with more columns left keep the cheap
bounds: any bounds give the same p, looser ones only carry more pasts to the next column, and
there exact ones had cost more than the pasts they spared.

Where numpy changes the bookkeeping (FEXACT visits one past at a time): a node's pasts are kept
sorted, so the counted ones are a prefix and are summed from prefix sums; with two columns left a
node's completions are lines (cells of all rows but the two largest fixed) along which the last two
rows follow a hypergeometric law: a line's total is known (Vandermonde), its mode too, and the
pasts of a node fall in three sorted runs per line — counting all of it, crossing it (two tails,
walked from the line's ends, bisected only where the walk would underflow), none of it; a node whose crossings would cost more lists its
completions once, each searching the node's sorted pasts (``_Network.by_sorting``).

Small tables skip the network, whose cost there is its number of numpy calls (about a
microsecond each): up to EVERY_TABLE_LIMIT grid points every table is summed as one broadcast
grid (``_every_table_p``); a network whose partial tables before the last two columns and whose
completions are few is summed without bounds, each completion counted against its node's partial
tables sorted once (``_Network.sorted_completions_p``).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from analytics.errors import AnalysisError

MERGE_TOLERANCE = 1e-9  # pasts closer than this (log scale) are one past: sums in another order
MERGE_HASH_HINT = 1 << 14  # keys ``_merged`` sizes its hash table for at first (it grows as needed)
MAX_WORK = 4_000_000  # fillings, pasts and completions handled (about a second at most); beyond: refuse
DENSE_CODES = 1 << 22  # node codes indexed through a lookup array up to this many possible codes
SORTING_COST = 4  # listing a completion costs about this many points summed along a crossed line
EVERY_TABLE_LIMIT = 50_000  # grid points up to which every table is enumerated outright (small tables)
WALK_BLOCK = 1 << 17  # cells of one block of tails walked at once (``_inward_sums``)
WALK_RANGE = 700.0  # a tail whose line end lies more than e^this below room would underflow: bisected
ORDER_QUANTUM = 1e-9  # keys closer than this may be sorted in either order (``_key_order``)
PARTIAL_LIMIT = 20_000  # grid points of the columns before the last two, for ``sorted_completions_p``
COMPLETIONS_PER_STAGE = 15_000  # completions per column before the last two, for ``sorted_completions_p``


def _ranges(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every integer of low[i]..high[i], for every i: (i, value) pairs, i non-decreasing."""
    sizes = high - low + 1
    owner = np.repeat(np.arange(len(sizes)), sizes)
    return owner, low[owner] + np.arange(len(owner)) - (np.cumsum(sizes) - sizes)[owner]


def _key_order(keys: np.ndarray) -> np.ndarray:
    """An order sorting ``keys`` up to keys closer than ORDER_QUANTUM (those may come in index
    order): each key quantized to an integer, its index packed into the low bits, the integers
    sorted. numpy sorts int64 values about 3× as fast as it argsorts floats (8,872 keys of the
    3×4 of n = 72: ~60 µs against ~150–260 µs). Where the quantum would be coarser than
    ORDER_QUANTUM (a wide range of keys, or very many), a plain argsort."""
    size = len(keys)
    bits = max(size - 1, 1).bit_length()
    if size < 2:
        return np.arange(size)
    low, high = float(keys.min()), float(keys.max())
    step = (high - low) / 2.0 ** (62 - bits)
    if not 0.0 < step <= ORDER_QUANTUM:
        return np.argsort(keys)
    packed = ((keys - low) / step).astype(np.int64) << bits | np.arange(size)
    packed.sort()
    return np.asarray(packed & ((1 << bits) - 1))


Ranges = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _fillings(
    room: np.ndarray, total: int, ranges: Ranges = _ranges, *, symmetric: bool = False
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every way to put ``total`` into cells under each row of ``room`` (cells ≤ room): the row of
    ``room`` each filling came from (non-decreasing) and its cells, one array per column of room.
    Built cell by cell, each partial filling repeated once per value its next cell can take.
    ``symmetric``: of the fillings that differ only by permuting cells between equal entries of a
    row of room, only the one with those cells non-increasing (``symmetric_weight`` counts them)."""
    width = room.shape[1]
    columns = list(room.T)  # 1-d takes: indexing a 2-d array by (rows, column) cost more
    after = list((room.sum(axis=1, keepdims=True) - np.cumsum(room, axis=1)).T)  # room after each cell
    owner, left = np.arange(len(room)), np.full(len(room), total, dtype=np.int64)
    levels, value = [], left
    for cell in range(width - 1):
        cap = columns[cell][owner]
        low = np.maximum(0, left - after[cell][owner])
        high = np.minimum(cap, left)
        if symmetric and cell:  # the cap can leave a partial filling no value: an empty range
            high = np.where(cap == columns[cell - 1][owner], np.minimum(high, value), high)
            high = np.maximum(high, low - 1)
        repeat, value = ranges(low, high)
        levels.append((repeat, value))
        owner, left = owner[repeat], left[repeat] - value
    index = np.arange(len(left))
    if symmetric and width > 1:
        index = np.flatnonzero((columns[-1][owner] != columns[-2][owner]) | (left <= value))
        owner = owner[index]
    cells = [left[index]]
    for repeat, value in reversed(levels):
        cells.append(value[index])
        index = repeat[index]
    return owner, cells[::-1]


def _symmetric_weight(rows: np.ndarray, cells: list[np.ndarray]) -> np.ndarray:
    """How many fillings each symmetric one stands for (``_fillings(symmetric=True)``): per run
    of equal row entries, its length! / Π (multiplicity of each cell value)!, built position by
    position (each partial product is itself such a count, so every division is exact)."""
    weight = np.ones(len(rows))
    position, repeats = np.ones(len(rows)), np.ones(len(rows))
    for i in range(1, len(cells)):
        same = rows[:, i] == rows[:, i - 1]
        position = np.where(same, position + 1, 1.0)
        repeats = np.where(same & (cells[i] == cells[i - 1]), repeats + 1, 1.0)
        weight = weight * position / repeats
    return weight


def _sorted_columns(columns: list[np.ndarray]) -> list[np.ndarray]:
    """Sort values across equal-length arrays, elementwise (a bubble-sort network: r ≤ 5)."""
    columns = list(columns)
    for end in range(len(columns) - 1, 0, -1):
        for i in range(end):
            low, high = columns[i], columns[i + 1]
            columns[i], columns[i + 1] = np.minimum(low, high), np.maximum(low, high)
    return columns


def _even_log_factorials(total: np.ndarray, parts: int, log_factorial: np.ndarray) -> np.ndarray:
    """min Σ log x! over ``parts`` cells summing to ``total``: the cells as even as possible."""
    share, extra = np.divmod(total, parts)
    return np.asarray((parts - extra) * log_factorial[share] + extra * log_factorial[share + 1])


@functools.lru_cache(maxsize=8)
def _vertices(width: int) -> tuple[np.ndarray, np.ndarray]:
    """The vertices of the filling polytope of ``width`` rows: the free row of each, and which rows
    are full (the free one marked empty). Built once per width (building them cost 0.25 ms a call)."""
    vertices = [
        (free, np.insert(full, free, 0))
        for free in range(width)
        for full in itertools.product((0, 1), repeat=width - 1)
    ]
    free = np.array([vertex[0] for vertex in vertices])
    full = np.array([vertex[1] for vertex in vertices])
    free.flags.writeable = full.flags.writeable = False
    return free, full


def _two_column_bounds(
    rows: np.ndarray, first: int, log_factorial: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact most and least likely completions of each node with two columns left, the first of
    total ``first``: max and min over x (Σx = first, x ≤ m) of Σ −log x! − log (m − x)!. Each row's
    term is concave in its cell, so the maximum is where no unit moved between two rows gains
    (``_most_likely_split``), and the minimum is at a vertex: every row's cell 0 or full but one
    row's, which takes the rest."""
    width = rows.shape[1]
    base = -log_factorial[rows].sum(axis=1)
    cells = _most_likely_split(rows, first)
    most = -(log_factorial[cells] + log_factorial[rows - cells]).sum(axis=1)
    free, full = _vertices(width)
    held, room = first - rows @ full.T, rows[:, free]  # what the free row's cell takes
    inside = (held >= 0) & (held <= room)
    held = np.clip(held, 0, room)
    split = log_factorial[room] - log_factorial[held] - log_factorial[room - held]
    return most, base + np.where(inside, split, np.inf).min(axis=1)


def _most_likely_split(rows: np.ndarray, first: int) -> np.ndarray:
    """Per row of ``rows`` (m), the cells x (Σx = ``first``, 0 ≤ x ≤ m) maximizing
    Σ −log x! − log (m − x)!: a separable concave function, so a split from which no unit moved
    between two cells gains is the maximum. Start from the proportional floors ⌊first·m/Σm⌋, give
    the shortfall (< one per cell) a unit at a time to the largest increment log((m − x)/(x + 1)),
    then move units while some cell's increment beats another's last one (on 15,000 random
    nodes this never took more than one move). The 3×3 of n = 298's 588 nodes: 0.3 ms, where
    taking the ``first`` largest of every row's increments (a log per cell value) took 4.4."""
    m = np.asarray(rows, dtype=np.int64)
    cells = first * m // np.maximum(m.sum(axis=1, keepdims=True), 1)
    every = np.arange(len(m))
    with np.errstate(divide="ignore"):  # log 0 where a cell is full
        for _ in range(m.shape[1]):
            short = np.flatnonzero(cells.sum(axis=1) < first)
            if not len(short):
                break
            gain = np.log((m[short] - cells[short]) / (cells[short] + 1.0))
            cells[short, gain.argmax(axis=1)] += 1
        while True:
            gain = np.log((m - cells) / (cells + 1.0))
            loss = np.where(cells > 0, np.log((m - cells + 1.0) / np.maximum(cells, 1)), np.inf)
            up, down = gain.argmax(axis=1), loss.argmin(axis=1)
            moved = np.flatnonzero(gain[every, up] > loss[every, down])
            if not len(moved):
                return np.asarray(cells)
            cells[moved, up[moved]] += 1
            cells[moved, down[moved]] -= 1


def _segment_cumsum(values: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Cumulative sums restarting at each segment (``position`` = index within its segment), by
    doubling: no subtraction across segments, so small sums keep their relative precision."""
    total, shift = values.copy(), 1
    longest = int(position.max()) + 1 if len(position) else 0
    while shift < longest:
        total[shift:] += np.where(position[shift:] >= shift, total[:-shift], 0.0)
        shift *= 2
    return total


class _SortedSegments:
    """Values sorted within segments (segment s holds ``start[s]`` .. ``start[s] + size[s] − 1``):
    per query, how many values of its segment are ≤ it, and running sums over them. A query goes
    through one global search on the key segment·scale + value; that key's rounding (≈ 1e-8 at
    worst), and values within ORDER_QUANTUM left in either order by ``sorting`` (a search then
    lands among them), could only confuse a value and a query that close, well inside the
    relative tolerance by which tables count as extreme anyway."""

    def __init__(self, values: np.ndarray, segment: np.ndarray, segments: int) -> None:
        self.values, self.segment = values, segment
        self.size = np.bincount(segment, minlength=segments)
        self.start = np.cumsum(self.size) - self.size
        self.position = np.arange(len(values)) - self.start[segment]
        self.low, self.scale = self.key_scale(values)
        self.keys = segment * self.scale + (values - self.low)

    @staticmethod
    def key_scale(values: np.ndarray) -> tuple[float, float]:
        """The keys' offset (the smallest value) and segment stride (a power of two above the
        values' range)."""
        if not len(values):
            return 0.0, 2.0
        low = float(values.min())
        return low, float(2.0 ** math.ceil(math.log2(float(values.max()) - low + 2.0)))

    @classmethod
    def order(cls, values: np.ndarray, segment: np.ndarray) -> np.ndarray:
        """An order sorting values within their segments, segments ascending (by the keys the
        searches use)."""
        low, scale = cls.key_scale(values)
        return _key_order(segment * scale + (values - low))

    def largest(self) -> np.ndarray:
        """Each segment's largest value (0 for an empty one)."""
        if not len(self.values):
            return np.zeros(len(self.size))
        last = np.clip(self.start + self.size - 1, 0, len(self.values) - 1)
        return np.where(self.size > 0, self.values[last], 0.0)

    def running_mass(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Running sums within segments of count·exp(value − the segment's largest value), and
        those largest values: the scale keeps every term ≤ count, with no overflow."""
        top = self.largest()
        terms = counts * np.exp(self.values - top[self.segment])
        longest = int(self.size.max()) if len(self.values) else 0
        if len(self.size) * longest > 2 * len(self.values):  # ragged segments: padding would cost more
            return _segment_cumsum(terms, self.position), top
        # One row per segment, padded with zeros, summed along the rows: three numpy calls, where
        # the doubling makes ~5 per level (3×4 of n = 72: 82 segments of at most 136 values, 8,872
        # in all; 0.1 ms instead of ~0.6 ms).
        grid = np.zeros((len(self.size), longest))
        grid[self.segment, self.position] = terms
        return np.cumsum(grid, axis=1, out=grid)[self.segment, self.position], top

    def first_mass(self, prefix: np.ndarray, segment: np.ndarray, first: np.ndarray) -> np.ndarray:
        """The running sum over the ``first`` values of ``segment`` (0 for none)."""
        if not len(prefix):
            return np.zeros(len(first))
        return np.where(first > 0, prefix[np.maximum(self.start[segment] + first - 1, 0)], 0.0)

    def count_at_most(self, segment: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Per query, how many values of its segment are ≤ it. The queries are searched in the
        order given: sorting them first had been worth it against unsorted ones jumping about the
        keys, but no longer is (3×4 of n = 72, 3,932 queries into 4,290 keys: sorting them first
        made the whole call ~1.15× slower, CPU, interleaved)."""
        shifted = np.clip(query - self.low, -0.5, self.scale - 1.0)
        keys = segment * self.scale + shifted
        return np.asarray(np.searchsorted(self.keys, keys, side="right") - self.start[segment])


@dataclass(frozen=True)
class _Pasts:
    """The pasts kept at one column: ``nodes`` (codes, sorted) and, per past, its node's index in
    ``nodes`` (non-decreasing), its log likelihood (ascending within a node) and its count."""

    nodes: np.ndarray
    node: np.ndarray
    value: np.ndarray
    count: np.ndarray


def _merged(nodes: np.ndarray, child: np.ndarray, value: np.ndarray, count: np.ndarray) -> _Pasts:
    """Pasts reaching ``nodes[child]``, sorted, equal ones (within MERGE_TOLERANCE) counted once.
    Equal pasts are found by hashing (child, value in buckets of MERGE_TOLERANCE) rather than by
    sorting them all: the pasts before merging are often 50–100 times as many as after (5×5 of
    n = 72: 273,891 to 3,833; 10 ms against 40). Two equal values either side of a bucket's edge
    stay two pasts, which costs a little work and changes nothing (a merged past is one value
    standing for tables whose values differ by less than the tolerance). The hash table is sized
    for MERGE_HASH_HINT keys, not one per past (pandas' default): sized for 114,628 pasts it was 4 MB
    mapped afresh, page faults and all, for 5,996 distinct (4×5 of n = 60: pd.factorize 3.5 ms →
    0.8; the call 0.83–0.94 of before, CPU, interleaved, medians of 7–10)."""
    if not len(child):
        return _Pasts(nodes[:0], child, value, count)
    low = float(value.min())
    buckets = math.floor((float(value.max()) - low) / MERGE_TOLERANCE) + 1
    if buckets * (int(child.max()) + 1) >= 2**62:  # the key would overflow: merge by sorting
        return _merged_by_sorting(nodes, child, value, count)
    scaled = value - low  # in place from here: each temporary of every past is fresh pages
    scaled /= MERGE_TOLERANCE
    key = np.floor(scaled, out=scaled).astype(np.int64)
    key += child * buckets
    group, distinct = pd.factorize(key, size_hint=min(len(key), MERGE_HASH_HINT))
    member = np.empty(len(distinct), dtype=np.int64)
    member[group] = np.arange(len(group))  # any member stands for its group
    counts = np.bincount(group, weights=count, minlength=len(distinct))
    # The keys sort the groups by child, then value: groups of a child have distinct buckets, and
    # the bucket rises with the value (the order np.lexsort((value, child)) gave, in 0.4 of the time).
    order = np.argsort(distinct)
    member, counts = member[order], counts[order]
    used, node = _sorted_distinct(child[member])
    return _Pasts(nodes[used], node, value[member], counts)


def _sorted_distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` of sorted values, without its sort."""
    new = np.ones(len(values), dtype=bool)
    new[1:] = values[1:] != values[:-1]
    return values[new], np.cumsum(new) - 1


def _merged_by_sorting(nodes: np.ndarray, child: np.ndarray, value: np.ndarray, count: np.ndarray) -> _Pasts:
    """``_merged`` by sorting every past (where the hashing key could overflow)."""
    order = _SortedSegments.order(value, child)
    child, value, count = child[order], value[order], count[order]
    new = np.ones(len(child), dtype=bool)
    new[1:] = (child[1:] != child[:-1]) | (np.diff(value) > MERGE_TOLERANCE)
    first = np.flatnonzero(new)
    used, node = np.unique(child[first], return_inverse=True)
    return _Pasts(nodes[used], node, value[first], np.add.reduceat(count, first) if len(first) else count)


def _boundary(
    holds: Callable[[np.ndarray], np.ndarray], inside: np.ndarray, outside: np.ndarray
) -> np.ndarray:
    """The last point, walking from ``inside`` towards ``outside``, where a predicate that changes
    once holds, by bisection. ``holds`` is false at ``outside``; ``inside`` may lie one step
    beyond the range (then nothing holds and ``inside`` comes back)."""
    while True:
        open_ = np.abs(outside - inside) > 1
        if not open_.any():
            return inside
        middle = (inside + outside) // 2
        good = holds(np.where(open_, middle, outside)) & open_
        inside = np.where(good, middle, inside)
        outside = np.where(open_ & ~good, middle, outside)


def _inward_sums(
    first: np.ndarray,
    numerator: tuple[np.ndarray, np.ndarray],
    denominator: tuple[np.ndarray, np.ndarray],
    size: np.ndarray,
) -> np.ndarray:
    """Per row, the sum of the terms ≤ 1 among the first ``size`` of t_0 = ``first``,
    t_{j+1} = t_j·(a − j)(b − j)/((c + j)(d + j)), (a, b) = ``numerator``, (c, d) = ``denominator``:
    each row is a tail walked from the line's end towards the mode, so its terms rise and those
    ≤ 1 are a prefix, and the term after its last (the point past its bracket) is above 1. Rows
    are walked longest first as 2-d arrays of at most WALK_BLOCK cells, each as long as its
    longest row, one step per row of the array (numpy's cumprod along an axis was 4× slower
    than these in-place products; blocks of 2^17 cells, which stay in cache, 0.8 of the time of
    whole groups): a shorter row walks on past its size, and its ratios are taken as at least 1
    so that no term there falls back to ≤ 1 (past the mode they fall). The blocks reuse three
    buffers allocated once per call, and the sizes are sorted as int16, which numpy argsorts by
    radix (3×3 of n = 298, 84,806 rows: 0.92 and 0.93 of the call's CPU time, 0.85 together,
    interleaved medians of 7). Sorted rows padded its 674,845 points to 819,989 cells, where
    groups of power-of-two sizes padded them to 920,468 (0.94 of the time; ending blocks where
    rows get a quarter shorter saved nothing more). The product's rounding (~j·1e-16 relative)
    could only move a point whose weight is that close to room, well inside the 1e-7 tolerance
    by which tables count anyway."""
    key = np.minimum(size, np.iinfo(np.int16).max).astype(np.int16)  # int16: argsort by radix
    order = np.argsort(-key, kind="stable")[: int(np.count_nonzero(key > 0))]  # longest first
    first, a, b, c, d, size = (x[order] for x in (first, *numerator, *denominator, size))
    blocks, start = [], 0
    while start < len(order):
        stop = min(start + max(1, WALK_BLOCK // int(size[start])), len(order))
        blocks.append((start, stop, int(size[start:stop].max())))
        start = stop
    cells = max((steps * (stop - start) for start, stop, steps in blocks), default=0)
    space, scratch_space, other_space = np.empty(cells), np.empty(cells), np.empty(cells)
    sums = np.zeros(len(key))
    for start, stop, steps in blocks:
        rows, width = slice(start, stop), stop - start
        j = np.arange(steps - 1, dtype=float)[:, None]
        terms = space[: steps * width].reshape(steps, width)
        terms[0] = first[rows]
        ratio = terms[1:]
        scratch = scratch_space[: (steps - 1) * width].reshape(steps - 1, width)
        other = other_space[: (steps - 1) * width].reshape(steps - 1, width)
        np.subtract(a[rows], j, out=ratio)  # in place: fresh temporaries cost page faults
        ratio *= np.subtract(b[rows], j, out=scratch)
        np.add(c[rows], j, out=scratch)
        scratch *= np.add(d[rows], j, out=other)
        ratio /= scratch
        np.maximum(ratio, 1.0, out=ratio)  # past a row's size no term falls back to ≤ 1
        for k in range(1, steps):
            terms[k] *= terms[k - 1]
        sums[order[rows]] = np.sum(terms, axis=0, where=terms <= 1.0)
    return sums


class _Lines:
    """The completions of nodes with two columns left, as lines: the first column's cells in all
    rows but the two largest are fixed (``fixed`` = their −Σ log x! in both columns); the last two
    rows, of totals ``big``/``bigger``, share the ``shared`` cells left, y and shared − y, y in
    ``low``..``high``. Along a line the weight Π 1/x! is C(big, y)·C(bigger, shared − y) up to a
    constant: hypergeometric, so its total (Vandermonde), mode and tails have closed forms."""

    def __init__(self, rows: np.ndarray, first: int, log_factorial: np.ndarray, ranges: Ranges) -> None:
        width = rows.shape[1]
        merged = np.column_stack([rows[:, : width - 2], rows[:, -2] + rows[:, -1]])
        self.owner, cells = _fillings(merged, first, ranges)
        self.log_factorial = log_factorial
        self.fixed = -sum(
            (
                log_factorial[cells[i]] + log_factorial[rows[self.owner, i] - cells[i]]
                for i in range(width - 2)
            ),
            start=np.zeros(len(self.owner)),
        )
        self.big, self.bigger, self.shared = rows[self.owner, -2], rows[self.owner, -1], cells[-1]
        self.excess = self.bigger - self.shared  # the second column's cell in the largest row, less y
        self.low = np.maximum(0, self.shared - self.bigger)
        self.high = np.minimum(self.big, self.shared)
        self.length = self.high - self.low + 1

    # The lines' modes, totals and end weights, built when first asked for: ``_Network.by_sorting``
    # needs only the modes' weights and the totals, and building the ends too was ~25 numpy
    # calls of the 3×4 of n = 72's ~2 ms.
    @functools.cached_property
    def mode(self) -> np.ndarray:
        mode = (self.shared + 1) * (self.big + 1) // (self.big + self.bigger + 2)
        return np.asarray(np.clip(mode, self.low, self.high))

    @functools.cached_property
    def log_mass(self) -> np.ndarray:
        f, total = self.log_factorial, self.big + self.bigger
        return np.asarray(
            self.fixed + f[total] - f[self.shared] - f[total - self.shared] - f[self.big] - f[self.bigger]
        )

    @functools.cached_property
    def top(self) -> np.ndarray:
        return self.log_weight(self.mode, np.arange(len(self.owner)))

    @functools.cached_property
    def low_end(self) -> np.ndarray:
        return self.log_weight(self.low, np.arange(len(self.owner)))

    @functools.cached_property
    def high_end(self) -> np.ndarray:
        return self.log_weight(self.high, np.arange(len(self.owner)))

    @functools.cached_property
    def bottom(self) -> np.ndarray:
        return np.asarray(np.minimum(self.low_end, self.high_end))

    def log_weight(self, y: np.ndarray, line: np.ndarray) -> np.ndarray:
        """−Σ log x! of the completion at ``y`` on ``line``: the fixed cells and the last two rows."""
        f = self.log_factorial
        return np.asarray(
            self.fixed[line]
            - f[y]
            - f[self.big[line] - y]
            - f[self.shared[line] - y]
            - f[self.excess[line] + y]
        )

    def tail_mass(
        self,
        line: np.ndarray,
        room: np.ndarray,
        log_scale: np.ndarray,
        ranges: Ranges,
        spend: Callable[[int], None],
    ) -> float:
        """Σ over crossings (line, room) of exp(``log_scale`` + log weight) over the line's points of
        log weight ≤ ``room`` (the line's mode above it). Every crossing is walked
        (``_walked_mass``) up to its tails' brackets (``_tail_brackets``, chords to the mode)
        but those whose walk would underflow, which are bisected and the shorter part summed
        (``tail_share``). Walking from the line's ends (no look-up per crossing) made walking
        every crossing cheaper than bisecting those whose brackets cover more than 3/4 of the
        line, as before: 3×3 of n = 298 0.91–0.95 of the time (CPU, interleaved, medians of 21
        and 31), p 5e-12 from R's instead of 3.2e-10 (no 1 − middle), 4×4 of n = 88 unchanged."""
        rising, falling = self._tail_brackets(line, room)
        mass, walked = self._walked_mass(line, room, log_scale, (rising, falling), spend)
        if not walked.all():
            rest = ~walked
            share = self.tail_share(line[rest], room[rest], ranges)
            mass += float((share * np.exp(log_scale[rest] + self.log_mass[line[rest]])).sum())
        return mass

    def _walked_mass(
        self,
        line: np.ndarray,
        room: np.ndarray,
        log_scale: np.ndarray,
        brackets: tuple[np.ndarray, np.ndarray],
        spend: Callable[[int], None],
    ) -> tuple[float, np.ndarray]:
        """``tail_mass`` of these crossings by walking each tail inwards from its end of the line up
        to its bracket (``_tail_brackets``) by the ratio of neighbouring weights
        (``_inward_sums``): no bisection, no log-factorial look-up or exponential per point,
        every tail summed term by term (no 1 − middle: on the 3×3 of n = 298 that difference had
        put p 4.4e-10 relative off, now 5e-12 from R's). A walk starts from the line's end, whose
        weight is known per line, not from the bracket, whose weight would cost a look-up per
        crossing. Also which crossings were walked: not those with a line end more than
        e^WALK_RANGE below room (its first term would underflow)."""
        rising, falling = brackets
        low, high = self.low[line], self.high[line]
        low_size, high_size = rising - low + 1, high - falling + 1
        low_gap, high_gap = self.low_end[line] - room, self.high_end[line] - room
        walk = ((low_size <= 0) | (low_gap > -WALK_RANGE)) & ((high_size <= 0) | (high_gap > -WALK_RANGE))
        if not walk.all():  # usually every crossing is walked: no copies then
            line, room, log_scale, low, high, low_size, high_size, low_gap, high_gap = (
                x[walk] for x in (line, room, log_scale, low, high, low_size, high_size, low_gap, high_gap)
            )
        size = np.concatenate([low_size, high_size])
        spend(int(np.maximum(size, 0).sum()))
        big, shared, excess = (np.asarray(a[line], dtype=float) for a in (self.big, self.shared, self.excess))
        # Up from y = low: w(y + 1)/w(y) = (b − y)(s − y) / ((y + 1)(e + y + 1)); down from y = high:
        # w(y − 1)/w(y) = y (e + y) / ((b − y + 1)(s − y + 1)) (b, s, e: big, shared, excess).
        lo, hi = low.astype(float), high.astype(float)
        sums = _inward_sums(
            np.exp(np.where(size > 0, np.concatenate([low_gap, high_gap]), 0.0)),
            (np.concatenate([big - lo, hi]), np.concatenate([shared - lo, excess + hi])),
            (
                np.concatenate([lo + 1.0, big - hi + 1.0]),
                np.concatenate([excess + lo + 1.0, shared - hi + 1.0]),
            ),
            size,
        )
        sums = sums[: len(line)] + sums[len(line) :]
        return float((np.exp(room + log_scale) * sums).sum()), walk

    def _tail_brackets(self, line: np.ndarray, room: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per crossing, a point at or beyond the end of each tail: the low tail (log weight ≤
        room) ends at or before ``rising``, the high tail starts at or after ``falling``. The log
        weight is concave in y (each −log x! is, x affine in y), so it lies above its chord
        between an end of the line and any point nearer the mode: the tail cannot reach past
        where that chord meets ``room``. A chord to the mode, no refinement: a second chord, to
        the point found, once cut the points walked by a third, but since the walk got cheaper
        it costs more than it saves (3×3 of n = 298: 0.97 of the time without it, interleaved,
        medians of 9 and 11; 22 random 3×3 and 3×4 tables of n 100–320: median 1.00). A margin
        of one point absorbs rounding; the brackets never reach the mode (above room)."""
        mode, far_weight = self.mode[line], self.top[line]
        bracket = []
        for end, end_weight, sign in ((self.low, self.low_end, 1), (self.high, self.high_end, -1)):
            start, start_weight = end[line], end_weight[line]
            steps = np.abs(mode - start)
            with np.errstate(divide="ignore", invalid="ignore"):
                reach = np.floor((room - start_weight) * steps / (far_weight - start_weight)) + 1
            reach = np.where((far_weight > room) & (room >= start_weight), reach, steps)
            steps = np.where(room >= start_weight, np.minimum(reach, steps), -1).astype(np.int64)
            steps = np.minimum(steps, np.abs(mode - start) - 1)
            bracket.append(start + sign * steps)
        return bracket[0], bracket[1]

    def tail_share(self, line: np.ndarray, room: np.ndarray, ranges: Ranges) -> np.ndarray:
        """Share of each line's weight on points with log weight ≤ ``room``, for lines whose mode
        is above it. The points below form two tails, found by bisection on either side of the
        (unimodal) mode. The shorter of the tails and the middle between them is summed; a share
        taken as 1 − middle that comes out below 1e-6 is summed from its tails after all (the
        difference would have lost its relative precision)."""

        def holds(y: np.ndarray) -> np.ndarray:
            return self.log_weight(y, line) <= room

        rising = _boundary(holds, self.low[line] - 1, self.mode[line])
        falling = _boundary(holds, self.high[line] + 1, self.mode[line])
        tails = (rising - self.low[line] + 1) + (self.high[line] - falling + 1) <= falling - rising - 1
        share = 1.0 - self.mass_between(
            line, np.where(tails, 0, rising + 1), np.where(tails, -1, falling - 1), ranges
        )
        tails |= share < 1e-6
        low_tail = self.mass_between(
            line, np.where(tails, self.low[line], 0), np.where(tails, rising, -1), ranges
        )
        high_tail = self.mass_between(
            line, np.where(tails, falling, 0), np.where(tails, self.high[line], -1), ranges
        )
        return np.where(tails, low_tail + high_tail, share)

    def mass_between(
        self, line: np.ndarray, start: np.ndarray, end: np.ndarray, ranges: Ranges
    ) -> np.ndarray:
        """Each line's share of its weight on start..end (0 where end < start)."""
        which, y = ranges(start, np.maximum(end, start - 1))
        mass = np.exp(self.log_weight(y, line[which]) - self.log_mass[line[which]])
        return np.bincount(which, weights=mass, minlength=len(line))


def _oriented(table: np.ndarray) -> np.ndarray:
    """The table turned so that its columns are the better stages. Fewer rows than columns, as
    FEXACT: shorter nodes, fewer fillings per column (measured: the other turn is many times
    slower). A square table can go either way; most of the work is filling the columns before
    the last two (those are closed form), and a column of total c over r rows has
    C(c + r − 1, r − 1) fillings at most, so the turn with the smaller sum of these is taken."""
    if table.shape[0] != table.shape[1]:
        return table if table.shape[0] < table.shape[1] else table.T

    def fillings(turned: np.ndarray) -> float:
        rows, columns = len(turned), np.sort(turned.sum(axis=0))[:-2]
        return float(special.comb(columns + rows - 1, rows - 1).sum())

    return table if fillings(table) <= fillings(table.T) else table.T


class _Network:
    """One table's network: its nodes' fillings, memoized by (column, node code)."""

    def __init__(self, table: np.ndarray, relative_tolerance: float) -> None:
        self.shape, self.n = table.shape, int(table.sum())
        self.rows, self.columns = np.sort(table.sum(axis=1)), np.sort(table.sum(axis=0))
        self.log_factorial = _log_factorials(self.n)
        f = self.log_factorial
        self.threshold = float(-f[table].sum()) + float(np.log1p(relative_tolerance))
        self.log_total = float(f[self.n] - f[self.rows].sum() - f[self.columns].sum())  # Σ Π 1/x!
        self.last_stage = len(self.columns) - 2
        self.left = np.cumsum(self.columns[::-1])[::-1]  # row totals left to fill at each column
        # A sorted node is coded by its r − 1 smallest entries; the i-th is at most the i-th row total.
        radix = self.rows[:-1] + 1
        self.place = np.concatenate([[1], np.cumprod(radix)[:-1]]).astype(np.int64)
        self.code_space = int(np.prod(radix))
        self.lookup = np.full(self.code_space, -1, dtype=np.int64) if self.code_space <= DENSE_CODES else None
        self.filled: list[dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]] = [{} for _ in self.columns]
        self.work = 0

    def ranges(self, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``_ranges``, counted against MAX_WORK before anything is built."""
        self.spend(int((high - low + 1).sum()))
        return _ranges(low, high)

    def spend(self, amount: int) -> None:
        self.work += amount
        if self.work > MAX_WORK:
            shape = "×".join(map(str, self.shape))
            raise AnalysisError(
                f"table {shape} of {self.n} too large for exact enumeration here (more than about "
                "a second of work; R's fisher.test runs out of workspace first); use simulate_p_value=True"
            )

    def decode(self, codes: np.ndarray, stage: int) -> np.ndarray:
        rows = np.empty((len(codes), len(self.rows)), dtype=np.int64)
        rest = codes
        for i in range(len(self.rows) - 2, -1, -1):
            rows[:, i], rest = np.divmod(rest, self.place[i])
        rows[:, -1] = self.left[stage] - rows[:, :-1].sum(axis=1)
        return rows

    def distinct(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The distinct codes (sorted) and each code's index among them, through the lookup array
        when the code space is small (no sort)."""
        if self.lookup is None:
            found, inverse = np.unique(codes, return_inverse=True)
            return found, inverse
        self.lookup[codes] = 0
        found = np.flatnonzero(self.lookup >= 0)
        self.lookup[found] = np.arange(len(found))
        inverse = self.lookup[codes]
        self.lookup[found] = -1
        return found, inverse

    def fill(self, stage: int, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every filling of column ``stage`` from these nodes: the node's index, the child's code,
        the filling's −Σ log x! and how many fillings it stands for. Fillings that only permute
        cells between rows with equal totals left reach the same child with the same step, so
        one stands for all (``_fillings(symmetric=True)``: 5×5 of n = 72, 1.2 million fillings
        to 0.7). Memoized: bounds and pasts use the same fillings."""
        cache = self.filled[stage]
        missing = np.array([code for code in codes.tolist() if code not in cache], dtype=np.int64)
        if len(missing):
            self.fill_new(stage, missing)
        parts = [cache[code] for code in codes.tolist()]
        owner = np.repeat(np.arange(len(parts)), [len(part[0]) for part in parts])
        child, steps, weight = (np.concatenate([part[k] for part in parts]) for k in range(3))
        return owner, child, steps, weight

    def fill_new(
        self, stage: int, codes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``fill`` of distinct nodes not filled yet, memoized, in the order filled (nodes with
        tied rows first): the codes in that order, then ``fill``'s arrays. ``exact_bounds`` takes
        its nodes in any order, and so skips rebuilding the arrays from the memo node by node
        (4×5 of n = 60: 5,940 nodes, ~0.9 ms of its ~25)."""
        cache = self.filled[stage]
        rows = self.decode(codes, stage)
        tied = (rows[:, 1:] == rows[:, :-1]).any(axis=1)  # only these gain from symmetry
        codes, rows = np.concatenate([codes[tied], codes[~tied]]), np.vstack([rows[tied], rows[~tied]])
        owner, cells, weight = self.symmetric_fillings(rows, int(tied.sum()), int(self.columns[stage]))
        steps = -sum((self.log_factorial[cell] for cell in cells), start=np.zeros(len(owner)))
        children = _sorted_columns([rows[owner, i] - cell for i, cell in enumerate(cells)])
        child = sum(
            (c * p for c, p in zip(children[:-1], self.place, strict=True)), start=np.zeros_like(owner)
        )
        edges = np.searchsorted(owner, np.arange(len(codes) + 1)).tolist()
        for code, start, stop in zip(codes.tolist(), edges[:-1], edges[1:], strict=True):
            cache[code] = (child[start:stop], steps[start:stop], weight[start:stop])
        return codes, owner, child, steps, weight

    def symmetric_fillings(
        self, rows: np.ndarray, tied: int, total: int
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """The fillings of ``rows``, the first ``tied`` of which have equal entries: those filled
        symmetrically, with weights; the others plainly (the symmetric bookkeeping would cost
        them about a tenth more for nothing)."""
        if not tied:
            owner, cells = _fillings(rows, total, self.ranges)
            return owner, cells, np.ones(len(owner))
        owner, cells = _fillings(rows[:tied], total, self.ranges, symmetric=True)
        weight = _symmetric_weight(rows[owner], cells)
        if tied == len(rows):
            return owner, cells, weight
        plain_owner, plain_cells = _fillings(rows[tied:], total, self.ranges)
        return (
            np.concatenate([owner, plain_owner + tied]),
            [np.concatenate(pair) for pair in zip(cells, plain_cells, strict=True)],
            np.concatenate([weight, np.ones(len(plain_owner))]),
        )

    def exact_bounds(self, stage: int, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The most and least likely completions' −Σ log x! of distinct nodes with two columns left
        (closed form) or three (not filled yet): max and min over the column's fillings of the
        filling's plus the child's closed form."""
        if stage == self.last_stage:
            return _two_column_bounds(self.decode(codes, stage), int(self.columns[stage]), self.log_factorial)
        filled, owner, child, steps, _ = self.fill_new(stage, codes)
        found, inverse = self.distinct(child)
        most, least = self.exact_bounds(stage + 1, found)
        starts = np.searchsorted(owner, np.arange(len(filled)))
        sorter = np.argsort(codes)
        place = sorter[np.searchsorted(codes, filled, sorter=sorter)]  # fill_new's order → the codes'
        node_most, node_least = np.empty(len(codes)), np.empty(len(codes))
        node_most[place] = np.maximum.reduceat(steps + most[inverse], starts)
        node_least[place] = np.minimum.reduceat(steps + least[inverse], starts)
        return node_most, node_least

    def cheap_bounds(self, stage: int, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds without search: above, each column's (or each row's) cells as even as possible;
        below, each column (or row) in one cell (log x! is superadditive)."""
        rows, columns, f = self.decode(codes, stage), self.columns[stage:], self.log_factorial
        by_columns = -_even_log_factorials(columns, rows.shape[1], f).sum()
        by_rows = -_even_log_factorials(rows, len(columns), f).sum(axis=1)
        return np.minimum(by_columns, by_rows), np.maximum(-f[columns].sum(), -f[rows].sum(axis=1))

    def child_bounds(
        self, stage: int, codes: np.ndarray, undecided: Callable[[np.ndarray, np.ndarray], np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bounds to decide the pasts with: exact ones for the nodes with two or three columns left
        where the cheap ones leave a past ``undecided``, the cheap ones elsewhere. Exact bounds
        with more columns left (a recursion through every column's fillings, branch and bound)
        decided few pasts the next column would not have decided anyway, and cost more than
        carrying those: without them the 4×5 of n = 60 handles 217,037 fillings, pasts and
        completions instead of 243,830 and the 5×5 of n = 72 773,418 instead of 908,941 (the
        4×4s and 3×4s are unchanged; of 102 random 3–5 × 3–5 tables of n 60–250, none more)."""
        if stage == self.last_stage:
            return self.exact_bounds(stage, codes)
        most, least = self.cheap_bounds(stage, codes)
        if stage < self.last_stage - 1:
            return most, least
        open_ = undecided(most, least)
        if open_.any():
            most[open_], least[open_] = self.exact_bounds(stage, codes[open_])
        return most, least

    def advance(self, stage: int, pasts: _Pasts) -> tuple[float, _Pasts]:
        """Fill column ``stage`` from every node holding pasts: the probability of the tables
        counted whole, and the pasts the next column must look at."""
        owner, child, steps, weight = self.fill(stage, pasts.nodes)
        self.filled[stage].clear()  # nothing asks for this column's fillings again
        found, inverse = self.distinct(child)
        index = _SortedSegments(pasts.value, pasts.node, len(pasts.nodes))
        room = self.threshold - steps  # the most a child's completion may add and still count

        def undecided(most: np.ndarray, least: np.ndarray) -> np.ndarray:
            open_ = index.count_at_most(owner, room - least[inverse]) > index.count_at_most(
                owner, room - most[inverse]
            )
            flagged = np.zeros(len(found), dtype=bool)
            flagged[inverse[open_]] = True
            return flagged

        most, least = self.child_bounds(stage + 1, found, undecided)
        counted = index.count_at_most(owner, room - most[inverse])
        kept = index.count_at_most(owner, room - least[inverse])
        p = self.counted_mass(stage + 1, found, pasts, index, (owner, inverse, steps, weight, counted))
        band, past = self.ranges(index.start[owner] + counted, index.start[owner] + kept - 1)
        value = pasts.value[past] + steps[band]
        return p, _merged(found, inverse[band], value, pasts.count[past] * weight[band])

    def counted_mass(
        self,
        stage: int,
        found: np.ndarray,
        pasts: _Pasts,
        index: _SortedSegments,
        fillings: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ) -> float:
        """Probability of the tables counted whole: for each filling, its parent's ``counted``
        least likely pasts (a prefix: prefix sums, each node's scaled by its largest past) times
        all completions of the child, Σ Π 1/x! = (Σ rows)! / (Π rows! Π columns!)."""
        owner, inverse, steps, weight, counted = fillings
        f = self.log_factorial
        prefix, top = index.running_mass(pasts.count)
        rows = self.decode(found, stage)
        ways = f[self.left[stage]] - f[rows].sum(axis=1) - f[self.columns[stage:]].sum()
        log_scale = top[owner] + steps + ways[inverse] - self.log_total
        return float((index.first_mass(prefix, owner, counted) * weight * np.exp(log_scale)).sum())

    def last_two_columns(self, pasts: _Pasts) -> float:
        """Probability of the tables counted from pasts with two columns left. Along a node's
        lines, its sorted pasts fall in three runs: those counting the whole line (below the line's
        least likely point: prefix sums), those crossing it (two hypergeometric tails each) and
        those counting none. A node whose crossings would cost more than enumerating its
        completions once is summed point by point instead (``by_sorting``)."""
        lines = _Lines(
            self.decode(pasts.nodes, self.last_stage), int(self.columns[-2]), self.log_factorial, self.ranges
        )
        index = _SortedSegments(pasts.value, pasts.node, len(pasts.nodes))
        whole = index.count_at_most(lines.owner, self.threshold - lines.top)
        crossing = index.count_at_most(lines.owner, self.threshold - lines.bottom) - whole
        nodes = len(pasts.nodes)
        sort_cost = SORTING_COST * np.bincount(lines.owner, weights=lines.length, minlength=nodes)
        by_sorting = np.bincount(lines.owner, weights=crossing * lines.length, minlength=nodes) > sort_cost
        along = ~by_sorting[lines.owner]
        prefix, top = index.running_mass(pasts.count)
        counted = index.first_mass(prefix, lines.owner[along], whole[along])
        log_scale = top[lines.owner[along]] + lines.log_mass[along] - self.log_total
        p = float((counted * np.exp(log_scale)).sum())
        line, past = self.ranges(
            np.where(along, index.start[lines.owner] + whole, 0),
            np.where(along, index.start[lines.owner] + whole + crossing - 1, -1),
        )
        value = pasts.value[past]
        log_scale = value + np.log(pasts.count[past]) - self.log_total
        p += lines.tail_mass(line, self.threshold - value, log_scale, self.ranges, self.spend)
        return p + self.by_sorting(lines, pasts, by_sorting)

    def by_sorting(self, lines: _Lines, pasts: _Pasts, chosen: np.ndarray) -> float:
        """The chosen nodes' tables, each completion counting a prefix of its node's (sorted)
        pasts. A line whose most likely point leaves room for every past of its node counts all of
        them at every point: its total (Vandermonde) times the node's past mass, with no points
        listed. Searching the pasts by completion, rather than sorting the completions and
        searching them by past, sorts nothing the network has not sorted already (3×4 of n =
        72: 0.88 of the time; whole lines 512 of its 840, 4,940 of 8,872 points not listed:
        0.81 of the time all told; 4×4 of n = 88: 0.74; CPU, interleaved, medians of 9). Points
        of the other lines that leave room for every past are not searched either (1,745 of the
        3×4's 3,932; with each node's mass summed once, 0.96 of the time)."""
        if chosen.all():
            index = _SortedSegments(pasts.value, pasts.node, len(chosen))
            prefix, top = index.running_mass(pasts.count)
        else:
            mine = chosen[pasts.node]
            index = _SortedSegments(pasts.value[mine], pasts.node[mine], len(chosen))
            prefix, top = index.running_mass(pasts.count[mine])
        line = np.flatnonzero(index.size[lines.owner] > 0)  # the chosen nodes' that hold pasts
        held = index.first_mass(prefix, np.arange(len(chosen)), index.size)  # each node's past mass
        owner = lines.owner[line]
        whole = self.threshold - lines.top[line] >= top[owner]
        p = float(
            (
                held[owner[whole]] * np.exp(lines.log_mass[line[whole]] + top[owner[whole]] - self.log_total)
            ).sum()
        )
        line = line[~whole]
        which, y = self.ranges(lines.low[line], lines.high[line])
        line = line[which]
        weight, node = lines.log_weight(y, line), lines.owner[line]
        room = self.threshold - weight
        some = np.flatnonzero(room < top[node])  # the others count every past of their node
        mass = held[node]
        mass[some] = index.first_mass(prefix, node[some], index.count_at_most(node[some], room[some]))
        return p + float((mass * np.exp(weight + top[node] - self.log_total)).sum())

    def sorted_completions_p(self) -> float | None:
        """The p-value of a small network without bounds: every partial table of the columns
        before the last two, each counted against its node's completions, sorted once per node
        (``by_sorting``). Fewer numpy calls than the network's stages where both sides are small
        (3×4 of n = 72: 1.3 ms against 2.0; 0.2–0.8 of the network's time on 50 random tables
        that take it); None where the partial tables could exceed PARTIAL_LIMIT or the
        completions COMPLETIONS_PER_STAGE per column the network would fill (beyond, a 3×3 with
        its single stage was up to 2.4× slower this way). A partial table that counts with its
        node's most likely completion counts with all of them, (Σ rows)! / (Π rows! Π columns!)
        in all, and is neither sorted nor searched (3×4 of n = 72: 2,151 of 4,290; 0.93 of the
        time; dropping the lines no remaining past counts as well saved nothing). Equal partial
        tables, once sorted, are one past (4,290 to 2,500 before the split; 0.98 of the time)."""
        rows, columns = self.rows.tolist(), self.columns.tolist()
        if math.prod(min(row, column) + 1 for row in rows[:-1] for column in columns[:-2]) > PARTIAL_LIMIT:
            return None
        left, value = list(self.rows[:, None]), np.zeros(1)  # row totals left, one array per row
        for total in columns[:-2]:
            owner, cells = _fillings(np.column_stack(left), total, self.ranges)
            value = value[owner] - sum(
                (self.log_factorial[cell] for cell in cells), start=np.zeros(len(owner))
            )
            left = [row[owner] - cell for row, cell in zip(left, cells, strict=True)]
        # Codes from the columns sorted elementwise (a min/max network): np.sort along rows of
        # 3 took ~135 µs on the 3×4 of n = 72's 4,290 partial tables, this ~30 µs.
        smallest = _sorted_columns(left)[:-1]
        found, node = self.distinct(
            sum(
                (c * p for c, p in zip(smallest, self.place.tolist(), strict=True)),
                start=np.zeros(len(value), dtype=np.int64),
            )
        )
        nodes = self.decode(found, self.last_stage)
        completions = np.prod(np.minimum(nodes[:, :-1], columns[-2]) + 1, axis=1).sum()
        if completions > COMPLETIONS_PER_STAGE * self.last_stage:
            return None
        lines = _Lines(nodes, columns[-2], self.log_factorial, self.ranges)
        f = self.log_factorial
        most = np.maximum.reduceat(lines.top, np.searchsorted(lines.owner, np.arange(len(found))))
        ways = f[self.left[self.last_stage]] - f[nodes].sum(axis=1) - f[self.columns[-2:]].sum()
        whole = value + most[node] <= self.threshold  # counts with every completion of its node
        p = float(np.exp(value[whole] + ways[node[whole]] - self.log_total).sum())
        node, value = node[~whole], value[~whole]
        if not len(value):
            return min(p, 1.0)
        order = _SortedSegments.order(value, node)
        node, value = node[order], value[order]
        new = np.ones(len(value), dtype=bool)  # np.r_ cost ~20 µs a call here
        new[1:] = (node[1:] != node[:-1]) | (np.diff(value) > MERGE_TOLERANCE)
        first = np.flatnonzero(new)
        pasts = _Pasts(found, node[first], value[first], np.diff(first, append=len(value)).astype(float))
        return min(p + self.by_sorting(lines, pasts, np.ones(len(found), dtype=bool)), 1.0)

    def p_value(self) -> float:
        small = self.sorted_completions_p()
        return self.network_p() if small is None else small

    def network_p(self) -> float:
        """The p-value through the network: column by column, pasts decided by exact bounds."""
        root = int(self.rows[:-1] @ self.place)
        pasts = _Pasts(np.array([root]), np.zeros(1, dtype=np.int64), np.zeros(1), np.ones(1))
        p = 0.0
        for stage in range(self.last_stage):
            counted, pasts = self.advance(stage, pasts)
            p += counted
            if not len(pasts.value):
                return min(p, 1.0)
        return min(p + self.last_two_columns(pasts), 1.0)


def _every_table_p(table: np.ndarray, relative_tolerance: float) -> float:
    """The p-value summed over every table with the margins (rows and columns ascending), as one
    broadcast grid over the free rows' fillings (``_grid_p``)."""
    table = np.asarray(table, dtype=np.int64)
    rows, columns = table.sum(axis=1).tolist(), table.sum(axis=0).tolist()
    observed = float(-_log_factorials(int(table.sum()))[table].sum())
    return _grid_p(rows, columns, observed, relative_tolerance)


def _grid_p(rows: list[int], columns: list[int], observed: float, relative_tolerance: float) -> float:
    """The p-value summed over every table with these margins (ascending; ``observed``: the
    table's −Σ log x!), as one broadcast grid. No network, no bounds: a few dozen numpy calls,
    which is what a small table needs. The free cells are all rows but the last and all columns
    but the last; each free row's fillings (its cells ≤ the column totals, summing to at most the
    row's total) are listed once with their terms (the free cells and the row's derived last
    cell) and a key, Σ cell·place, whose sum over the rows codes the free columns' partial sums
    without carries. The last row's cells depend only on those partial sums, so their terms are
    one small table (at most as many entries as grid points: Σᵢ aᵢ + 1 ≤ Πᵢ (aᵢ + 1)) looked
    up by the summed key. The grid is then the rows' terms added by broadcasting plus one
    look-up: 3×3 of n = 36, 2,380 points (the rows' fillings only) and 4 passes, where the grid
    over every free cell's range had 5,733 points and about 11 passes (0.2 ms of CPU against
    R's 0.12–0.2 ms); infeasible cells weigh nothing (−∞) through the padded log-factorials.
    Where fewer points lie above the threshold than below, p is 1 − their probability, if that
    leaves p > 0.01 (its relative precision is then kept): fewer exponentials."""
    n, free_rows = sum(rows), rows[:-1]
    f = _log_factorials(n)
    padded, pad = _padded_log_factorials(n, n), n + 1
    # Partial sums of free column j reach at most Σᵢ min(row i, column j).
    spans = [sum(min(row, column) for row in free_rows) + 1 for column in columns[:-1]]
    place = [math.prod(spans[j + 1 :]) for j in range(len(spans))]
    # Every filling of the largest free row's box, shared by all free rows (smaller ones: −∞ beyond).
    key, used, common = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(1)
    for j, column in enumerate(columns[:-1]):
        cell = np.arange(min(free_rows[-1], column) + 1)
        key = np.add.outer(key, cell * place[j]).ravel()
        used = np.add.outer(used, cell).ravel()
        common = np.subtract.outer(common, f[cell]).ravel()
    terms = common - padded[np.subtract.outer(np.array(free_rows) + pad, used)]
    keys, weights = [], []
    for i in range(len(free_rows)):
        feasible = np.flatnonzero(terms[i] > -np.inf)
        shape = [-1 if k == i else 1 for k in range(len(free_rows))]
        keys.append(key[feasible].reshape(shape))
        weights.append(terms[i, feasible].reshape(shape))
    # The last row's terms by the free columns' partial sums s: cells column − s, corner the rest.
    last, corner = np.zeros(1), np.full(1, rows[-1] - sum(columns[:-1]) + pad, dtype=np.int64)
    for span, column in zip(spans, columns[:-1], strict=True):
        s = np.arange(span)
        last = np.subtract.outer(last, padded[column - s + pad]).ravel()
        corner = np.add.outer(corner, s).ravel()
    last -= padded[corner]
    weight = sum(weights[1:], start=weights[0]) + last[sum(keys[1:], start=keys[0])]
    threshold = observed + math.log1p(relative_tolerance)
    log_f = f.item  # a Python float per margin: indexing with the margins' lists cost ~7 µs
    log_total = log_f(n) - sum(map(log_f, rows)) - sum(map(log_f, columns))
    above = weight[weight > threshold]
    if len(above) < weight.size // 2:  # fewer terms the other way: 1 − the rest, if that is not small
        rest = float(np.exp(above - log_total).sum())
        if rest < 0.99:
            return min(1.0 - rest, 1.0)
    return min(float(np.exp(weight[weight <= threshold] - log_total).sum()), 1.0)


@functools.lru_cache(maxsize=16)
def _padded_log_factorials(n: int, beyond: int) -> np.ndarray:
    """log x! for x in −(n + 1)..n + beyond at index x + n + 1, +∞ outside 0..n: a derived cell
    out of range weighs nothing (read only; shared by the calls on tables of the same n)."""
    table = np.concatenate([np.full(n + 1, np.inf), _log_factorials(n)[: n + 1], np.full(beyond + 1, np.inf)])
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=16)
def _log_factorials(n: int) -> np.ndarray:
    """log 0! .. log (n + 1)!, shared by the calls on tables of the same n (read only)."""
    table = np.asarray(special.gammaln(np.arange(n + 2) + 1.0))
    table.flags.writeable = False
    return table


def fisher_rxc_p(table: np.ndarray, relative_tolerance: float) -> float:
    """Two-sided p of an r×c table (both dimensions ≥ 3): the probability, given the margins, of
    the tables at most (1 + ``relative_tolerance``) times as likely as ``table``. Small tables are
    enumerated outright; the others go through the network. The margins are sorted as Python
    lists (a 3×3's two argsorts, sums and fancy indexing had cost ~50 µs of its ~0.2 ms); only
    the network's tables are permuted as arrays."""
    table = np.asarray(table, dtype=np.int64)
    cells = table.tolist()
    row_totals, column_totals = (
        [sum(row) for row in cells],
        [sum(column) for column in zip(*cells, strict=True)],
    )
    row_order = sorted(range(len(row_totals)), key=row_totals.__getitem__)  # stable, as argsort's
    column_order = sorted(range(len(column_totals)), key=column_totals.__getitem__)
    rows, columns = [row_totals[i] for i in row_order], [column_totals[j] for j in column_order]
    if math.prod(min(row, column) + 1 for row in rows[:-1] for column in columns[:-1]) <= EVERY_TABLE_LIMIT:
        observed = float(-_log_factorials(sum(rows))[table].sum())
        return _grid_p(rows, columns, observed, relative_tolerance)
    ascending = table[row_order][:, column_order]  # the largest row and column are derived
    return _Network(_oriented(ascending), relative_tolerance).p_value()
