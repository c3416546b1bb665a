"""Input checks shared by the analytics functions: columns, complete cases, binary codes, groups."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from analytics.errors import AnalysisError


def require_columns(df: pd.DataFrame, columns: Iterable[str]) -> None:
    """Fail with the names of any columns the frame lacks."""
    missing = [column for column in dict.fromkeys(columns) if column not in df.columns]
    if missing:
        raise AnalysisError(f"missing column(s): {', '.join(repr(c) for c in missing)}")


def complete_cases(df: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """Rows with a value in every column, and how many rows were dropped for a missing one.

    Missing values are excluded and counted, never filled in.
    """
    columns = list(dict.fromkeys(columns))
    require_columns(df, columns)
    present = ~np.logical_or.reduce([pd.isna(df[column].to_numpy()) for column in columns])
    complete = df[columns] if present.all() else df.loc[present, columns]
    if complete.empty:
        raise AnalysisError(f"no rows have values in all of: {', '.join(repr(c) for c in columns)}")
    return complete, len(df) - len(complete)


def numeric(series: pd.Series, name: str) -> np.ndarray:
    """The column as finite floats (booleans count as 0/1); text or infinities are refused."""
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        raise AnalysisError(f"column {name!r} must be numeric (encode categories as 0/1 columns)")
    values = series.to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise AnalysisError(f"column {name!r} has infinite values")
    return values


def binary(series: pd.Series, name: str) -> np.ndarray:
    """The column as 0/1 integers; anything other than 0/1 (or booleans) is refused."""
    values = numeric(series, name)
    unexpected = sorted(set(np.unique(values)) - {0.0, 1.0})
    if unexpected:
        shown = ", ".join(f"{v:g}" for v in unexpected[:5])
        raise AnalysisError(f"column {name!r} must be binary 0/1; found {shown}")
    return values.astype(int)


def group_levels(series: pd.Series, name: str) -> list[Any]:
    """The sorted distinct levels of a grouping column, which must have at least two."""
    levels = sorted(series.dropna().unique().tolist())
    if len(levels) < 2:
        found = f"only {level_text(levels[0])}" if levels else "no values"
        raise AnalysisError(f"group variable {name!r} needs at least two levels; it has {found}")
    return levels


def level_text(level: Any) -> str:
    """A group level as text, whole-number floats without their ".0" (1.0 → "1")."""
    if isinstance(level, float) and level.is_integer():
        level = int(level)
    return str(level)


def group_label(by: str, level: Any) -> str:
    """R's stratum label, e.g. ``intrathecal=1`` or ``it_drug=methotrexate``."""
    return f"{by}={level_text(level)}"


def design_matrix(data: pd.DataFrame, covariates: Sequence[str], *, intercept: bool) -> np.ndarray:
    """Numeric model matrix (optionally led by a column of ones), refused when not estimable.

    A constant covariate, or one that is a combination of the others, has no estimable
    coefficient (with or without an intercept: a Cox model's baseline hazard absorbs constants);
    R would report NA, here the message names it.
    """
    if not covariates:
        raise AnalysisError("at least one covariate is needed")
    duplicated = sorted({c for c in covariates if list(covariates).count(c) > 1})
    if duplicated:
        raise AnalysisError(f"covariate(s) listed twice: {', '.join(duplicated)}")
    ones = np.ones(len(data))
    columns = [numeric(data[name], name) for name in covariates]
    if np.linalg.matrix_rank(np.column_stack([ones, *columns])) <= len(columns):
        kept = [ones]
        redundant = []
        for name, column in zip(covariates, columns, strict=True):
            if np.linalg.matrix_rank(np.column_stack([*kept, column])) == len(kept):
                redundant.append(name)
            else:
                kept.append(column)
        what = "constant or collinear with the other covariates"
        raise AnalysisError(f"covariate(s) {', '.join(repr(c) for c in redundant)} {what}")
    return np.column_stack([ones, *columns] if intercept else columns)
