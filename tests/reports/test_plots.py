"""Report figures are valid, deterministic SVG with the series the tests (and readers) expect."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analytics import plots
from analytics.reports.common import at_risk
from analytics.survival import kaplan_meier

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def km():
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "time": rng.exponential(3.0, 60).round(2),
            "event": rng.integers(0, 2, 60),
            "arm": np.repeat([0, 1], 30),
        }
    )
    return kaplan_meier(frame, "time", "event", by="arm")


@pytest.fixture(autouse=True)
def drawn_fresh(request):
    """These tests are about drawing: each figure is drawn, never given back from the memo, except in
    the memo's own tests (marked ``memo``)."""
    if request.node.get_closest_marker("memo"):
        yield
        return
    with plots.drawn.fresh():
        yield


def counted_draws(monkeypatch) -> list[object]:
    """Each ``Figure.draw`` from here on, in order."""
    draws: list[object] = []
    draw = Figure.draw
    monkeypatch.setattr(
        Figure, "draw", lambda figure, renderer: draws.append(renderer) or draw(figure, renderer)
    )
    return draws


def ids(svg: str) -> list[str]:
    return [element.get("id") for element in ET.fromstring(svg).iter() if element.get("id")]


def km_panel(km, **kwargs) -> plots.KmPanel:
    return plots.KmPanel(
        title="Arm",
        curve=km.curve,
        groups=[("arm=0", "Control"), ("arm=1", "Treated")],
        xlabel="Years",
        ylabel="Surviving",
        **kwargs,
    )


def test_figures_are_drawn_on_the_agg_backend():
    assert matplotlib.get_backend().lower() == "agg"


def test_a_km_plot_has_one_line_per_group_censoring_marks_and_numbers_at_risk(km):
    svg = plots.km_plot(
        "survival.km", [km_panel(km, at_risk=at_risk(km, [0, 2, 4]), note="Log-rank p = 0.5")]
    )
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    found = ids(svg)
    assert [i for i in found if i.startswith("survival-km-km-")] == [
        "survival-km-km-arm-0",
        "survival-km-km-arm-1",
    ]
    assert "survival-km-censor-arm-0" in found and "survival-km-at-risk" in found
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "Control" in text and "Treated" in text and "Number at risk" in text and "Log-rank p = 0.5" in text
    assert "30" in text.split()  # 30 at risk per arm at time 0


def test_panels_of_one_figure_get_their_own_ids(km):
    svg = plots.km_plot("subgroups.km", [km_panel(km), km_panel(km), km_panel(km)], columns=2)
    found = ids(svg)
    assert len(found) == len(set(found)), "ids are unique within a figure"
    assert {i for i in found if i.endswith("km-arm-1")} == {
        f"subgroups-km-panel{n}-km-arm-1" for n in (1, 2, 3)
    }


def test_the_same_numbers_give_the_same_bytes(km):
    first = plots.km_plot("survival.km", [km_panel(km)])
    assert first == plots.km_plot("survival.km", [km_panel(km)])
    assert not first.startswith("<?xml") and "<metadata" not in first and "dc:date" not in first


def test_the_other_figures_render_their_series():
    love = plots.love_plot("m.love", [("Age", 0.3, 0.05), ("Sex", -0.2, 0.01)])
    assert {"m-love-smd-before", "m-love-smd-after"} <= set(ids(love))
    forest = plots.forest_plot(
        "c.forest", [plots.Effect("Bevacizumab", 0.404, 0.186, 0.877)], xlabel="Hazard ratio"
    )
    assert "c-forest-forest-estimates" in ids(forest)
    assert "0.40 (0.19–0.88)" in forest
    box = plots.paired_box_plot("p.box", [plots.PairedGroup("Arm A", [1, 2, 3], [0.5, 1, 1.5])], ylabel="g/L")
    assert {"p-box-box-Arm-A-first", "p-box-box-Arm-A-last"} <= set(ids(box))
    slopes = plots.slope_plot(
        "s.slopes", [plots.SlopePanel("IL-6", [100, 900], [20, 50], "pg/mL", log_scale=True)]
    )
    assert "s-slopes-median-IL-6" in ids(slopes)
    curve = pd.DataFrame(
        {"time": [1.0, 2.0, 3.0], "incidence": [0.2, 0.2, 0.6], "competing_incidence": [0, 0.2, 0.2]}
    ).assign(censored=[0, 0, 1])
    cumulative = plots.cumulative_incidence_plot(
        "t.cif", curve, event_label="Remission", competing_label="Death", xlabel="Days", ylabel="Patients"
    )
    assert {"t-cif-cif-event", "t-cif-cif-competing", "t-cif-cif-censor"} <= set(ids(cumulative))
    spaghetti = plots.trajectory_plot(
        "t.traj",
        [
            plots.TrajectoryPanel("ICE", "ICE", [("IC01", [-2, 0, 24], [4, 5, 10])], [-2, 0, 24], [4, 5, 10]),
            plots.TrajectoryPanel(
                "Grade", "Grade", [("IC01", [-2, 24], [2, 0])], [-2, 24], [2, 0], (0, 1, 2)
            ),
        ],
        xlabel="Hours since the first IDM",
        marker_label="First IDM",
    )
    assert {"t-traj-panel1-trajectory-IC01", "t-traj-panel1-median", "t-traj-panel2-median"} <= set(
        ids(spaghetti)
    )
    swimmer = plots.swimmer_plot(
        "s.swim",
        [
            plots.Lane("LM001", 10.0, doses=[0, 0.1, 1], progression=[5.0], death=10.0, group="IP"),
            plots.Lane("LM002", 4.0, doses=[0, 0.2], last_contact=4.0, group="IM"),
        ],
        groups=["IP", "IM"],
        xlabel="Months",
    )
    assert {"s-swim-lane-LM001", "s-swim-lane-LM002"} <= set(ids(swimmer))
    for svg in (love, forest, box, slopes, cumulative, spaghetti, swimmer):
        ET.fromstring(svg)


