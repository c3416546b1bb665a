"""Kaplan–Meier, log-rank and Cox models that reproduce R's ``survival`` package.

Conventions (R ``survival`` 3.x defaults):

* Kaplan–Meier curves carry Greenwood standard errors of log S and a 95% interval that is
  log-transformed by default (``conf_type="log"``; upper limit capped at 1, no interval once
  S = 0). The median and its interval are read off the curve and its two limit curves the way
  ``print.survfit`` does: the first time the curve is at or below 0.5 — or, when the curve sits
  exactly at 0.5 (within √machine-ε) on a flat stretch, the midpoint between that time and the
  next time the curve drops. A limit curve that never reaches 0.5 gives an undefined (None)
  limit, R's NA.
* ``median_ci="spss"`` replaces the median interval with SPSS's symmetric median ± 1.96·SE,
  SE = Greenwood SE of S at the median / a density estimate from the event times where S last
  is ≥ 0.55 and first is ≤ 0.45 (Klein & Moeschberger's uniform-kernel estimator).
* Times equal to within R's tolerance are one time (``timefix=True``, survival's ``aeqSurv``):
  sorted distinct times whose gap is at most √machine-ε (1.5e-8), absolutely or relative to the
  mean distinct |time|, are merged into the first of their run. Times built from calendar
  arithmetic (days / 30.4375) differ in the last bits and would otherwise split one tie in two.
  ``timefix=False`` compares times exactly, as R's ``timefix = FALSE``.
* Cox models are fitted by Newton–Raphson on the Efron or Breslow partial likelihood, stopping
  as ``coxph`` does (relative log-likelihood change ≤ 1e-9); intervals and p-values are Wald.
  The proportional-hazards check is ``cox.zph``'s score test (survival ≥ 3.0) with its default
  ``transform="km"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import special, stats

from analytics.errors import AnalysisError
from analytics.frames import binary, complete_cases, design_matrix, group_label, group_levels, numeric
from analytics.results import Result

ConfType = Literal["log", "log-log", "plain"]
MedianCI = Literal["survfit", "spss"]
Ties = Literal["efron", "breslow"]

Z_95 = float(stats.norm.ppf(0.975))
FLAT_TOLERANCE = float(np.sqrt(np.finfo(float).eps))  # print.survfit's test for "exactly 0.5"
TIME_TOLERANCE = float(np.sqrt(np.finfo(float).eps))  # aeqSurv's default tolerance
SPSS_DENSITY_WINDOW = 0.05
COX_EPS = 1e-9  # coxph.control(eps)
COX_MAX_ITER = 30
MEDIAN_CI_METHODS = {
    "survfit": "R survfit: the times at which the pointwise 95% limits of S reach 0.5",
    "spss": "SPSS: median ± 1.96·SE, SE from Greenwood variance and a 0.45–0.55 density estimate",
}


# --- shared input handling -----------------------------------------------------------------


def merge_near_ties(times: np.ndarray) -> np.ndarray:
    """R survival's ``aeqSurv``: times within √ε of the previous distinct time (absolutely or
    relative to the mean distinct |time|) become the first time of their run."""
    distinct = np.unique(times)
    if len(distinct) < 2:
        return times
    gaps = np.diff(distinct)
    tied = (gaps <= TIME_TOLERANCE) | (gaps / np.mean(np.abs(distinct)) <= TIME_TOLERANCE)
    if not tied.any():
        return times
    cuts = distinct[np.concatenate([[True], ~tied])]
    return cuts[np.searchsorted(cuts, times, side="right") - 1]


def _survival_data(
    df: pd.DataFrame, time: str, event: str, others: Sequence[str], timefix: bool
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, int]:
    data, n_excluded = complete_cases(df, [time, event, *others])
    times = numeric(data[time], time)
    if (times < 0).any():
        raise AnalysisError(f"time column {time!r} has negative values")
    if timefix:
        times = merge_near_ties(times)
    events = binary(data[event], event)
    if events.sum() == 0:
        raise AnalysisError(f"no events in {event!r}: survival cannot be estimated")
    return data, times, events, n_excluded


def _strata(data: pd.DataFrame, by: str | None) -> list[tuple[str, np.ndarray]]:
    if by is None:
        return [("all", np.ones(len(data), dtype=bool))]
    values = data[by].to_numpy()
    return [(group_label(by, level), values == level) for level in group_levels(data[by], by)]


# --- Kaplan–Meier --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class KaplanMeierResult(Result):
    """Kaplan–Meier estimates per group (``"all"`` without ``by``, else ``"<by>=<level>"``).

    ``summary``: ``group``, ``n``, ``events``, ``median``, ``median_lower``, ``median_upper``
    (None where R gives NA). ``curve``: one row per distinct time (events and censorings):
    ``group``, ``time``, ``at_risk``, ``events``, ``censored``, ``survival``, ``std_err``
    (Greenwood SE of log S), ``lower``, ``upper``.
    """

    time: str
    event: str
    by: str | None
    conf_type: ConfType
    median_ci_method: str
    summary: pd.DataFrame
    curve: pd.DataFrame
    n_excluded: int

    def survival_at(self, times: Iterable[float]) -> pd.DataFrame:
        """Survival and its interval at given times, as R's ``summary(fit, times = )``.

        Returns ``group``, ``time``, ``at_risk``, ``survival``, ``lower``, ``upper``. Times after
        a group's last follow-up are left out, as R does; before its first time S = 1.
        """
        requested = np.asarray(sorted(times), dtype=float)
        rows = []
        for group, curve in self.curve.groupby("group", sort=False):
            # Columns as arrays, read by position: a row of the frame per time was most of the time.
            curve_times, risk, estimate, low, high = (
                curve[column].to_numpy() for column in ("time", "at_risk", "survival", "lower", "upper")
            )
            for when in requested[requested <= curve_times[-1]]:
                step = np.searchsorted(curve_times, when, side="right") - 1
                at_risk = int(risk[np.searchsorted(curve_times, when, side="left")])
                if step < 0:  # before the first time: S = 1 with no variance
                    limits = _interval(np.ones(1), np.zeros(1), self.conf_type)
                    survival, lower, upper = 1.0, float(limits[0][0]), float(limits[1][0])
                else:
                    survival, lower, upper = estimate[step], low[step], high[step]
                rows.append(
                    {
                        "group": group,
                        "time": when,
                        "at_risk": at_risk,
                        "survival": survival,
                        "lower": lower,
                        "upper": upper,
                    }
                )
        return pd.DataFrame(rows, columns=["group", "time", "at_risk", "survival", "lower", "upper"])


def _interval(
    survival: np.ndarray, std_err: np.ndarray, conf_type: ConfType
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise 95% limits as R's ``survfit`` computes them from the SE of log S."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if conf_type == "log":
            positive = np.where(survival > 0, survival, np.nan)
            return (
                np.exp(np.log(positive) - Z_95 * std_err),
                np.minimum(np.exp(np.log(positive) + Z_95 * std_err), 1.0),
            )
        if conf_type == "log-log":
            inside = np.where((survival > 0) & (survival < 1), survival, np.nan)
            log_log = np.log(-np.log(inside))
            shift = Z_95 * std_err / np.log(inside)
            return np.exp(-np.exp(log_log - shift)), np.exp(-np.exp(log_log + shift))
        half_width = Z_95 * std_err * survival  # "plain"
        return np.maximum(survival - half_width, 0.0), np.minimum(survival + half_width, 1.0)


def _km_curve(times: np.ndarray, events: np.ndarray, conf_type: ConfType) -> dict[str, np.ndarray]:
    """The curve's columns (``KaplanMeierResult.curve`` without ``group``) as arrays."""
    distinct, index = np.unique(times, return_inverse=True)
    deaths = np.bincount(index, weights=events)
    leaving = np.bincount(index)
    at_risk = len(times) - np.cumsum(leaving) + leaving
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = np.cumsum(np.where(deaths > 0, deaths / (at_risk * (at_risk - deaths)), 0.0))
    survival = np.cumprod(1 - deaths / at_risk)
    std_err = np.sqrt(greenwood)
    lower, upper = _interval(survival, std_err, conf_type)
    return {
        "time": distinct,
        "at_risk": at_risk,
        "events": deaths.astype(int),
        "censored": (leaving - deaths).astype(int),
        "survival": survival,
        "std_err": std_err,
        "lower": lower,
        "upper": upper,
    }


