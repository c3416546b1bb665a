"""Cumulative incidence with a competing event (Aalen–Johansen), as R's multi-state ``survfit``.

The estimate comes from lifelines' ``AalenJohansenFitter``. Its only departure from R is how it
treats an event of interest and a competing event at the same time: it moves event times by a
random amount (a warning, and a different answer on each call). The Aalen–Johansen estimate does
not depend on the order of different events at one time (at a time with d₁ events of interest,
d₂ competing events and n at risk, the incidence rises by S(t−)·d₁/n whichever comes first), so
this module breaks such ties deterministically before fitting: the competing events at that time
move to the next representable number and the censorings to the one after, which keeps R's risk
sets (nothing else can lie between). The estimates
then equal ``survfit(Surv(time, status) ~ 1)`` with a factor status (``tests/analytics/
test_competing_risks.py`` compares them with R's stored output).

No confidence interval is given: lifelines' delta-method variance is not R's (``survfit`` uses the
infinitesimal jackknife), and a number that R would not give is not reported.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines import AalenJohansenFitter

from analytics.errors import AnalysisError
from analytics.frames import complete_cases, numeric
from analytics.results import Result

CENSORED, EVENT, COMPETING = 0, 1, 2


@dataclass(frozen=True, eq=False)
class CumulativeIncidenceResult(Result):
    """The cumulative incidence of the event and of the competing event.

    ``curve``: one row per distinct time (events of either kind and censorings): ``time``,
    ``at_risk``, ``events``, ``competing``, ``censored``, ``incidence`` (of the event),
    ``competing_incidence`` and ``event_free`` (neither yet: 1 − both). ``median`` is the first
    time the incidence reaches one half (None if it never does).
    """

    time: str
    status: str
    n: int
    events: int
    competing: int
    censored: int
    median: float | None
    curve: pd.DataFrame
    n_excluded: int

    def incidence_at(self, times: Iterable[float]) -> pd.DataFrame:
        """``time``, ``at_risk`` (still followed just before it), ``incidence``, ``competing_incidence``.

        As R's ``summary(fit, times = )``: the estimate of the last step at or before each time; times
        after the last follow-up are left out.
        """
        curve_times = self.curve["time"].to_numpy()
        rows = []
        for when in sorted(float(t) for t in times):
            if when > curve_times[-1]:
                continue
            step = int(np.searchsorted(curve_times, when, side="right")) - 1
            later = int(np.searchsorted(curve_times, when, side="left"))
            at_risk = int(self.curve["at_risk"].iloc[later])
            incidence, competing = (
                (0.0, 0.0)
                if step < 0
                else (
                    float(self.curve["incidence"].iloc[step]),
                    float(self.curve["competing_incidence"].iloc[step]),
                )
            )
            rows.append(
                {"time": when, "at_risk": at_risk, "incidence": incidence, "competing_incidence": competing}
            )
        return pd.DataFrame(rows, columns=["time", "at_risk", "incidence", "competing_incidence"])


def _untied(times: np.ndarray, status: np.ndarray) -> np.ndarray:
    """Times with competing events and censorings moved just after a tied event of interest."""
    moved = times.copy()
    tied = np.isin(times, times[status == EVENT])
    after = np.nextafter(times, np.inf)
    moved[tied & (status == COMPETING)] = after[tied & (status == COMPETING)]
    moved[tied & (status == CENSORED)] = np.nextafter(after, np.inf)[tied & (status == CENSORED)]
    return moved


def _fit(times: np.ndarray, status: np.ndarray, of_interest: int) -> pd.Series:
    fitter = AalenJohansenFitter(calculate_variance=False)
    with warnings.catch_warnings():
        # Ties are broken above; lifelines' own jitter would only run (and warn) if one were left.
        warnings.filterwarnings("error", message="Tied event times")
        fitter.fit(times, status, event_of_interest=of_interest)
    return fitter.cumulative_density_.iloc[:, 0]


def cumulative_incidence(df: pd.DataFrame, time: str, status: str) -> CumulativeIncidenceResult:
    """Aalen–Johansen cumulative incidence of ``status == 1`` with ``status == 2`` competing.

    ``status``: 0 censored, 1 the event, 2 the competing event. Rows missing either column are
    left out and counted (``n_excluded``).
    """
    data, n_excluded = complete_cases(df, [time, status])
    times = numeric(data[time], time)
    codes = numeric(data[status], status)
    if (times < 0).any():
        raise AnalysisError(f"time column {time!r} has negative values")
    unexpected = sorted(set(np.unique(codes)) - {CENSORED, EVENT, COMPETING})
    if unexpected:
        shown = ", ".join(f"{v:g}" for v in unexpected[:5])
        raise AnalysisError(
            f"column {status!r} must be 0 (censored), 1 (event) or 2 (competing); found {shown}"
        )
    codes = codes.astype(int)
    if not (codes == EVENT).any():
        raise AnalysisError(f"no events in {status!r}: the cumulative incidence is zero throughout")
    moved = _untied(times, codes)
    incidence = _fit(moved, codes, EVENT)
    competing = _fit(moved, codes, COMPETING) if (codes == COMPETING).any() else incidence * 0.0
    curve = _curve(times, codes, moved, incidence, competing)
    reached = curve.loc[curve["incidence"] >= 0.5 - 1e-12, "time"]
    return CumulativeIncidenceResult(
        time=time,
        status=status,
        n=len(times),
        events=int((codes == EVENT).sum()),
        competing=int((codes == COMPETING).sum()),
        censored=int((codes == CENSORED).sum()),
        median=float(reached.iloc[0]) if len(reached) else None,
        curve=curve,
        n_excluded=n_excluded,
    )


def _curve(
    times: np.ndarray, codes: np.ndarray, moved: np.ndarray, incidence: pd.Series, competing: pd.Series
) -> pd.DataFrame:
    """One row per original distinct time, with the estimates after every record at that time."""
    rows = []
    for when in np.unique(times):
        here = times == when
        last_moved = float(moved[here].max())
        step = int(np.searchsorted(incidence.index.to_numpy(), last_moved, side="right")) - 1
        rows.append(
            {
                "time": float(when),
                "at_risk": int((times >= when).sum()),
                "events": int((here & (codes == EVENT)).sum()),
                "competing": int((here & (codes == COMPETING)).sum()),
                "censored": int((here & (codes == CENSORED)).sum()),
                "incidence": float(incidence.iloc[step]),
                "competing_incidence": float(competing.iloc[step]),
            }
        )
    curve = pd.DataFrame(rows)
    curve["event_free"] = (1.0 - curve["incidence"] - curve["competing_incidence"]).clip(lower=0.0)
    return curve
