"""The numbers of each report (JSON and page) are the analytics API's on the demo data.

Each report is computed once for the module, as the system (every site). The LM report must give
the published values: OS median 10.1 months overall, 9.6 with intrathecal pemetrexed, 10.1 with
methotrexate; bevacizumab HR 0.404 (0.186–0.877), p = 0.022 with Breslow ties.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from django.urls import reverse
from django.utils.html import escape

from analytics.compare import paired_change, signed_rank_test
from analytics.datasets import build_dataset
from analytics.describe import table_one
from analytics.matching import match_nearest
from analytics.regression import multinomial_logistic
from analytics.reports import lm as lm_report
from analytics.reports import npsle
from analytics.reports.common import needs_exact_test
from analytics.reports.definitions import default_definition
from analytics.reports.figures import figure_svg
from analytics.reports.runner import report_run
from analytics.survival import cox, kaplan_meier, logrank
from tests import factories as f
from tests.reports.conftest import rows_by, section, table, with_figures

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def reports(demo, django_db_blocker) -> dict[str, dict]:
    """Each study's report numbers, computed once, and its dataset as the API sees it."""
    with django_db_blocker.unblock():
        return {
            code: {
                "numbers": report_run(study=study, filters={}, options={})[0].numbers,
                "data": build_dataset(study),
            }
            for code, study in demo.items()
        }


def approx(value):
    return pytest.approx(value, rel=1e-9, abs=1e-12)


def test_no_section_fails_on_the_demo_data(reports):
    for code, report in reports.items():
        failed = [(s["key"], s["message"]) for s in report["numbers"]["sections"] if s["status"] != "ok"]
        assert not failed, f"{code}: {failed}"


# --- LM: the published values ------------------------------------------------------------------


def test_lm_overall_and_by_drug_os_medians_are_the_published_ones(reports):
    numbers = reports["lm"]["numbers"]
    overall = {(r["endpoint"], r["group"]): r for r in table(numbers, "survival.medians")["rows"]}
    assert round(overall[("OS", "all")]["median"], 1) == 10.1
    by_drug = {(r["endpoint"], r["group"]): r for r in table(numbers, "survival_by_drug.medians")["rows"]}
    assert round(by_drug[("OS", "it_drug=pemetrexed")]["median"], 1) == 9.6
    assert round(by_drug[("OS", "it_drug=methotrexate")]["median"], 1) == 10.1


def test_lm_bevacizumab_hazard_ratio_is_the_papers_with_breslow_ties(reports):
    numbers = reports["lm"]["numbers"]
    assert numbers["report"]["options"]["ties"] == "breslow"
    bevacizumab = rows_by(table(numbers, "cox_os.univariable"), "term")["bevacizumab"]
    assert round(bevacizumab["hr"], 3) == 0.404
    assert (round(bevacizumab["lower"], 3), round(bevacizumab["upper"], 3)) == (0.186, 0.877)
    assert round(bevacizumab["p"], 3) == 0.022


def test_lm_numbers_equal_the_api(reports):
    """The report's defaults: months to one decimal as the paper's Table 3, SPSS's median interval."""
    numbers, data = reports["lm"]["numbers"], reports["lm"]["data"]
    data = data.assign(os_months=data["os_months"].round(1), ipfs_months=data["ipfs_months"].round(1))
    for endpoint, time in (("iPFS", "ipfs_months"), ("OS", "os_months")):
        event = time.replace("months", "event")
        km = kaplan_meier(data, time, event, by="bevacizumab", median_ci="spss").summary
        shown = {
            r["group"]: r
            for r in table(numbers, "survival_by_bevacizumab.medians")["rows"]
            if r["endpoint"] == endpoint
        }
        for row in km.to_dict("records"):
            assert shown[row["group"]]["median"] == approx(row["median"])
            assert shown[row["group"]]["median_lower"] == approx(row["median_lower"])
            assert shown[row["group"]]["events"] == row["events"]
    test = logrank(data, "os_months", "os_event", "bevacizumab")
    shown = rows_by(table(numbers, "survival_by_bevacizumab.logrank"), "endpoint")["OS"]
    assert shown["p"] == approx(test.p)
    assert shown["statistic"] == approx(test.statistic)
    model = cox(data, "os_months", "os_event", ["mutation_as_treated"], ties="breslow").table.iloc[0]
    assert rows_by(table(numbers, "cox_os.univariable"), "term")["gene_mutation"]["hr"] == approx(model["hr"])