def _first_at_or_below_half(times: np.ndarray, curve: np.ndarray) -> float:
    """``print.survfit``'s median of a (survival or limit) curve; NaN when it never gets there."""
    keep = ~np.isnan(curve) & (curve < 0.5 + FLAT_TOLERANCE)
    if not keep.any():
        return float("nan")
    times, curve = times[keep], curve[keep]
    drops = curve < curve[0]
    if abs(curve[0] - 0.5) < FLAT_TOLERANCE and drops.any():
        return float((times[0] + times[np.argmax(drops)]) / 2)
    return float(times[0])


def _spss_median_interval(curve: dict[str, np.ndarray], median: float) -> tuple[float, float]:
    """SPSS's median ± 1.96·SE; NaN limits when S never falls to 0.45 (no density estimate)."""
    event_rows = curve["events"] > 0
    times = np.concatenate([[0.0], curve["time"][event_rows]])
    survival = np.concatenate([[1.0], curve["survival"][event_rows]])
    below = survival <= 0.5 - SPSS_DENSITY_WINDOW
    if np.isnan(median) or not below.any():
        return float("nan"), float("nan")
    last_above = np.flatnonzero(survival >= 0.5 + SPSS_DENSITY_WINDOW)[-1]  # time 0 qualifies
    first_below = np.argmax(below)
    density = (survival[last_above] - survival[first_below]) / (times[first_below] - times[last_above])
    at_median = np.searchsorted(curve["time"], median, side="right") - 1
    se_survival = curve["survival"][at_median] * curve["std_err"][at_median]
    se_median = se_survival / density
    return float(median - Z_95 * se_median), float(median + Z_95 * se_median)