# --- figures that scale -------------------------------------------------------------------------

SVG_BUDGET = 500 * 1024


@pytest.fixture(scope="module")
def big_km():
    rng = np.random.default_rng(11)
    n = 100_000
    frame = pd.DataFrame(
        {
            "time": rng.exponential(30.0, n).round(2),
            "event": rng.integers(0, 2, n),
            "arm": rng.integers(0, 2, n),
        }
    )
    return kaplan_meier(frame, "time", "event", by="arm")


def test_a_km_plot_of_100000_patients_stays_small_and_keeps_its_shape(big_km):
    svg = plots.km_plot("big.km", [km_panel(big_km, at_risk=at_risk(big_km, [0, 50, 100]))])
    assert len(svg) < SVG_BUDGET / 2
    rows = big_km.curve[big_km.curve["group"] == "arm=0"]
    xmax = float(big_km.curve["time"].max())
    times, survival, _, _ = plots._km_steps(rows, xmax)
    assert len(times) <= 2 / plots.STEP_RESOLUTION + 2 < len(rows)
    assert survival[-1] == rows["survival"].iloc[-1] and times[-1] == rows["time"].iloc[-1]
    # Every corner drawn is a corner of the estimate (nothing invented, only corners merged).
    estimate = dict(zip(rows["time"], rows["survival"], strict=True)) | {0.0: 1.0}
    assert all(estimate[t] == s for t, s in zip(times, survival, strict=True))


def test_a_box_plot_of_100000_values_draws_each_outlier_position_once():
    rng = np.random.default_rng(3)
    group = plots.PairedGroup("All", rng.lognormal(0, 1, 50_000), rng.lognormal(0, 1, 50_000))
    svg = plots.paired_box_plot("big.box", [group], ylabel="g/L")
    assert len(svg) < SVG_BUDGET / 4


def test_injections_per_week_replace_one_row_per_patient_for_large_cohorts():
    weekly = pd.DataFrame({"given": [900, 850], "missed": [12, 30]}, index=[0.0, 1.0])
    svg = plots.dose_rate_plot("doses.dose_timeline", weekly, xlabel="Weeks")
    assert {"doses-dose_timeline-rate-given", "doses-dose_timeline-rate-missed"} <= set(ids(svg))
    assert len(svg) < SVG_BUDGET / 10


# --- drawing once -------------------------------------------------------------------------------


def test_a_figure_is_drawn_once(km, monkeypatch):
    draws = counted_draws(monkeypatch)
    plots.km_plot("survival.km", [km_panel(km, at_risk=at_risk(km, [0, 2, 4]))])
    assert len(draws) == 1  # savefig of a figure with a layout engine would draw it twice


def test_the_layout_is_matplotlibs_constrained_layout(km, monkeypatch):
    """Laying the figure out before savefig gives the bytes of savefig laying it out itself."""
    ours = plots.km_plot("subgroups.km", [km_panel(km, at_risk=at_risk(km, [0, 2, 4]))] * 3, columns=2)
    monkeypatch.setattr(plots, "_figure", lambda w, h: Figure(figsize=(w, h), layout="constrained"))
    monkeypatch.setattr(plots, "_lay_out", lambda figure: None)
    assert ours == plots.km_plot(
        "subgroups.km", [km_panel(km, at_risk=at_risk(km, [0, 2, 4]))] * 3, columns=2
    )


