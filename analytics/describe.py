"""Baseline characteristics by group ("Table 1"): summaries, R-equivalent tests and SMDs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from analytics.compare import (
    CHI_SQUARE,
    CHI_SQUARE_YATES,
    FISHER,
    RANK_SUM,
    chi_square_test,
    fisher_exact_test,
    rank_sum_test,
)
from analytics.errors import AnalysisError
from analytics.frames import group_levels, level_text, numeric, require_columns
from analytics.results import Result

QUARTILES = (0.25, 0.5, 0.75)
GROUP_PIECES = ("summary", "n", "median", "q1", "q3", "count", "percent")


@dataclass(frozen=True, eq=False)
class TableOne(Result):
    """One row per variable (per level for categorical variables that are not 0/1).

    Per group level ``g`` (``levels`` order, control first) the table has ``summary_g`` (text)
    and ``n_g`` (non-missing values), plus ``median_g``, ``q1_g``, ``q3_g`` for continuous rows
    or ``count_g``, ``percent_g`` for categorical rows. ``test`` and ``p`` belong to the whole
    variable and repeat on each of its level rows; ``smd`` is per row (per level indicator);
    ``n_missing`` counts rows with a group but no value of the variable. A variable whose test
    or SMD cannot be computed (a single value, a group with one or no values, no variation within
    the groups) keeps its summaries with NaN there, and ``notes`` maps it to the reason.
    """

    by: str
    levels: tuple[Any, ...]
    group_sizes: dict[str, int]
    table: pd.DataFrame
    n_excluded: int
    notes: dict[str, str]


def _weighted_moments(values: np.ndarray, weights: np.ndarray | None) -> tuple[float, float]:
    """Mean and unbiased variance with reliability weights (the sample variance without weights)."""
    if weights is None:
        return float(values.mean()), float(values.var(ddof=1))
    mean = float(np.average(values, weights=weights))
    total = weights.sum()
    variance = float(np.sum(weights * (values - mean) ** 2) / (total - np.sum(weights**2) / total))
    return mean, variance


def standardized_mean_difference(
    treated: np.ndarray,
    control: np.ndarray,
    name: str,
    *,
    treated_weights: np.ndarray | None = None,
    control_weights: np.ndarray | None = None,
) -> float:
    """(mean treated − mean control) / √((s²treated + s²control)/2), sample variances.

    0/1 variables use the same formula on the 0/1 values, as R's reference did. Weights (from
    k:1 matching) give weighted means and variances.
    """
    if len(treated) < 2 or len(control) < 2:
        raise AnalysisError(f"standardized difference of {name!r} needs two values per group")
    mean_treated, var_treated = _weighted_moments(treated, treated_weights)
    mean_control, var_control = _weighted_moments(control, control_weights)
    pooled_sd = np.sqrt((var_treated + var_control) / 2)
    if pooled_sd == 0:
        raise AnalysisError(f"standardized difference of {name!r} is undefined: no variation")
    return float((mean_treated - mean_control) / pooled_sd)


def _is_zero_one(values: pd.Series, distinct: np.ndarray) -> bool:
    """Numeric or boolean values, all 0 or 1 (``distinct``: the values' distinct values)."""
    return (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)) and set(
        distinct.astype(float).tolist()
    ) <= {0.0, 1.0}


def _or_note(name: str, notes: dict[str, str], compute: Callable[[], float]) -> float:
    """The statistic, or NaN with the reason noted against the variable (the first reason wins)."""
    try:
        return compute()
    except AnalysisError as exc:
        notes.setdefault(name, str(exc))
        return float("nan")


def _quartiles(values: np.ndarray) -> np.ndarray:
    """``np.quantile(values, QUARTILES)`` (R's type 7: linear between order statistics), with
    numpy's own interpolation, without its per-call overhead."""
    position = (len(values) - 1) * np.asarray(QUARTILES)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, len(values) - 1)
    ordered = np.partition(values, np.union1d(below, above))
    fraction = position - below
    low, high = ordered[below], ordered[above]
    step = high - low
    # numpy's _lerp: from the nearer end, so the result is monotone in the fraction
    return np.where(fraction >= 0.5, high - step * (1 - fraction), low + step * fraction)