def kaplan_meier(
    df: pd.DataFrame,
    time: str,
    event: str,
    *,
    by: str | None = None,
    conf_type: ConfType = "log",
    median_ci: MedianCI = "survfit",
    timefix: bool = True,
) -> KaplanMeierResult:
    """Kaplan–Meier curves, medians and 95% intervals, overall or per level of ``by``.

    ``event`` is 1 for the event, 0 for censoring. Rows missing time, event or group are
    excluded and counted. ``median_ci="spss"`` gives SPSS's symmetric median interval instead
    of R's; the method used is named in ``median_ci_method``. ``timefix`` merges near-equal
    times as R does (module docstring).
    """
    if conf_type not in ("log", "log-log", "plain"):
        raise AnalysisError(f"conf_type must be 'log', 'log-log' or 'plain', not {conf_type!r}")
    if median_ci not in MEDIAN_CI_METHODS:
        raise AnalysisError(f"median_ci must be 'survfit' or 'spss', not {median_ci!r}")
    data, times, events, n_excluded = _survival_data(df, time, event, [by] if by else [], timefix)
    summaries, curves, labels = [], [], []
    for group, members in _strata(data, by):
        curve = _km_curve(times[members], events[members], conf_type)
        median = _first_at_or_below_half(curve["time"], curve["survival"])
        if median_ci == "spss":
            lower, upper = _spss_median_interval(curve, median)
        else:
            lower = _first_at_or_below_half(curve["time"], curve["lower"])
            upper = _first_at_or_below_half(curve["time"], curve["upper"])
        summaries.append(
            {
                "group": group,
                "n": int(members.sum()),
                "events": int(events[members].sum()),
                "median": median,
                "median_lower": lower,
                "median_upper": upper,
            }
        )
        curves.append(curve)
        labels.append(np.full(len(curve["time"]), group, dtype=object))
    curve = pd.DataFrame(
        {"group": np.concatenate(labels)}
        | {column: np.concatenate([part[column] for part in curves]) for column in curves[0]},
        copy=False,
    )
    return KaplanMeierResult(
        time, event, by, conf_type, MEDIAN_CI_METHODS[median_ci], pd.DataFrame(summaries), curve, n_excluded
    )


