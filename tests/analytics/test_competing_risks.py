"""Aalen–Johansen cumulative incidence equals R's multi-state survfit (stored by r/competing_risks.R)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from analytics.competing_risks import cumulative_incidence
from analytics.errors import AnalysisError

R_OUTPUT = json.loads((Path(__file__).parent / "r" / "competing_risks.r.json").read_text())
CASES = ["ties", "competing_censored", "no_competing", "icans_demo"]


@pytest.mark.parametrize("case", CASES)
def test_estimates_equal_r_survfit_at_every_time(case):
    expected = R_OUTPUT[case]
    data = pd.DataFrame(expected["data"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no jitter warning from lifelines: ties are broken first
        result = cumulative_incidence(data, "time", "status")
    curve = result.curve
    assert curve["time"].tolist() == pytest.approx(expected["time"])
    assert curve["at_risk"].tolist() == expected["n_risk"]
    assert curve["incidence"].tolist() == pytest.approx(expected["incidence"], rel=1e-10)
    assert curve["competing_incidence"].tolist() == pytest.approx(expected["competing_incidence"], abs=1e-12)


def test_the_same_data_give_the_same_numbers_every_time():
    data = pd.DataFrame(R_OUTPUT["ties"]["data"])
    first = cumulative_incidence(data, "time", "status").curve
    for _ in range(3):
        pd.testing.assert_frame_equal(cumulative_incidence(data, "time", "status").curve, first)


def test_counts_median_and_values_at_chosen_times():
    result = cumulative_incidence(pd.DataFrame(R_OUTPUT["ties"]["data"]), "time", "status")
    assert (result.n, result.events, result.competing, result.censored) == (15, 8, 3, 4)
    assert result.median == 8.0  # the incidence first reaches one half at t = 8 (0.558)
    at = result.incidence_at([0, 3.5, 10, 11]).set_index("time")
    assert at.loc[0.0, "incidence"] == 0 and at.loc[0.0, "at_risk"] == 15
    assert at.loc[3.5, "incidence"] == pytest.approx(0.2777778, rel=1e-6)
    assert at.loc[3.5, "at_risk"] == 8
    assert 11.0 not in at.index  # after the last follow-up, as R leaves it out


def test_median_is_none_when_the_incidence_never_reaches_one_half():
    data = pd.DataFrame({"time": [1, 2, 3, 4], "status": [1, 2, 2, 0]})
    assert cumulative_incidence(data, "time", "status").median is None


def test_missing_rows_are_counted_and_bad_codes_refused():
    data = pd.DataFrame({"time": [1, 2, None, 4], "status": [1, 0, 1, 2]})
    assert cumulative_incidence(data, "time", "status").n_excluded == 1
    with pytest.raises(AnalysisError, match="must be 0 .censored., 1 .event. or 2"):
        cumulative_incidence(pd.DataFrame({"time": [1, 2], "status": [1, 3]}), "time", "status")
    with pytest.raises(AnalysisError, match="no events"):
        cumulative_incidence(pd.DataFrame({"time": [1, 2], "status": [0, 2]}), "time", "status")
    with pytest.raises(AnalysisError, match="negative"):
        cumulative_incidence(pd.DataFrame({"time": [-1, 2], "status": [1, 0]}), "time", "status")


def test_ties_are_broken_at_any_time_scale():
    """Seconds since an epoch (1e9) tie as surely as days; the result is R's, rescaled."""
    data = pd.DataFrame(R_OUTPUT["ties"]["data"])
    seconds = data.assign(time=1.7e9 + data["time"] * 86400.0)
    curve = cumulative_incidence(seconds, "time", "status").curve
    assert curve["incidence"].tolist() == pytest.approx(R_OUTPUT["ties"]["incidence"], rel=1e-10)
