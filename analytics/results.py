"""Frozen result objects and their conversion to plain JSON-ready data."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd


def to_jsonable(value: Any) -> Any:
    """Convert results, frames and numpy scalars to JSON types; missing numbers become None."""
    if isinstance(value, Result):
        return value.to_dict()
    if isinstance(value, pd.DataFrame):
        return [to_jsonable(record) for record in value.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return [to_jsonable(item) for item in value.tolist()]
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


class Result:
    """Base for the frozen dataclasses the analytics functions return.

    Subclasses are declared ``@dataclass(frozen=True, eq=False)``: they hold DataFrames, whose
    element-wise ``==`` would make a generated ``__eq__``/``__hash__`` raise.
    """

    #: Set on each subclass by ``@dataclass`` (what ``dataclasses.fields`` reads).
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-serialisable data (DataFrames as lists of records, NaN as None)."""
        return {field.name: to_jsonable(getattr(self, field.name)) for field in dataclasses.fields(self)}