# --- log-rank ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LogrankResult(Result):
    """R's ``survdiff`` (rho = 0). ``table``: ``group``, ``n``, ``observed``, ``expected``."""

    time: str
    event: str
    by: str
    statistic: float
    df: int
    p: float
    table: pd.DataFrame
    n_excluded: int


def logrank(df: pd.DataFrame, time: str, event: str, by: str, *, timefix: bool = True) -> LogrankResult:
    """Log-rank test of equal survival across the levels of ``by`` (``timefix`` as R's)."""
    data, times, events, n_excluded = _survival_data(df, time, event, [by], timefix)
    strata = _strata(data, by)
    event_times = np.unique(times[events == 1])
    at_risk = np.column_stack(
        [members.sum() - np.searchsorted(np.sort(times[members]), event_times) for _, members in strata]
    )
    deaths = np.column_stack(
        [
            np.bincount(
                np.searchsorted(event_times, times[members & (events == 1)]), minlength=len(event_times)
            )
            for _, members in strata
        ]
    )
    total_at_risk, total_deaths = at_risk.sum(axis=1), deaths.sum(axis=1)
    share = at_risk / total_at_risk[:, None]
    expected = (total_deaths[:, None] * share).sum(axis=0)
    observed = deaths.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.where(
            total_at_risk > 1, total_deaths * (total_at_risk - total_deaths) / (total_at_risk - 1), 0.0
        )
    covariance = np.einsum("t,tg,gh->gh", spread, share, np.eye(len(strata))) - np.einsum(
        "t,tg,th->gh", spread, share, share
    )
    if len(strata) < 2:
        raise AnalysisError(f"log-rank test needs at least two groups of {by!r}")
    # As survdiff: groups with no expected events drop out; with fewer than two left the statistic
    # is 0 on 0 degrees of freedom and p is 1 (an arm nobody of which was at risk at an event time).
    kept = np.flatnonzero(expected > 0)[:-1]
    difference = (observed - expected)[kept]
    statistic = (
        float(difference @ np.linalg.solve(covariance[np.ix_(kept, kept)], difference)) if len(kept) else 0.0
    )
    degrees = len(kept)
    table = pd.DataFrame(
        {
            "group": [group for group, _ in strata],
            "n": [int(members.sum()) for _, members in strata],
            "observed": observed.astype(int),
            "expected": expected,
        }
    )
    return LogrankResult(
        time,
        event,
        by,
        statistic,
        degrees,
        float(special.chdtrc(degrees, statistic)) if degrees else 1.0,  # stats.chi2.sf
        table,
        n_excluded,
    )


# --- Cox proportional hazards --------------------------------------------------------------


@dataclass(frozen=True)
class _PartialLikelihood:
    """Efron/Breslow log partial likelihood at β, with score and information per event time."""

    loglik: float
    block_score: np.ndarray  # (event times, p)
    block_information: np.ndarray  # (event times, p, p)

    @property
    def score(self) -> np.ndarray:
        return self.block_score.sum(axis=0)

    @property
    def information(self) -> np.ndarray:
        return self.block_information.sum(axis=0)