def _continuous_row(
    name: str, groups: list[np.ndarray], suffixes: list[str], digits: int, notes: dict[str, str]
) -> dict:
    row: dict[str, Any] = {"variable": name, "level": None}
    for values, suffix in zip(groups, suffixes, strict=True):
        if len(values) == 0:
            notes.setdefault(name, f"variable {name!r} has no values in group {suffix!r}")
            q1 = median = q3 = float("nan")
            summary = "no values"
        else:
            q1, median, q3 = _quartiles(values)
            summary = f"{median:.{digits}f} [{q1:.{digits}f}, {q3:.{digits}f}]"
        row |= {
            f"summary_{suffix}": summary,
            f"n_{suffix}": len(values),
            f"median_{suffix}": median,
            f"q1_{suffix}": q1,
            f"q3_{suffix}": q3,
        }
    return row | {
        "test": RANK_SUM,
        "p": _or_note(name, notes, lambda: rank_sum_test(groups[0], groups[1]).p),
        "smd": _or_note(name, notes, lambda: standardized_mean_difference(groups[1], groups[0], name)),
    }


def _categorical_test_name(counts: np.ndarray, exact: bool) -> str:
    if exact:
        return FISHER
    return CHI_SQUARE_YATES if (counts.sum(axis=1) > 0).sum() == 2 and counts.shape[1] == 2 else CHI_SQUARE


def _categorical_test(name: str, counts: np.ndarray, values: Sequence[Any], exact: bool) -> float:
    """The variable's test on its counts (values × groups; ``values`` label the rows)."""
    nonempty = counts.sum(axis=1) > 0
    if nonempty.sum() < 2:
        raise AnalysisError(
            f"variable {name!r} has a single value ({level_text(values[int(np.argmax(nonempty))])}); "
            "nothing to test"
        )
    table = counts[nonempty]
    if (table.sum(axis=0) == 0).any():
        raise AnalysisError(f"variable {name!r} has no values in a group; nothing to test")
    return fisher_exact_test(table).p if exact else chi_square_test(table).p


def _categorical_rows(
    name: str,
    column: pd.Series,
    group_codes: np.ndarray,
    levels: Sequence[Any],
    exact: bool,
    notes: dict[str, str],
) -> list[dict]:
    """Rows of a categorical variable; ``group_codes`` is each row's group (0 control, 1 treated)."""
    codes, distinct = pd.factorize(column, sort=True)  # -1 where missing
    distinct = np.asarray(distinct)
    present = codes >= 0
    if not present.any():
        raise AnalysisError(f"variable {name!r} has no values; nothing to test")
    zero_one = _is_zero_one(column, distinct)
    if zero_one:
        values: list[Any] = [0, 1]
        codes = distinct.astype(float).astype(int)[codes]  # a value's code is the value
    else:
        values = distinct.tolist()
    n_missing = len(codes) - int(present.sum())
    groups = group_codes[present]
    codes = codes[present]
    counts = np.bincount(codes * 2 + groups, minlength=2 * len(values)).reshape(len(values), 2)
    p = _or_note(name, notes, lambda: _categorical_test(name, counts, values, exact))
    test = _categorical_test_name(counts, exact)
    totals = counts.sum(axis=0)
    treated = groups == 1
    rows = []
    for index in [1] if zero_one else range(len(values)):
        row: dict[str, Any] = {"variable": name, "level": None if zero_one else level_text(values[index])}
        for group, level in enumerate(levels):
            count, total = int(counts[index, group]), int(totals[group])
            suffix = level_text(level)
            percent = 100 * count / total if total else float("nan")
            row |= {
                f"summary_{suffix}": f"{count} ({percent:.1f}%)" if total else "no values",
                f"n_{suffix}": total,
                f"count_{suffix}": count,
                f"percent_{suffix}": percent,
            }
        indicator = (codes == index).astype(float)
        row |= {
            "test": test,
            "p": p,
            "smd": _or_note(
                name,
                notes,
                partial(standardized_mean_difference, indicator[treated], indicator[~treated], name),
            ),
            "n_missing": n_missing,
        }
        rows.append(row)
    return rows


