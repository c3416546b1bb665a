"""Results serialise to plain JSON: frames as lists of records, NaN and <NA> as None."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from analytics.describe import table_one
from analytics.matching import match_nearest
from analytics.regression import logistic
from analytics.survival import cox, kaplan_meier, logrank
from tests.analytics.reference import Reference


def test_kaplan_meier_result_is_json_with_r_na_as_none() -> None:
    frame = pd.DataFrame({"t": [1, 2, 3, 4, 5, 6], "e": [1, 1, 1, 1, 0, 0]})
    data = kaplan_meier(frame, "t", "e").to_dict()
    assert data["summary"] == [
        {"group": "all", "n": 6, "events": 4, "median": 3.5, "median_lower": 2.0, "median_upper": None}
    ]
    assert isinstance(data["curve"], list) and data["curve"][0]["time"] == 1.0
    json.dumps(data, allow_nan=False)


def test_every_result_serialises(reference_cohort: Reference) -> None:
    data = reference_cohort.data
    results = [
        table_one(data, "intrathecal", continuous=["age"], categorical=["outcome", "mpp"], exact=["acs"]),
        match_nearest(data, "intrathecal", ["age", "sledai"]),
        logistic(data, "intrathecal", ["age"]),
        cox(data, "time_years", "event", ["intrathecal"]),
        logrank(data, "time_years", "event", "intrathecal"),
    ]
    for result in results:
        assert json.loads(json.dumps(result.to_dict(), allow_nan=False)).keys() == result.to_dict().keys()


def test_results_are_frozen() -> None:
    result = logrank(pd.DataFrame({"t": np.arange(1, 9), "e": [1] * 8, "g": [0, 1] * 4}), "t", "e", "g")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.p = 0.5  # type: ignore[misc]