@dataclass(frozen=True)
class _CoxData:
    """Rows sorted by time, covariates centred (as coxph does), and the event-time blocks."""

    x: np.ndarray
    risk_start: np.ndarray  # first sorted row at risk at each distinct event time
    death_rows: np.ndarray  # sorted rows of the events, by time
    death_block: np.ndarray  # event-time block of each event
    death_start: np.ndarray  # first event of each block (events are sorted by block)
    efron_fraction: np.ndarray  # r/d for the r-th of d tied events (0 for Breslow)
    event_times: np.ndarray
    times: np.ndarray

    @classmethod
    def build(cls, times: np.ndarray, events: np.ndarray, x: np.ndarray, ties: Ties) -> _CoxData:
        order = np.argsort(times, kind="stable")
        times, events, x = times[order], events[order], x[order] - x.mean(axis=0)
        death_rows = np.flatnonzero(events == 1)
        event_times, death_start, death_block, tied = np.unique(
            times[death_rows], return_index=True, return_inverse=True, return_counts=True
        )
        rank_in_tie = np.arange(len(death_rows)) - death_start[death_block]
        fraction = rank_in_tie / tied[death_block] if ties == "efron" else np.zeros(len(death_rows))
        risk_start = np.searchsorted(times, event_times, side="left")
        return cls(x, risk_start, death_rows, death_block, death_start, fraction, event_times, times)

    def _at_risk_sums(self, values: np.ndarray) -> np.ndarray:
        """Σ of ``values`` over the rows at risk at each event time: the rows from one event
        time to the next are summed once, then those sums are added up from the last."""
        first = self.risk_start[0]
        between = np.add.reduceat(values[first:], self.risk_start - first, axis=0)
        return np.cumsum(between[::-1], axis=0)[::-1]

    def evaluate(self, beta: np.ndarray) -> _PartialLikelihood:
        eta = self.x @ beta
        eta -= eta.max()  # guards exp() against overflow; the partial likelihood is unchanged
        weight = np.exp(eta)
        wx = weight[:, None] * self.x
        # x xᵀ is symmetric: only its upper triangle (i ≤ j) is summed, then mirrored.
        first, second_index = np.triu_indices(self.x.shape[1])
        wxx = wx[:, first] * self.x[:, second_index]
        s0, s1, s2 = (self._at_risk_sums(a) for a in (weight, wx, wxx))
        rows, start = self.death_rows, self.death_start
        d0, d1, d2 = (np.add.reduceat(a[rows], start, axis=0) for a in (weight, wx, wxx))
        block, fraction = self.death_block, self.efron_fraction
        denominator = s0[block] - fraction * d0[block]
        mean = (s1[block] - fraction[:, None] * d1[block]) / denominator[:, None]
        second = (s2[block] - fraction[:, None] * d2[block]) / denominator[:, None]
        block_score = np.add.reduceat(self.x[rows] - mean, start, axis=0)
        triangle = np.add.reduceat(second - mean[:, first] * mean[:, second_index], start, axis=0)
        block_information = np.empty((len(start), self.x.shape[1], self.x.shape[1]))
        block_information[:, first, second_index] = triangle
        block_information[:, second_index, first] = triangle
        loglik = float(eta[rows].sum() - np.log(denominator).sum())
        return _PartialLikelihood(loglik, block_score, block_information)