def test_lm_swimmer_plot_has_one_lane_per_patient(reports):
    numbers = reports["lm"]["numbers"]
    courses = table(numbers, "swimmer.courses")["rows"]
    assert len(courses) == 41
    data = reports["lm"]["data"].set_index("study_code")
    for course in courses:
        assert course["injections"] == data.loc[course["study_code"], "it_dose_count"]


def test_lm_swimmer_of_a_large_cohort_counts_followed_patients_and_injections_per_month(demo, monkeypatch):
    """Above the lane limit the figure aggregates; its counts are those of the lanes it replaces."""
    monkeypatch.setattr(lm_report, "SWIMMER_MAX_LANES", 10)
    run, cached = report_run(
        study=demo["lm"], filters={}, options={"ties": "breslow", "median_ci": "survfit"}
    )
    assert not cached
    svg = figure_svg(run, "swimmer.swimmer")
    figure = next(f for s in run.numbers["sections"] for f in s["figures"] if f["key"] == "swimmer.swimmer")
    assert figure["caption"].startswith("41 patients are too many for one bar each (more than 10)")
    assert "-lane-" not in svg and "followed-" in svg and "injections-" in svg
    courses = table(run.numbers, "swimmer.courses")["rows"]
    assert len(courses) == 41, "the table still lists every patient"

    followed = lm_report._followed_by_month(
        pd.Series([0.5, 2.0, 2.0, 7.3]), pd.Series(["IP", "IP", "IM", "IP"])
    )
    assert followed.loc[0.0].to_dict() == {"IM": 1, "IP": 3}
    assert followed.loc[2.0].to_dict() == {"IM": 1, "IP": 2}, "follow-up of exactly 2 months reaches month 2"
    assert followed.loc[3.0].to_dict() == {"IM": 0, "IP": 1} and followed.index.max() == 8.0
    injections = lm_report._injections_by_month(
        pd.DataFrame({"patient_id": [1, 1, 2, 3, 9], "months": [0.0, 0.99, 1.0, 0.2, 0.1]}),
        pd.Series([1, 2, 3]),
        pd.Series(["IP", "IP", "IM"]),
    )
    assert injections.loc[0.0].to_dict() == {"IM": 1, "IP": 2} and injections.loc[1.0].to_dict() == {
        "IM": 0,
        "IP": 1,
    }
    assert injections.to_numpy().sum() == 4, "an injection of a patient outside the cohort is not counted"


# --- NPSLE ------------------------------------------------------------------------------------


#: Decimals of Table 1's median [IQR] cells, as the paper prints them: whole mmH2O, cells and SLEDAI
#: points; one decimal for years and months; two for g/L and the lupus anticoagulant ratio.
TABLE_ONE_DIGITS = {
    "age": 1,
    "sle_duration_months": 1,
    "sledai": 0,
    "icp_baseline": 0,
    "wbc_baseline": 0,
    "c3_g_per_l": 2,
    "c4_g_per_l": 2,
    "lupus_anticoagulant_ratio": 2,
    "protein_baseline": 2,
}


def test_the_exact_test_rule_is_cochrans_rule_on_the_crosstab():
    """Fisher's test exactly where an expected count of ``pd.crosstab``'s table is below 5."""
    rng = np.random.default_rng(5)
    for size, levels in ((12, 2), (40, 3), (300, 4), (300, 2)):
        frame = pd.DataFrame(
            {
                "arm": rng.choice([0, 1, None], size, p=[0.45, 0.45, 0.1]),
                "grade": pd.Categorical(
                    rng.choice(["a", "b", "c", "d"][:levels], size), categories=list("abcdz")
                ),
            }
        ).astype({"arm": "Int64"})
        frame.loc[frame.index[:3], "grade"] = None
        present = frame.dropna()
        counts = pd.crosstab(present["grade"], present["arm"]).to_numpy()
        expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / counts.sum()
        assert needs_exact_test(frame, "arm", "grade") == bool((expected < 5).any()), (size, levels)
    assert not needs_exact_test(frame.assign(grade=None), "arm", "grade")


