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


def _weighted_moments(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Mean and unbiased variance with reliability weights (the sample variance for unit weights)."""
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
    mean_treated, var_treated = _weighted_moments(
        treated, np.ones(len(treated)) if treated_weights is None else treated_weights
    )
    mean_control, var_control = _weighted_moments(
        control, np.ones(len(control)) if control_weights is None else control_weights
    )
    pooled_sd = np.sqrt((var_treated + var_control) / 2)
    if pooled_sd == 0:
        raise AnalysisError(f"standardized difference of {name!r} is undefined: no variation")
    return float((mean_treated - mean_control) / pooled_sd)


def _is_zero_one(values: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)) and set(
        values.astype(float).unique()
    ) <= {0.0, 1.0}


def _or_note(name: str, notes: dict[str, str], compute: Callable[[], float]) -> float:
    """The statistic, or NaN with the reason noted against the variable (the first reason wins)."""
    try:
        return compute()
    except AnalysisError as exc:
        notes.setdefault(name, str(exc))
        return float("nan")


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
            q1, median, q3 = np.quantile(values, QUARTILES)  # numpy's default is R's type 7
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


def _categorical_test_name(counts: pd.DataFrame, exact: bool) -> str:
    if exact:
        return FISHER
    return CHI_SQUARE_YATES if (counts.sum(axis=1) > 0).sum() == 2 and counts.shape[1] == 2 else CHI_SQUARE


def _categorical_test(name: str, counts: pd.DataFrame, exact: bool) -> float:
    present = counts[counts.sum(axis=1) > 0]
    if len(present) < 2:
        raise AnalysisError(
            f"variable {name!r} has a single value ({level_text(present.index[0])}); nothing to test"
        )
    if (present.sum(axis=0) == 0).any():
        raise AnalysisError(f"variable {name!r} has no values in a group; nothing to test")
    table = present.to_numpy()
    return fisher_exact_test(table).p if exact else chi_square_test(table).p


def _categorical_rows(
    name: str, values: pd.Series, group: pd.Series, levels: Sequence[Any], exact: bool, notes: dict[str, str]
) -> list[dict]:
    zero_one = _is_zero_one(values)
    if zero_one:
        values = values.astype(int)
    counts = pd.crosstab(values, group).reindex(columns=levels, fill_value=0)
    if counts.empty:
        raise AnalysisError(f"variable {name!r} has no values; nothing to test")
    if zero_one:
        counts = counts.reindex([0, 1], fill_value=0)
    p = _or_note(name, notes, lambda: _categorical_test(name, counts, exact))
    shown = [1] if zero_one else counts.index.tolist()
    totals = counts.sum(axis=0)
    rows = []
    for value in shown:
        row: dict[str, Any] = {"variable": name, "level": None if zero_one else level_text(value)}
        for level in levels:
            count, total = int(counts.loc[value, level]), int(totals[level])
            suffix = level_text(level)
            percent = 100 * count / total if total else float("nan")
            row |= {
                f"summary_{suffix}": f"{count} ({percent:.1f}%)" if total else "no values",
                f"n_{suffix}": total,
                f"count_{suffix}": count,
                f"percent_{suffix}": percent,
            }
        indicator = (values == value).astype(float)
        treated, control = indicator[group == levels[1]].to_numpy(), indicator[group == levels[0]].to_numpy()
        row |= {
            "test": _categorical_test_name(counts, exact),
            "p": p,
            "smd": _or_note(name, notes, partial(standardized_mean_difference, treated, control, name)),
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
    grouped = df[df[by].notna()]
    levels = group_levels(grouped[by], by)
    if len(levels) != 2:
        raise AnalysisError(f"table_one compares two groups; {by!r} has {len(levels)} levels")
    suffixes = [level_text(level) for level in levels]

    rows: list[dict[str, Any]] = []
    notes: dict[str, str] = {}
    for name in continuous:
        present = grouped[grouped[name].notna()]
        if present.empty:
            raise AnalysisError(f"variable {name!r} has no values; nothing to describe")
        values = numeric(present[name], name)
        groups = [values[(present[by] == level).to_numpy()] for level in levels]
        rows.append(
            _continuous_row(name, groups, suffixes, digits, notes)
            | {"n_missing": len(grouped) - len(present)}
        )
    for name in categorical:
        present = grouped[grouped[name].notna()]
        for row in _categorical_rows(name, present[name], present[by], levels, name in exact, notes):
            rows.append(row | {"n_missing": len(grouped) - len(present)})

    sizes = {
        suffix: int((grouped[by] == level).sum()) for level, suffix in zip(levels, suffixes, strict=True)
    }
    table = pd.DataFrame(rows)
    counts = [c for c in table.columns if c.startswith(("n_", "count_"))]
    table[counts] = table[counts].astype("Int64")  # whole numbers, <NA> on rows of the other kind
    order = [
        "variable",
        "level",
        *(f"{piece}_{suffix}" for suffix in suffixes for piece in GROUP_PIECES),
        "test",
        "p",
        "smd",
        "n_missing",
    ]
    return TableOne(
        by,
        tuple(levels),
        sizes,
        table[[c for c in order if c in table.columns]],
        len(df) - len(grouped),
        notes,
    )