def _newton_raphson(data: _CoxData, terms: Sequence[str]) -> tuple[np.ndarray, _PartialLikelihood]:
    """coxph's iteration: Newton steps from β = 0, halved while the likelihood falls."""
    beta = np.zeros(data.x.shape[1])
    current = data.evaluate(beta)
    for _ in range(COX_MAX_ITER):
        step = np.linalg.solve(current.information, current.score)
        candidate, trial = beta + step, data.evaluate(beta + step)
        for _ in range(COX_MAX_ITER):
            if trial.loglik >= current.loglik:
                break
            step /= 2
            candidate, trial = beta + step, data.evaluate(beta + step)
        converged = abs(1 - current.loglik / trial.loglik) <= COX_EPS
        beta, current = candidate, trial
        if converged:
            break
    else:
        raise AnalysisError(f"Cox model on {', '.join(terms)} did not converge")
    # coxph's warning "Loglik converged before variable …": the Newton step is still large next
    # to β. Judged one step further on, where a finite β has settled (even one close to 0) while
    # an infinite one is still on its way; β itself stays where coxph stops.
    ahead = beta + np.linalg.solve(current.information, current.score)
    further = data.evaluate(ahead)
    pending = np.abs(np.linalg.solve(further.information, further.score))
    drifting = [
        t
        for t, s, b in zip(terms, pending, ahead, strict=True)
        if s > COX_EPS and s > np.sqrt(COX_EPS) * abs(b)
    ]
    if drifting:
        raise AnalysisError(
            f"Cox coefficient(s) for {', '.join(drifting)} are infinite (monotone likelihood, "
            "e.g. no events in one group)"
        )
    return beta, current


def _km_transform(data: _CoxData) -> np.ndarray:
    """cox.zph's ``transform="km"`` at each event time: 1 − left-continuous KM, centred."""
    deaths = np.bincount(data.death_block)
    at_risk = len(data.times) - data.risk_start
    survival_before = np.concatenate([[1.0], np.cumprod(1 - deaths / at_risk)[:-1]])
    transform = 1 - survival_before
    return transform - np.average(transform, weights=deaths)


def _score_statistic(u: np.ndarray, information: np.ndarray) -> float:
    """u' I⁻¹ u; NaN where I is singular (R's cox.zph stops there: "system is exactly singular")."""
    try:
        return float(u @ np.linalg.solve(information, u))
    except np.linalg.LinAlgError:
        return float("nan")


def _proportional_hazards_test(
    data: _CoxData, fit: _PartialLikelihood, terms: Sequence[str]
) -> tuple[pd.DataFrame, str | None]:
    """cox.zph: score test for adding covariate × g(t) terms at the fitted β (γ = 0).

    Returns the table and, when a statistic cannot be computed, why (its chisq and p are NaN):
    the model stands, only the test is unavailable.
    """
    g = _km_transform(data)
    p = len(terms)
    cross = np.einsum("k,kij->ij", g, fit.block_information)
    information = np.block(
        [[fit.information, cross], [cross, np.einsum("k,kij->ij", g**2, fit.block_information)]]
    )
    score = np.concatenate([np.zeros(p), g @ fit.block_score])
    chisq = []
    for j in range(p):
        keep = [*range(p), p + j]
        chisq.append(_score_statistic(score[keep], information[np.ix_(keep, keep)]))
    chisq.append(_score_statistic(score, information))
    degrees = np.array([1] * p + [p])
    table = pd.DataFrame(
        {
            "term": [*terms, "GLOBAL"],
            "chisq": chisq,
            "df": degrees,
            "p": special.chdtrc(degrees, chisq),  # stats.chi2.sf, without its per-call overhead
        }
    )
    if not np.isnan(chisq).any():
        return table, None
    if len(data.event_times) < 2:
        why = "every event is at one time, so survival does not change between events"
    else:
        why = "its information matrix is singular"
    return table, f"proportional-hazards test not available: {why} (R's cox.zph: system is exactly singular)"


@dataclass(frozen=True, eq=False)
class CoxResult(Result):
    """A Cox model: ``table`` has ``term``, ``coef``, ``se``, ``hr``, ``lower``, ``upper``,
    ``z``, ``p`` (Wald, as ``summary(coxph)``); ``proportional_hazards`` has ``term``,
    ``chisq``, ``df``, ``p`` per term and a ``GLOBAL`` row (``cox.zph``, KM transform);
    where that test cannot be made its statistics are NaN and ``proportional_hazards_note``
    says why (the model itself stands)."""

    time: str
    event: str
    ties: Ties
    table: pd.DataFrame
    proportional_hazards: pd.DataFrame
    proportional_hazards_note: str | None
    n: int
    events: int
    n_excluded: int
    loglik: float