def test_npsle_table_one_and_matching_equal_the_api(reports):
    numbers, data = reports["npsle"]["numbers"], reports["npsle"]["data"]
    matched = match_nearest(data, "intrathecal", npsle.MATCHING_COVARIATES, caliper=0.2, id_col="patient_id")
    shown = rows_by(table(numbers, "baseline.table_one"), "variable")
    assert set(TABLE_ONE_DIGITS) == set(npsle.BASELINE_CONTINUOUS)
    for part, frame in (("unmatched", data), ("matched", matched.matched)):
        api = table_one(
            frame,
            "intrathecal",
            continuous=npsle.BASELINE_CONTINUOUS,
            categorical=npsle.BASELINE_CATEGORICAL,
            exact=[v for v in npsle.BASELINE_CATEGORICAL if needs_exact_test(frame, "intrathecal", v)],
        ).table
        assert set(api["variable"]) == set(npsle.BASELINE_CONTINUOUS + npsle.BASELINE_CATEGORICAL)
        for row in api.to_dict("records"):
            cell = shown[row["variable"]]
            assert cell[f"{part}_p"] == approx(row["p"]), (part, row["variable"])
            assert cell[f"{part}_smd"] == approx(row["smd"]), (part, row["variable"])
            for level in ("0", "1"):
                summary = cell[f"{part}_summary_{level}"]
                if row["variable"] in TABLE_ONE_DIGITS:
                    digits = TABLE_ONE_DIGITS[row["variable"]]
                    quartiles = [row[f"{q}_{level}"] for q in ("median", "q1", "q3")]
                    assert [cell[f"{part}_{q}_{level}"] for q in ("median", "q1", "q3")] == approx(quartiles)
                    median, q1, q3 = (f"{value:.{digits}f}" for value in quartiles)
                    assert summary == f"{median} [{q1}, {q3}]", (part, row["variable"])
                else:
                    assert cell[f"{part}_count_{level}"] == row[f"count_{level}"]
                    assert cell[f"{part}_percent_{level}"] == approx(row[f"percent_{level}"])
                    assert summary == f"{row[f'count_{level}']} ({row[f'percent_{level}']:.1f})"

    summary = table(numbers, "matching.summary")["rows"][0]
    assert summary["pairs"] == len(matched.pairs)
    balance = rows_by(table(numbers, "matching.balance"), "covariate")
    for row in matched.balance.to_dict("records"):
        assert balance[row["covariate"]]["smd_after"] == approx(row["smd_after"])


def test_npsle_survival_outcome_and_csf_equal_the_api(reports):
    numbers, data = reports["npsle"]["numbers"], reports["npsle"]["data"]
    assert table(numbers, "survival.logrank")["rows"][0]["p"] == approx(
        logrank(data, "time_years", "event", "intrathecal").p
    )
    matched = match_nearest(
        data, "intrathecal", npsle.MATCHING_COVARIATES, caliper=0.2, id_col="patient_id"
    ).matched
    assert table(numbers, "survival_matched.logrank")["rows"][0]["p"] == approx(
        logrank(matched, "time_years", "event", "intrathecal").p
    )
    model = cox(data, "time_years", "event", npsle.COX_MULTIVARIABLE, ties="efron").table
    shown = rows_by(table(numbers, "cox_multivariable.model"), "term")
    for row in model.to_dict("records"):
        assert shown[row["term"]]["hr"] == approx(row["hr"])
        assert shown[row["term"]]["p"] == approx(row["p"])

    grouped = data.assign(discharge_outcome=data["discharge_outcome"].replace("death", "exacerbation"))
    outcome = multinomial_logistic(
        grouped, "discharge_outcome", npsle.OUTCOME_COVARIATES, reference="exacerbation"
    )
    shown = {(r["level"], r["term"]): r for r in table(numbers, "outcome.multinomial")["rows"]}
    for row in outcome.table.to_dict("records"):
        assert shown[(row["level"], row["term"])]["or"] == approx(row["or"])

    change = paired_change(data, "protein_baseline", "protein_after", by="intrathecal")
    within = rows_by(table(numbers, "csf_protein.within"), "group")
    for row in change.within.to_dict("records"):
        assert within[row["group"]]["p"] == approx(row["p"])
    assert table(numbers, "csf_protein.between")["rows"][0]["p"] == approx(change.between.p)


