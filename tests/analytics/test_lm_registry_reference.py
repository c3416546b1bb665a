"""The LM demo cohort rebuilt from registry records (not the CSV), against R and the paper.

Tolerances: the registry stores whole days, so a rebuilt time differs from the table's months by at
most half a day (0.5 / 30.4375 = 0.0165 months). Kaplan–Meier medians and limits are times and are
compared within that absolute tolerance, and must round to R's value at one decimal. Cox and
log-rank depend only on the order of the times, which day rounding preserves, so they are held to
the usual 1e-4 relative (estimates) and 1e-3 relative (p-values). Counts are exact.
"""

from __future__ import annotations

import pytest

from analytics.datasets import build_dataset
from analytics.survival import cox, kaplan_meier, logrank
from tests.analytics.reference import P_VALUE_RTOL, assert_r_value, load_lm_nsclc

pytestmark = pytest.mark.django_db

HALF_DAY_IN_MONTHS = 0.5 / 30.4375

KM_ANALYSES = {
    "km_os": ("os", None),
    "km_ipfs": ("ipfs", None),
    "km_os_by_drug": ("os", "it_drug"),
    "km_ipfs_by_drug": ("ipfs", "it_drug"),
    "km_os_by_bev": ("os", "bevacizumab"),
}


@pytest.fixture(scope="module")
def registry_lm(lm_demo, django_db_blocker):
    with django_db_blocker.unblock():
        dataset = build_dataset("lm")
    return dataset.rename(columns={"os_months": "os", "ipfs_months": "ipfs"})


@pytest.fixture(scope="module")
def r_results(shared_dir):
    return load_lm_nsclc(shared_dir).r


def assert_time(actual, expected):
    if expected is None or expected == "NA":
        assert actual is None or actual != actual, f"R gives NA, got {actual}"
        return
    assert actual == pytest.approx(expected, abs=HALF_DAY_IN_MONTHS)
    assert round(actual, 1) == pytest.approx(expected)


@pytest.mark.parametrize("key", list(KM_ANALYSES))
def test_kaplan_meier_from_the_registry(registry_lm, r_results, key):
    time, by = KM_ANALYSES[key]
    summary = kaplan_meier(registry_lm, time, f"{time}_event", by=by).summary
    expected = r_results[key]
    assert summary["group"].tolist() == [row["stratum"] for row in expected]
    assert summary["n"].tolist() == [row["n"] for row in expected]
    assert summary["events"].tolist() == [row["events"] for row in expected]
    for (_, row), reference in zip(summary.iterrows(), expected, strict=True):
        assert_time(row["median"], reference["median"])
        assert_time(row["median_lower"], reference["lower"])
        assert_time(row["median_upper"], reference["upper"])


def test_published_medians(registry_lm):
    overall = kaplan_meier(registry_lm, "os", "os_event").summary.iloc[0]
    assert round(overall["median"], 1) == 10.1
    by_drug = kaplan_meier(registry_lm, "os", "os_event", by="it_drug").summary.set_index("group")
    assert round(by_drug.loc["it_drug=pemetrexed", "median"], 1) == 9.6
    assert round(by_drug.loc["it_drug=methotrexate", "median"], 1) == 10.1


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_cox_bevacizumab_from_the_registry(registry_lm, r_results, ties):
    row = cox(registry_lm, "os", "os_event", ["bevacizumab"], ties=ties).table.iloc[0]
    expected = r_results[f"cox_os_bevacizumab_{ties}"]
    for column in ("hr", "lower", "upper"):
        assert_r_value(row[column], expected[column])
    assert_r_value(row["p"], expected["p"], rtol=P_VALUE_RTOL)


def test_breslow_gives_the_papers_hazard_ratio(registry_lm):
    row = cox(registry_lm, "os", "os_event", ["bevacizumab"], ties="breslow").table.iloc[0]
    assert [round(row[c], 3) for c in ("hr", "lower", "upper", "p")] == [0.404, 0.186, 0.877, 0.022]


def test_logrank_from_the_registry(registry_lm, r_results):
    result = logrank(registry_lm, "os", "os_event", "bevacizumab")
    assert_r_value(result.statistic, r_results["logrank_os_bevacizumab"]["chisq"])
    assert_r_value(result.p, r_results["logrank_os_bevacizumab"]["p"], rtol=P_VALUE_RTOL)