def cox(
    df: pd.DataFrame,
    time: str,
    event: str,
    covariates: Sequence[str],
    *,
    ties: Ties = "efron",
    timefix: bool = True,
) -> CoxResult:
    """Cox proportional-hazards model with Efron (R's default) or Breslow (SPSS's) ties.

    Covariates must be numeric (0/1 for categories). Rows missing time, event or any
    covariate are excluded and counted.
    """
    if ties not in ("efron", "breslow"):
        raise AnalysisError(f"ties must be 'efron' or 'breslow', not {ties!r}")
    data, times, events, n_excluded = _survival_data(df, time, event, covariates, timefix)
    x = design_matrix(data, covariates, intercept=False)
    prepared = _CoxData.build(times, events, x, ties)
    try:
        beta, fit = _newton_raphson(prepared, covariates)
        se = np.sqrt(np.diag(np.linalg.inv(fit.information)))
    except np.linalg.LinAlgError:
        # coxph: "X matrix deemed to be singular" and an NA coefficient; here, a refusal to report.
        raise AnalysisError(
            f"Cox model on {', '.join(covariates)}: singular information matrix (a covariate does not "
            "vary among the patients at risk at any event)"
        ) from None
    z = beta / se
    # A finite β with a standard error in the hundreds (a handful of events) has an upper limit past
    # exp(709): infinite, as R's exp() gives it, not a RuntimeWarning in the log.
    with np.errstate(over="ignore"):
        hr, lower, upper = np.exp(beta), np.exp(beta - Z_95 * se), np.exp(beta + Z_95 * se)
    table = pd.DataFrame(
        {
            "term": list(covariates),
            "coef": beta,
            "se": se,
            "hr": hr,
            "lower": lower,
            "upper": upper,
            "z": z,
            "p": 2 * special.ndtr(-np.abs(z)),  # stats.norm.sf, without its per-call overhead,
        }
    )
    ph_table, ph_note = _proportional_hazards_test(prepared, fit, covariates)
    return CoxResult(
        time=time,
        event=event,
        ties=ties,
        table=table,
        proportional_hazards=ph_table,
        proportional_hazards_note=ph_note,
        n=len(data),
        events=int(events.sum()),
        n_excluded=n_excluded,
        loglik=fit.loglik,
    )


@dataclass(frozen=True, eq=False)
class UnivariableCoxResult(Result):
    """One Cox model per covariate. ``table`` stacks their rows with each model's ``n``,
    ``events``, ``n_excluded`` and proportional-hazards ``ph_p``; ``models`` keeps them whole."""

    ties: Ties
    table: pd.DataFrame
    models: tuple[CoxResult, ...]


def univariable_cox(
    df: pd.DataFrame,
    time: str,
    event: str,
    covariates: Sequence[str],
    *,
    ties: Ties = "efron",
    timefix: bool = True,
) -> UnivariableCoxResult:
    """A separate Cox model for each covariate, each on its own complete cases (as R would)."""
    models = tuple(cox(df, time, event, [covariate], ties=ties, timefix=timefix) for covariate in covariates)
    each: dict[str, list[int] | list[float]] = {
        "n": [model.n for model in models],
        "events": [model.events for model in models],
        "n_excluded": [model.n_excluded for model in models],
        "ph_p": [float(model.proportional_hazards["p"].iloc[0]) for model in models],
    }
    table = pd.DataFrame(
        {
            column: np.concatenate([model.table[column].to_numpy() for model in models])
            for column in models[0].table
        }
        | {
            column: np.repeat(values, [len(model.table) for model in models])
            for column, values in each.items()
        }
    )
    return UnivariableCoxResult(ties, table, models)