def test_npsle_sensitivity_analysis_leaves_out_headache_only_patients(reports):
    numbers, data = reports["npsle"]["numbers"], reports["npsle"]["data"]
    unmatched = rows_by(table(numbers, "sensitivity.summary"), "label")["Unmatched"]
    kept = data[data["headache_only"] == 0]
    assert unmatched["n"] == len(kept)
    assert unmatched["logrank_p"] == approx(logrank(kept, "time_years", "event", "intrathecal").p)


def test_npsle_adverse_events_count_the_registry_rows(reports, demo):
    from registry.models import AdverseEvent

    numbers = reports["npsle"]["numbers"]
    rows = rows_by(table(numbers, "safety.adverse_events"), "term")
    events = AdverseEvent.objects.filter(patient__study=demo["npsle"])
    assert rows["any"]["events"] == events.count()
    for term in set(events.values_list("ctcae_term", flat=True)):
        assert rows[term]["events"] == events.filter(ctcae_term=term).count()
        assert rows[term]["grade_1"] == events.filter(ctcae_term=term, grade=1).count()


# --- ICANS ------------------------------------------------------------------------------------


def test_icans_numbers_equal_the_api(reports):
    numbers, data = reports["icans"]["numbers"], reports["icans"]["data"]
    rate = table(numbers, "remission.rate")["rows"][0]
    assert (rate["count"], rate["n"]) == (int(data["remission"].sum()), len(data))
    paired = rows_by(table(numbers, "csf.paired"), "before")
    for before, after in (("car_t_before_idm", "car_t_after_idm"), ("il6_before_idm", "il6_after_idm")):
        pairs = data[[before, after]].dropna()
        assert paired[before]["p"] == approx(signed_rank_test((pairs[before] - pairs[after]).to_numpy()).p)
    grades = rows_by(table(numbers, "grade_and_ice.paired"), "before")
    assert grades["ice_before_idm"]["n"] == len(data[["ice_before_idm", "ice_after_idm"]].dropna())
    assert len(table(numbers, "patients.patients")["rows"]) == 13
    assert grades["ice_before_idm"]["n"] == 13  # every patient: before IDM, and at remission or the last one


# --- the page shows the same numbers ------------------------------------------------------------


def test_the_lm_page_shows_the_published_numbers(client, demo, reports):
    client.force_login(f.UserFactory(username="chief", is_superuser=True))
    response = client.get(reverse("reports:detail", args=[default_definition(demo["lm"]).pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "0.404" in page and "0.186–0.877" in page and "0.022" in page
    assert ">10.1<" in page and ">9.6<" in page
    assert "2.9–17.3" in page  # methotrexate OS with SPSS's interval (R's would be 6.8–NA)
    assert response.context["cached"], "the superuser sees every site, as the system did: a cache hit"


def test_the_npsle_page_shows_the_log_rank_p_and_table_one(client, demo, reports):
    client.force_login(f.UserFactory(username="chief", is_superuser=True))
    response = client.get(reverse("reports:detail", args=[default_definition(demo["npsle"]).pk]))
    page = with_figures(client, response.content.decode())
    numbers = reports["npsle"]["numbers"]
    p = table(numbers, "survival.logrank")["rows"][0]["p"]
    assert f"Log-rank p = {p:.3f}" in page or "Log-rank p = &lt;0.001" in page
    rows = table(numbers, "baseline.table_one")["rows"]
    assert [row["label"] for row in rows if row["variable"] is None] == [
        "System involvement of SLE",
        "Laboratory tests",
        "CSF at the first lumbar puncture",
    ]
    for row in rows:
        assert escape(row["label"].strip()) in page
        if row["variable"] is not None:
            for cell in (
                "unmatched_summary_0",
                "unmatched_summary_1",
                "matched_summary_0",
                "matched_summary_1",
            ):
                assert f">{row[cell]}<" in page, (row["variable"], cell)
    assert section(numbers, "subgroups")["status"] == "ok"
