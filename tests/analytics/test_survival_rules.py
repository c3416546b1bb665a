"""Kaplan–Meier median rules, interval types and the proportional-hazards test, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.survival import cox, kaplan_meier, logrank, merge_near_ties


def km(times: list[float], events: list[int], **options):
    return kaplan_meier(pd.DataFrame({"t": times, "e": events}), "t", "e", **options)


def test_median_is_the_first_time_survival_is_at_or_below_half() -> None:
    # S = 0.8, 0.6, 0.4, ...: the curve first drops below 0.5 at t = 3.
    assert km([1, 2, 3, 4, 5], [1, 1, 1, 1, 1]).summary["median"].iloc[0] == 3


def test_median_on_a_flat_stretch_at_exactly_half_is_the_midpoint_to_the_next_drop() -> None:
    # S = 0.75, 0.5, 0.25, 0: exactly 0.5 from t = 2 until the drop at t = 3.
    assert km([1, 2, 3, 4], [1, 1, 1, 1]).summary["median"].iloc[0] == 2.5
    # A censoring at t = 3 keeps S at 0.5; the next drop is at t = 4.
    assert km([1, 2, 3, 4], [1, 1, 0, 1]).summary["median"].iloc[0] == 3


def test_curve_ending_at_exactly_half_takes_the_time_it_got_there() -> None:
    # print.survfit's rule; quantile.survfit would answer (2 + 4) / 2 here.
    assert km([1, 2, 3, 4], [1, 1, 0, 0]).summary["median"].iloc[0] == 2


def test_median_limit_is_missing_when_a_limit_curve_never_reaches_half() -> None:
    # Six subjects, four deaths: the upper limit of S stays above 0.5 (it is capped at 1).
    summary = km([1, 2, 3, 4, 5, 6], [1, 1, 1, 1, 0, 0]).summary.iloc[0]
    assert summary["median"] == 3.5
    assert np.isnan(summary["median_upper"])


def test_spss_median_interval_from_greenwood_and_the_density_estimate() -> None:
    # Nine uncensored deaths at 1..9: S(4) = 5/9 ≥ 0.55 and S(5) = 4/9 ≤ 0.45, so the density is
    # (5/9 - 4/9) / (5 - 4); without censoring Greenwood's Var S(5) is S(1 - S)/n.
    result = km(list(range(1, 10)), [1] * 9, median_ci="spss")
    se = np.sqrt(4 / 9 * 5 / 9 / 9) / (1 / 9)
    summary = result.summary.iloc[0]
    assert summary["median"] == 5
    assert (summary["median_lower"], summary["median_upper"]) == pytest.approx(
        (5 - 1.959964 * se, 5 + 1.959964 * se)
    )
    assert result.median_ci_method.startswith("SPSS")


def test_interval_types() -> None:
    # Four subjects, one death at t = 1: S = 0.75, SE(log S) = sqrt(1 / (4 * 3)).
    z, s, se = 1.959963984540054, 0.75, np.sqrt(1 / 12)
    first = {
        ct: km([1, 2, 3, 4], [1, 0, 0, 0], conf_type=ct).curve.iloc[0] for ct in ("log", "log-log", "plain")
    }
    assert (first["log"]["lower"], first["log"]["upper"]) == pytest.approx((s * np.exp(-z * se), 1.0))
    assert (first["plain"]["lower"], first["plain"]["upper"]) == pytest.approx((s - z * se * s, 1.0))
    power = np.exp(z * se / -np.log(s))
    assert (first["log-log"]["lower"], first["log-log"]["upper"]) == pytest.approx(
        (s**power, s ** (1 / power))
    )


def test_survival_at_times_before_the_first_and_after_the_last_follow_up() -> None:
    result = km([2, 3, 5], [1, 0, 1], by=None)
    table = result.survival_at([1, 2.5, 6])
    assert table["time"].tolist() == [1, 2.5]  # t = 6 is past the last follow-up, as in R
    assert table["survival"].tolist() == pytest.approx([1, 2 / 3])
    assert table["at_risk"].tolist() == [3, 2]


def test_groups_are_labelled_like_r_strata() -> None:
    frame = pd.DataFrame({"t": [1, 2, 3, 4], "e": [1, 1, 1, 0], "drug": ["b", "a", "b", "a"]})
    assert kaplan_meier(frame, "t", "e", by="drug").summary["group"].tolist() == ["drug=a", "drug=b"]
    assert kaplan_meier(frame, "t", "e").summary["group"].tolist() == ["all"]


def _time_varying_loglik(params: np.ndarray, times, events, x, g: dict[float, float], efron: bool) -> float:
    """Log partial likelihood with covariates [x, x·g(t)], written out death time by death time."""
    total = 0.0
    for when in np.unique(times[events == 1]):
        z = np.hstack([x, x * g[when]])
        eta = z @ params
        at_risk, dying = times >= when, (times == when) & (events == 1)
        total += eta[dying].sum()
        for r in range(dying.sum()):
            share = r / dying.sum() if efron else 0.0
            total -= np.log(np.exp(eta[at_risk]).sum() - share * np.exp(eta[dying]).sum())
    return total


def _numeric_score_and_information(f, at: np.ndarray, h: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    k = len(at)
    unit = np.eye(k) * h
    score = np.array([(f(at + unit[i]) - f(at - unit[i])) / (2 * h) for i in range(k)])
    hessian = np.array(
        [
            [
                (
                    f(at + unit[i] + unit[j])
                    - f(at + unit[i] - unit[j])
                    - f(at - unit[i] + unit[j])
                    + f(at - unit[i] - unit[j])
                )
                / (4 * h * h)
                for j in range(k)
            ]
            for i in range(k)
        ]
    )
    return score, -hessian


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_proportional_hazards_test_is_the_score_test_for_x_times_km_time(ties: str) -> None:
    rng = np.random.default_rng(11)
    n = 40
    frame = pd.DataFrame({"age": rng.normal(0, 1, n), "male": rng.integers(0, 2, n)})
    frame["t"] = np.ceil(rng.exponential(5 * np.exp(-0.5 * frame["age"]))).astype(float)  # many ties
    frame["e"] = rng.integers(0, 2, n)
    frame.loc[0, "e"] = 1
    result = cox(frame, "t", "e", ["age", "male"], ties=ties)

    times, events, x = frame["t"].to_numpy(), frame["e"].to_numpy(), frame[["age", "male"]].to_numpy()
    death_times = np.unique(times[events == 1])
    survival, km_before = 1.0, {}
    for when in death_times:  # 1 - KM just before each death time, centred over the deaths
        km_before[when] = 1 - survival
        survival *= 1 - ((times == when) & (events == 1)).sum() / (times >= when).sum()
    centre = np.mean([km_before[t] for t in times[events == 1]])
    g = {when: value - centre for when, value in km_before.items()}

    beta = result.table["coef"].to_numpy()
    score, information = _numeric_score_and_information(
        lambda params: _time_varying_loglik(params, times, events, x, g, ties == "efron"),
        np.append(beta, [0, 0]),
    )
    score[:2] = 0  # the fitted β: its score is zero by construction
    expected = [
        score[[0, 1, 2 + j]]
        @ np.linalg.solve(information[np.ix_([0, 1, 2 + j], [0, 1, 2 + j])], score[[0, 1, 2 + j]])
        for j in range(2)
    ]
    expected.append(score @ np.linalg.solve(information, score))
    assert result.proportional_hazards["term"].tolist() == ["age", "male", "GLOBAL"]
    assert result.proportional_hazards["df"].tolist() == [1, 1, 2]
    assert result.proportional_hazards["chisq"].tolist() == pytest.approx(expected, rel=1e-4)


def test_proportional_hazards_test_on_the_lung_data() -> None:
    # R survival 3.x, cox.zph(coxph(Surv(time, status) ~ age + sex + wt.loss, lung)) prints
    # chisq 0.5077, 2.5489, 0.0144 and GLOBAL 3.0051 (df 1, 1, 1, 3).
    datasets = pytest.importorskip("lifelines.datasets")
    result = cox(datasets.load_lung(), "time", "status", ["age", "sex", "wt.loss"])
    assert (result.n, result.events) == (214, 152)
    assert result.proportional_hazards["chisq"].tolist() == pytest.approx(
        [0.5077, 2.5489, 0.0144, 3.0051], abs=5e-5
    )


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_a_limit_past_the_largest_float_is_infinite_as_in_r() -> None:
    # R survival 3.x, summary(coxph(Surv(time, status) ~ I(age/1e5), lung)): coef 1872.018, se
    # 919.9207, exp(coef) Inf, lower .95 9.314454e+29, upper .95 Inf.
    datasets = pytest.importorskip("lifelines.datasets")
    lung = datasets.load_lung().assign(age_scaled=lambda d: d["age"] / 1e5)
    row = cox(lung, "time", "status", ["age_scaled"]).table.iloc[0]
    assert (row["coef"], row["se"]) == pytest.approx((1872.018, 919.9207), rel=1e-6)
    assert row["lower"] == pytest.approx(9.314454e29, rel=1e-5)
    assert row["hr"] == np.inf and row["upper"] == np.inf


def _calendar_times() -> pd.DataFrame:
    """Months from days as calendar arithmetic makes them: 0.1 + 0.2 and 0.3 are one time to R."""
    return pd.DataFrame(
        {
            "t": [0.1 + 0.2, 0.3, 0.3, 1.0, 7 / 3, (1 / 3) * 7, 4.0, 5.0],
            "e": [1, 1, 0, 1, 1, 0, 1, 0],
            "g": [0, 1, 0, 1, 0, 1, 0, 1],
        }
    )


def test_timefix_merges_times_equal_within_r_tolerance() -> None:
    frame = _calendar_times()
    first = min(7 / 3, (1 / 3) * 7)  # a run of near-equal times becomes its first (least) time
    assert merge_near_ties(frame["t"].to_numpy()).tolist() == [0.3, 0.3, 0.3, 1.0, first, first, 4.0, 5.0]
    exact = frame.assign(t=merge_near_ties(frame["t"].to_numpy()))
    merged = kaplan_meier(frame, "t", "e")
    assert merged.curve["time"].tolist() == pytest.approx([0.3, 1.0, 7 / 3, 4.0, 5.0])
    assert merged.curve["survival"].tolist() == kaplan_meier(exact, "t", "e").curve["survival"].tolist()
    # R: survdiff/coxph with timefix = TRUE (the default) see one tie at 0.3 and one at 7/3.
    assert logrank(frame, "t", "e", "g").statistic == logrank(exact, "t", "e", "g").statistic
    assert cox(frame, "t", "e", ["g"]).loglik == cox(exact, "t", "e", ["g"]).loglik


def test_timefix_false_compares_times_exactly() -> None:
    frame = _calendar_times()
    assert len(kaplan_meier(frame, "t", "e", timefix=False).curve) == 7
    split = logrank(frame, "t", "e", "g", timefix=False).statistic
    assert split != logrank(frame, "t", "e", "g").statistic
    assert cox(frame, "t", "e", ["g"], timefix=False).loglik != cox(frame, "t", "e", ["g"]).loglik


def test_timefix_tolerance_is_relative_to_the_mean_time() -> None:
    # Large times (days since 1970): a gap of 1e-5 is below 1.5e-8 of the mean and is merged.
    times = np.array([20_000.0, 20_000.00001, 20_001.0])
    assert merge_near_ties(times).tolist() == [20_000.0, 20_000.0, 20_001.0]
    assert merge_near_ties(np.array([1.0, 1.001, 2.0])).tolist() == [1.0, 1.001, 2.0]


def test_logrank_with_an_arm_never_at_risk_at_an_event_time_is_chisq_0_on_0_df() -> None:
    """survdiff (survival 3.5-3) on this cohort: 'Chisq= 0 on 0 degrees of freedom, p= 1', E = 6 and 0."""
    cohort = pd.DataFrame(
        {
            "t": [1, 2, 3, 4, 5, 6, 7, 8, 0.5, 0.5, 0.6, 0.7, 0.8],
            "e": [1, 1, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0],
            "g": ["a"] * 8 + ["b"] * 5,
        }
    )
    result = logrank(cohort, "t", "e", "g")
    assert (result.statistic, result.df, result.p) == (0.0, 0, 1.0)
    assert result.table["expected"].tolist() == pytest.approx([6.0, 0.0])