def test_a_dose_timeline_draws_a_line_per_treated_patient_and_a_marker_per_injection():
    lanes = [
        plots.DoseLane("P1", [0.0, 1.0, 2.0], ["given", "changed", "missed"], [12.0, 8.0, None]),
        plots.DoseLane("P2", [], [], []),
        plots.DoseLane("P3", [0.5, 3.0], ["given", "unplanned"], [12.0, 5.0]),
    ]
    svg = plots.dose_timeline_plot("doses.timeline", lanes, xlabel="Weeks", dose_label="mg")
    groups = {g.get("id"): g for g in ET.fromstring(svg).iter(f"{SVG}g") if g.get("id")}
    assert len(list(groups["doses-timeline-timeline-lanes"].iter(f"{SVG}path"))) == 2  # P2 has none
    for status, injections in (("given", 2), ("changed", 1), ("missed", 1), ("unplanned", 1)):
        group = groups[f"doses-timeline-timeline-{status}"]
        drawn = [*group.iter(f"{SVG}use")] or [*group.iter(f"{SVG}path")]  # a marker used, or inline
        assert len(drawn) == injections, status


def test_injections_of_one_dose_share_one_marker_definition():
    """200 patients given 12 mg four times: each marker a <use> of one path, not a path each."""
    lanes = [plots.DoseLane(f"P{i}", [0.0, 7.0, 14.0, 21.0], ["given"] * 4, [12.0] * 4) for i in range(200)]
    svg = plots.dose_timeline_plot("doses.timeline", lanes, xlabel="Days", dose_label="mg")
    group = next(
        g for g in ET.fromstring(svg).iter(f"{SVG}g") if g.get("id") == "doses-timeline-timeline-given"
    )
    assert len(list(group.iter(f"{SVG}use"))) == 800 and len(list(group.iter(f"{SVG}path"))) == 1
    assert len(svg) < 800 * 200  # a 560-byte path per marker would be 450 KB


# --- figures drawn lately -----------------------------------------------------------------------


@pytest.fixture
def empty_memo(monkeypatch):
    monkeypatch.setattr(plots, "drawn", plots._Drawn())
    return plots.drawn


@pytest.mark.memo
def test_the_same_inputs_give_back_the_bytes_drawn_without_drawing_again(km, monkeypatch, empty_memo):
    with plots.drawn.fresh():
        expected = plots.km_plot("survival.km", [km_panel(km)])
    draws = counted_draws(monkeypatch)
    first = plots.km_plot("survival.km", [km_panel(km)])
    again = plots.km_plot("survival.km", [km_panel(km)])
    assert first == again == expected
    assert len(draws) == 1, "the second figure came from the memo"


@pytest.mark.memo
def test_any_changed_input_is_drawn_again(km, monkeypatch, empty_memo):
    plots.km_plot("survival.km", [km_panel(km)])
    draws = counted_draws(monkeypatch)
    moved = km.curve.copy()
    moved.iloc[-1, moved.columns.get_loc("survival")] *= 0.5  # one number of one curve
    changed = [
        plots.km_plot("survival.km", [plots.KmPanel(**{**vars(km_panel(km)), "curve": moved})]),
        plots.km_plot("survival.other", [km_panel(km)]),  # another key: other ids
        plots.km_plot("survival.km", [km_panel(km)], columns=1),  # a keyword
    ]
    assert len(draws) == 3
    with plots.drawn.fresh():
        assert changed[0] == plots.km_plot(
            "survival.km", [plots.KmPanel(**{**vars(km_panel(km)), "curve": moved})]
        )


@pytest.mark.memo
def test_inputs_that_cannot_be_pickled_are_drawn_every_time(monkeypatch, empty_memo):
    weekly = pd.DataFrame({"given": [9, 8], "missed": [1, 3]}, index=[0.0, 1.0])
    weekly.attrs["note"] = lambda: None  # a lambda cannot be pickled
    draws = counted_draws(monkeypatch)
    first = plots.dose_rate_plot("doses.rate", weekly, xlabel="Weeks")
    assert first == plots.dose_rate_plot("doses.rate", weekly, xlabel="Weeks")
    assert len(draws) == 2 and not empty_memo.svg


@pytest.mark.memo
def test_the_memo_keeps_the_latest_figures_within_its_bytes(monkeypatch, empty_memo):
    def rate_plot(given: int) -> str:
        weekly = pd.DataFrame({"given": [given, 8], "missed": [1, 3]}, index=[0.0, 1.0])
        return plots.dose_rate_plot("doses.rate", weekly, xlabel="Weeks")

    monkeypatch.setattr(empty_memo, "MAX_BYTES", 4 * len(rate_plot(1)) + 100)  # room for about four
    for given in range(2, 8):
        rate_plot(given)
    assert empty_memo.size == sum(map(len, empty_memo.svg.values())) <= empty_memo.MAX_BYTES
    assert 3 <= len(empty_memo.svg) <= 4
    draws = counted_draws(monkeypatch)
    rate_plot(7)
    assert not draws, "the latest figure is kept"
    rate_plot(1)
    assert len(draws) == 1, "the oldest had gone"
