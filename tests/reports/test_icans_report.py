"""The ICANS report on the demo series follows the ICANS paper: its remission rule (and the strict
one), time to remission from the first IDM as a cumulative incidence with death competing (equal to
R), before/after on every patient, trajectories, CSF with the paired test, the baseline table and OS
and PFS; labels, never codes, in what the page shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.competing_risks import cumulative_incidence
from analytics.datasets import build_dataset
from analytics.models import ReportRun
from analytics.reports import icans as icans_report
from analytics.reports.figures import figure_svg, run_figures
from analytics.reports.runner import report_run
from analytics.survival import kaplan_meier
from registry.choices import CarTTarget, HaematologicalMalignancy
from registry.models import Study
from tests.reports.conftest import rows_by, section, table

pytestmark = pytest.mark.django_db

R_OUTPUT = json.loads(
    (Path(__file__).parent.parent / "analytics" / "r" / "competing_risks.r.json").read_text()
)


@pytest.fixture(scope="module")
def icans(demo, django_db_blocker) -> Iterator[tuple[dict, object, object]]:
    """The ICANS demo series (of the package's demo studies); its report numbers, figures and dataset."""
    with django_db_blocker.unblock():
        study = demo["icans"]
        run = report_run(study=study, filters={}, options={})[0]
        yield run.numbers, run_figures(run, draw=True), build_dataset(study)


def test_every_section_computes_in_the_papers_order(icans):
    numbers, _, _ = icans
    keys = [s["key"] for s in numbers["sections"]]
    assert keys == [
        "baseline",
        "patients",
        "remission",
        "time_to_remission",
        "grade_and_ice",
        "trajectories",
        "csf",
        "survival",
        "doses",
    ]
    assert [s["key"] for s in numbers["sections"] if s["status"] != "ok"] == []


def test_baseline_table_gives_the_papers_summary(icans):
    numbers, _, _ = icans
    rows = rows_by(table(numbers, "baseline.summary"), "characteristic")
    assert rows["Age (years)"]["value"] == "39 (11–65)"
    assert rows["Prior lines of therapy"]["value"] == "7 (1–16)"
    assert rows["CAR-T products (distinct)"]["value"] == "6"
    assert rows["CAR-T dose (×10⁶ cells/kg)"]["value"] == "2.0 (0.5–5.0)"
    assert rows["Marrow blasts before lymphodepletion (%)"]["value"] == "33.23 (5.34–78.50)"
    assert rows["Marrow blasts before lymphodepletion (%)"]["n"] == 11
    assert rows["CNS involvement"]["value"] == "9 (69.2%)"
    assert rows["Disease: Acute myeloid leukaemia"]["count"] == 7
    assert rows["Worst ICANS grade 3–4"]["count"] == 5 and rows["Worst ICANS grade 1–2"]["count"] == 8
    assert rows["Worst CRS grade: grade 1"]["count"] + rows["Worst CRS grade: grade 2"]["count"] == 13
    assert rows["ICANS onset (day after infusion)"]["value"] == "11 (3–20)"
    assert rows["ICANS onset to the first IDM (hours)"]["median"] == 12
    assert rows["IDMs per patient"]["value"] == "1 (1–3)"


def test_remission_uses_the_papers_rule_with_the_strict_one_as_a_second_row(icans):
    numbers, _, data = icans
    rate = table(numbers, "remission.rate")
    paper, strict = rate["rows"]
    assert (paper["count"], paper["n"]) == (12, 13) == (int(data["remission"].sum()), len(data))
    assert round(paper["percent"], 1) == 92.3
    assert (strict["count"], strict["n"]) == (11, 13)
    assert paper["label"].endswith("¹") and rate["notes"][0].startswith("¹ The ICANS paper's definition")
    assert (
        "grade 3–4 ICANS downgraded to grade ≤1, or grade 1–2 ICANS back to an ICE score of 10"
        in rate["notes"][0]
    )


def test_time_to_remission_is_a_cumulative_incidence_from_the_first_idm_equal_to_r(icans):
    numbers, figures, data = icans
    summary = rows_by(table(numbers, "time_to_remission.summary"), "label")["Paper's rule"]
    assert (summary["median"], summary["minimum"], summary["maximum"]) == (1, 1, 7)
    assert (summary["remitted"], summary["competing"], summary["censored"]) == (12, 1, 0)
    expected = R_OUTPUT["icans_demo"]
    cif = cumulative_incidence(data, "remission_time_days", "remission_status")
    assert cif.curve["time"].tolist() == pytest.approx(expected["time"], abs=1e-6)
    assert cif.curve["incidence"].tolist() == pytest.approx(expected["incidence"], rel=1e-10)
    assert cif.curve["competing_incidence"].tolist() == pytest.approx(
        expected["competing_incidence"], abs=1e-12
    )
    incidence = rows_by(table(numbers, "time_to_remission.incidence"), "time")
    assert incidence[1.0]["incidence"] == pytest.approx(7 / 13)
    assert incidence[7.0]["incidence"] == pytest.approx(12 / 13)
    assert 14.0 not in incidence  # after the last follow-up (IC01's death at 8.2 days)
    svg = figures["time_to_remission.cumulative_incidence"]
    assert 'id="time_to_remission-cumulative_incidence-cif-competing"' in svg


def test_before_and_after_keep_every_patient_and_say_which_assessment(icans):
    numbers, _, _ = icans
    grades = table(numbers, "grade_and_ice.paired")
    assert [row["n"] for row in grades["rows"]] == [13, 13]
    assert (
        "at remission by the paper's rule (12 patients), or, without remission, the last assessment (1)"
        in (grades["notes"][0])
    )
    assert section(numbers, "grade_and_ice")["excluded"] == 0


def test_trajectories_show_every_patient_by_hours_since_the_first_idm(icans):
    numbers, figures, _ = icans
    medians = rows_by(table(numbers, "trajectories.medians"), "hours")
    assert medians[0.0]["patients"] == 13 and medians[72.0]["patients"] == 13
    assert medians[0.0]["median_ice"] < medians[24.0]["median_ice"]
    svg = figures["trajectories.spaghetti"]
    for code in ("IC01", "IC13"):
        assert f'id="trajectories-spaghetti-panel1-trajectory-{code}"' in svg
    assert 'id="trajectories-spaghetti-panel2-median"' in svg


def test_a_cohort_too_large_for_a_line_each_draws_one_patient_in_k_and_the_median_of_all(icans, monkeypatch):
    monkeypatch.setattr(icans_report, "TRAJECTORY_MAX_LINES", 5)
    ReportRun.objects.all().delete()  # recompute (rolled back with the test)
    run = report_run(study=Study.objects.get(code="icans"), filters={}, options={})[0]
    svg = figure_svg(run, "trajectories.spaghetti")
    drawn = {code for code in (f"IC{n:02d}" for n in range(1, 14)) if f'panel1-trajectory-{code}"' in svg}
    assert drawn == {"IC01", "IC04", "IC07", "IC10", "IC13"}, "one in 3 by study code, at most 5"
    assert 'id="trajectories-spaghetti-panel2-median"' in svg
    figure = next(
        f for s in run.numbers["sections"] for f in s["figures"] if f["key"] == "trajectories.spaghetti"
    )
    assert "5 of the 13 patients (one in 3 by study code" in figure["caption"]
    assert rows_by(table(run.numbers, "trajectories.medians"), "hours")[0.0]["patients"] == 13


def test_csf_car_t_cells_fall_significantly_protein_and_il6_only_tend_to(icans):
    numbers, _, _ = icans
    csf = table(numbers, "csf.paired")
    rows = rows_by(csf, "label")
    assert rows["CSF CAR-T cells"]["p"] < 0.05 and rows["CSF CAR-T cells"]["fell"] == 13
    for label in ("CSF protein", "CSF IL-6"):
        assert rows[label]["p"] >= 0.05 and 7 <= rows[label]["fell"] < 13
    assert any("Wilcoxon signed-rank" in note for note in csf["notes"])


def test_os_and_pfs_from_the_infusion_are_the_api_kaplan_meier(icans):
    numbers, _, data = icans
    medians = rows_by(table(numbers, "survival.medians"), "endpoint")
    for endpoint, time, event in (("OS", "os_months", "os_event"), ("PFS", "pfs_months", "pfs_event")):
        km = kaplan_meier(data, time, event).summary.iloc[0]
        assert medians[endpoint]["median"] == pytest.approx(km["median"])
        assert medians[endpoint]["label"] == "All patients"
    assert round(medians["OS"]["median"], 1) == 6.0 and round(medians["PFS"]["median"], 1) == 5.0


def test_shown_text_is_labels_not_codes(icans):
    numbers, _, _ = icans
    codes = {c.value for c in HaematologicalMalignancy} | {c.value for c in CarTTarget} | {"icans-idm v1"}
    for sec in numbers["sections"]:
        for tab in sec["tables"]:
            shown = [c["key"] for c in tab["columns"] if c["shown"] and c["kind"] == "text"]
            for row in tab["rows"]:
                for key in shown:
                    assert row[key] not in codes, (tab["key"], key, row[key])
