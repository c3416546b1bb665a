"""Greedy nearest-neighbour propensity-score matching by MatchIt's rule, in O(n log n).

The rule (MatchIt's ``method = "nearest"`` without replacement): treated units are taken in
descending order of propensity score (ties keep data order); each takes the nearest still
unmatched control by |distance| on the chosen scale (the score, or its logit — the linear
predictor); a control further than the caliper (a multiple of the sample SD of the distance
over all units) is not taken and the treated unit stays unmatched. When the nearest control
below and the nearest above are equally far, the one below wins. With ``ratio=k`` the treated
units take turns again, k passes in the same order, each skipping units left unmatched by an
earlier pass.

"Nearest" is found as MatchIt's ``nn_matchC`` finds it: all units are sorted once by distance
with a stable sort (ties keep data order), and from the treated unit's place the first free
control to the left and to the right in that order are the candidates. So among controls at
the same distance below a treated unit the *later* row wins, above it the earlier one, and a
control tied with the treated unit itself sits left of it when it comes earlier in the data.
The controls, in that sorted order, get "next free" pointers with path compression
(union–find), so each step costs near-constant time however many controls are taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import expit

from analytics.describe import standardized_mean_difference
from analytics.errors import AnalysisError
from analytics.frames import binary, complete_cases, numeric
from analytics.regression import LogisticResult, logistic
from analytics.results import Result

Scale = Literal["ps", "logit"]
Order = Literal["largest", "smallest", "data"]


@dataclass(frozen=True, eq=False)
class MatchResult(Result):
    """Matched sets, the matched rows, covariate balance and the propensity model.

    ``pairs``: ``treated``, ``control`` (ids), ``subclass`` (1, 2, … per treated unit in
    matching order). ``matched``: the matched rows of the input in their original order, with
    ``subclass`` and MatchIt's ``weight`` (1 for 1:1). ``balance``: ``covariate``,
    ``smd_before`` (all analysed rows), ``smd_after`` (matched rows, weighted). ``propensity``:
    id, treatment, ``ps`` and ``logit`` for every analysed row. ``caliper_width`` is the caliper
    in distance units (None without a caliper).
    """

    treatment: str
    covariates: tuple[str, ...]
    scale: Scale
    ratio: int
    caliper: float | None
    caliper_width: float | None
    pairs: pd.DataFrame
    matched: pd.DataFrame
    balance: pd.DataFrame
    propensity: pd.DataFrame
    model: LogisticResult
    n_treated: int
    n_control: int
    n_treated_matched: int
    n_control_matched: int
    n_excluded: int


class _FreeControls:
    """Positions 0..m-1 of the sorted controls, with the nearest free one found either way."""

    def __init__(self, size: int) -> None:
        self._up = list(range(size + 1))  # position `size` is the "none above" sentinel
        self._down = list(range(size + 1))  # shifted by one: entry 0 is the "none below" sentinel
        self._size = size

    @staticmethod
    def _root(pointers: list[int], start: int) -> int:
        while pointers[start] != start:
            pointers[start] = pointers[pointers[start]]  # path halving
            start = pointers[start]
        return start

    def at_or_above(self, position: int) -> int | None:
        found = self._root(self._up, position)
        return None if found == self._size else found

    def below(self, position: int) -> int | None:
        """The nearest free position strictly below ``position``."""
        found = self._root(self._down, position)
        return None if found == 0 else found - 1

    def take(self, position: int) -> None:
        self._up[position] = position + 1
        self._down[position + 1] = position


def _greedy_matches(
    distance: np.ndarray, treated: np.ndarray, turn_order: np.ndarray, width: float, ratio: int
) -> list[tuple[int, int]]:
    """(treated row, control row) position pairs by the greedy rule in the module docstring."""
    everyone = np.argsort(distance, kind="stable")
    is_control = ~treated[everyone]
    # Each unit's place among the sorted controls: how many controls precede it in the sort.
    place = np.empty(len(distance), dtype=int)
    place[everyone] = np.cumsum(is_control) - is_control
    control_rows = everyone[is_control].tolist()
    sorted_distance = distance[everyone[is_control]].tolist()
    places = place.tolist()
    free = _FreeControls(len(control_rows))
    values = distance.tolist()
    still_matching = turn_order.tolist()
    pairs: list[tuple[int, int]] = []
    for _ in range(ratio):
        matched_this_pass = []
        for row in still_matching:
            value = values[row]
            above = free.at_or_above(places[row])
            below = free.below(places[row])
            gap_above = sorted_distance[above] - value if above is not None else np.inf
            gap_below = value - sorted_distance[below] if below is not None else np.inf
            choice, gap = (below, gap_below) if gap_below <= gap_above else (above, gap_above)
            if choice is None or gap > width:
                continue
            free.take(choice)
            pairs.append((row, control_rows[choice]))
            matched_this_pass.append(row)
        still_matching = matched_this_pass
    return pairs


def _turn_order(ps: np.ndarray, treated: np.ndarray, order: Order) -> np.ndarray:
    rows = np.flatnonzero(treated)
    if order == "data":
        return rows
    key = -ps[rows] if order == "largest" else ps[rows]
    return rows[np.argsort(key, kind="stable")]


def _weights(
    treated_rows: np.ndarray, control_rows: np.ndarray, n_rows: int, treated: np.ndarray
) -> np.ndarray:
    """MatchIt's weights: 1 for a matched treated unit; for a control, 1 / (number of controls
    its treated unit got), rescaled so the control weights sum to the number of matched controls.
    With 1:1 matching every weight is 1; unmatched rows weigh 0."""
    weights = np.zeros(n_rows)
    set_size = np.bincount(treated_rows, minlength=n_rows)[treated_rows]
    weights[treated_rows] = 1.0
    weights[control_rows] = 1.0 / set_size
    weights[~treated] *= len(control_rows) / weights[~treated].sum()
    return weights


def _smd(values: np.ndarray, treated: np.ndarray, weights: np.ndarray | None, name: str) -> float:
    """SMD of the rows with a positive weight (every row when ``weights`` is None, unweighted)."""
    if weights is None:
        return standardized_mean_difference(values[treated], values[~treated], name)
    used = weights > 0
    return standardized_mean_difference(
        values[used & treated],
        values[used & ~treated],
        name,
        treated_weights=weights[used & treated],
        control_weights=weights[used & ~treated],
    )


def _balance_row(name: str, values: np.ndarray, treated: np.ndarray, weights: np.ndarray) -> dict:
    """SMD over all analysed rows, and over the matched rows with their matching weights."""
    return {
        "covariate": name,
        "smd_before": _smd(values, treated, None, name),
        "smd_after": _smd(values, treated, weights, name),
    }


def match_nearest(
    df: pd.DataFrame,
    treatment: str,
    covariates: Sequence[str],
    *,
    caliper: float | None = 0.2,
    scale: Scale = "ps",
    ratio: int = 1,
    order: Order = "largest",
    id_col: str = "id",
) -> MatchResult:
    """Match treated to control units on a logistic propensity score, as MatchIt's nearest.

    ``caliper`` is in SDs of the distance over all analysed units (None: no caliper).
    Rows missing the id, treatment or a covariate are excluded and counted.
    """
    if scale not in ("ps", "logit"):
        raise AnalysisError(f"scale must be 'ps' or 'logit', not {scale!r}")
    if order not in ("largest", "smallest", "data"):
        raise AnalysisError(f"order must be 'largest', 'smallest' or 'data', not {order!r}")
    if ratio < 1:
        raise AnalysisError(f"ratio must be at least 1, not {ratio}")
    if caliper is not None and caliper <= 0:
        raise AnalysisError(f"caliper must be positive (or None), not {caliper}")
    # Positional index, so the matched rows can be taken from df whatever its index.
    data, n_excluded = complete_cases(df.reset_index(drop=True), [id_col, treatment, *covariates])
    if data[id_col].duplicated().any():
        raise AnalysisError(f"id column {id_col!r} has duplicate values")
    treated = binary(data[treatment], treatment).astype(bool)

    model = logistic(data, treatment, covariates)
    logit = model.linear_predictor(data).to_numpy()
    ps = expit(logit)
    distance = ps if scale == "ps" else logit
    width = np.inf if caliper is None else caliper * float(np.std(distance, ddof=1))

    found = _greedy_matches(distance, treated, _turn_order(ps, treated, order), width, ratio)
    if not found:
        raise AnalysisError("no treated unit has a control within the caliper")
    treated_rows, control_rows = np.array(found).T
    subclass_of_pair = pd.factorize(treated_rows)[0] + 1  # 1, 2, … in matching order
    ids = data[id_col].to_numpy()
    in_order = np.argsort(subclass_of_pair, kind="stable")
    pairs = pd.DataFrame(
        {
            "treated": ids[treated_rows[in_order]],
            "control": ids[control_rows[in_order]],
            "subclass": subclass_of_pair[in_order],
        }
    )

    weights = _weights(treated_rows, control_rows, len(data), treated)
    subclass = np.zeros(len(data), dtype=int)
    subclass[treated_rows] = subclass_of_pair
    subclass[control_rows] = subclass_of_pair
    in_match = weights > 0
    matched = df.iloc[data.index[in_match]].assign(subclass=subclass[in_match], weight=weights[in_match])

    balance = pd.DataFrame(
        [_balance_row(name, numeric(data[name], name), treated, weights) for name in covariates]
    )
    return MatchResult(
        treatment=treatment,
        covariates=tuple(covariates),
        scale=scale,
        ratio=ratio,
        caliper=caliper,
        caliper_width=None if caliper is None else width,
        pairs=pairs,
        matched=matched,
        balance=balance,
        propensity=pd.DataFrame({id_col: ids, treatment: treated.astype(int), "ps": ps, "logit": logit}),
        model=model,
        n_treated=int(treated.sum()),
        n_control=int((~treated).sum()),
        n_treated_matched=int(subclass_of_pair.max()),
        n_control_matched=len(control_rows),
        n_excluded=n_excluded,
    )
