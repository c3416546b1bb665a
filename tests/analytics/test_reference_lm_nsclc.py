"""The published 41-patient leptomeningeal-metastasis table, against R 4.2 / survival 3.5.

Tolerances as for the cohorts: 1e-4 relative on medians, limits, hazard ratios and the
log-rank statistic, 1e-3 relative on p-values; counts exactly; R's NA/null must be missing.
The paper's SPSS Cox result (Breslow ties) is checked at the three decimals it printed.
"""

from __future__ import annotations

import pytest

from analytics.survival import cox, kaplan_meier, logrank
from tests.analytics.reference import P_VALUE_RTOL, Reference, assert_r_value

KM_ANALYSES = {
    "km_os": ("os", None),
    "km_ipfs": ("ipfs", None),
    "km_os_by_drug": ("os", "it_drug"),
    "km_ipfs_by_drug": ("ipfs", "it_drug"),
    "km_os_by_bev": ("os", "bevacizumab"),
}
OTHER_RESULTS = {"cox_os_bevacizumab_efron", "cox_os_bevacizumab_breslow", "logrank_os_bevacizumab"}


def test_every_reference_result_is_checked(lm_nsclc: Reference) -> None:
    assert set(lm_nsclc.r) == set(KM_ANALYSES) | OTHER_RESULTS


def test_regimens_parsed_from_the_table(lm_nsclc: Reference) -> None:
    assert lm_nsclc.data["it_drug"].value_counts().to_dict() == {"pemetrexed": 34, "methotrexate": 7}
    assert lm_nsclc.data["bevacizumab"].sum() == 26


@pytest.mark.parametrize("key", list(KM_ANALYSES))
def test_kaplan_meier_medians(lm_nsclc: Reference, key: str) -> None:
    time, by = KM_ANALYSES[key]
    summary = kaplan_meier(lm_nsclc.data, time, f"{time}_event", by=by).summary
    expected = lm_nsclc.r[key]
    assert summary["group"].tolist() == [row["stratum"] for row in expected]
    assert summary["n"].tolist() == [row["n"] for row in expected]
    assert summary["events"].tolist() == [row["events"] for row in expected]
    for (_, row), reference in zip(summary.iterrows(), expected, strict=True):
        assert_r_value(row["median"], reference["median"])
        assert_r_value(row["median_lower"], reference["lower"])
        assert_r_value(row["median_upper"], reference["upper"])


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_cox_bevacizumab(lm_nsclc: Reference, ties: str) -> None:
    row = cox(lm_nsclc.data, "os", "os_event", ["bevacizumab"], ties=ties).table.iloc[0]
    expected = lm_nsclc.r[f"cox_os_bevacizumab_{ties}"]
    for column in ("hr", "lower", "upper"):
        assert_r_value(row[column], expected[column])
    assert_r_value(row["p"], expected["p"], rtol=P_VALUE_RTOL)


def test_breslow_reproduces_the_papers_spss_hazard_ratio(lm_nsclc: Reference) -> None:
    row = cox(lm_nsclc.data, "os", "os_event", ["bevacizumab"], ties="breslow").table.iloc[0]
    assert [round(row[c], 3) for c in ("hr", "lower", "upper", "p")] == [0.404, 0.186, 0.877, 0.022]


def test_logrank_bevacizumab(lm_nsclc: Reference) -> None:
    result = logrank(lm_nsclc.data, "os", "os_event", "bevacizumab")
    assert_r_value(result.statistic, lm_nsclc.r["logrank_os_bevacizumab"]["chisq"])
    assert_r_value(result.p, lm_nsclc.r["logrank_os_bevacizumab"]["p"], rtol=P_VALUE_RTOL)