def table_one(
    df: pd.DataFrame,
    by: str,
    *,
    continuous: Sequence[str] = (),
    categorical: Sequence[str] = (),
    exact: Sequence[str] = (),
    digits: int = 2,
) -> TableOne:
    """Describe variables by a two-level group, with R-equivalent tests and SMDs.

    Continuous: median [Q1, Q3] (R's type-7 quantiles), Mann–Whitney as ``wilcox.test``.
    Categorical: n (%), chi-square as ``chisq.test`` (Yates on 2×2 only); variables in
    ``exact`` (listing them there is enough) use ``fisher.test`` instead. 0/1 variables get
    one row, the count of 1s. SMD is the second level minus the first (treated − control)
    over the pooled SD. Each variable uses the rows where it is present; rows without a group
    are excluded (``n_excluded``).
    """
    categorical = list(dict.fromkeys([*categorical, *exact]))
    if not continuous and not categorical:
        raise AnalysisError("table_one needs at least one continuous or categorical variable")
    both = sorted(set(continuous) & set(categorical))
    if both:
        raise AnalysisError(f"variable(s) listed as both continuous and categorical: {', '.join(both)}")
    if by in continuous or by in categorical:
        raise AnalysisError(f"the group variable {by!r} cannot also be described")
    require_columns(df, [by, *continuous, *categorical])
    has_group = df[by].notna()
    grouped = df if has_group.all() else df.loc[has_group, [by, *continuous, *categorical]]
    levels = group_levels(grouped[by], by)
    if len(levels) != 2:
        raise AnalysisError(f"table_one compares two groups; {by!r} has {len(levels)} levels")
    suffixes = [level_text(level) for level in levels]

    group_values = grouped[by].to_numpy()
    group_codes = (group_values == levels[1]).astype(int)  # every row is in one of the two levels
    rows: list[dict[str, Any]] = []
    notes: dict[str, str] = {}
    for name in continuous:
        column = grouped[name]
        present = column.notna().to_numpy()
        if not present.any():
            raise AnalysisError(f"variable {name!r} has no values; nothing to describe")
        values = numeric(column if present.all() else column[present], name)
        treated = group_codes[present] == 1
        rows.append(
            _continuous_row(name, [values[~treated], values[treated]], suffixes, digits, notes)
            | {"n_missing": len(grouped) - int(present.sum())}
        )
    for name in categorical:
        rows.extend(_categorical_rows(name, grouped[name], group_codes, levels, name in exact, notes))

    sizes = {suffix: int((group_codes == code).sum()) for code, suffix in enumerate(suffixes)}
    order = [
        "variable",
        "level",
        *(f"{piece}_{suffix}" for suffix in suffixes for piece in GROUP_PIECES),
        "test",
        "p",
        "smd",
        "n_missing",
    ]
    columns: dict[str, Any] = {}
    for column in order:
        if not any(column in row for row in rows):
            continue
        cells = [row.get(column, np.nan) for row in rows]
        if column.startswith(("n_", "count_")):  # whole numbers, <NA> on rows of the other kind
            missing = np.array([v is np.nan for v in cells])
            whole = np.array([0 if v is np.nan else v for v in cells], dtype=np.int64)
            columns[column] = pd.arrays.IntegerArray(whole, missing)
        elif column in ("variable", "level", "test") or column.startswith("summary_"):
            columns[column] = np.array(cells, dtype=object)
        else:
            columns[column] = np.array(cells, dtype=float)
    table = pd.DataFrame(columns, copy=False)
    return TableOne(
        by,
        tuple(levels),
        sizes,
        table,
        len(df) - len(grouped),
        notes,
    )
