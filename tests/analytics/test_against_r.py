"""Every public statistics function against R itself, on hard cohorts that hypothesis generates.

The cohorts have the shapes real registries produce: times in whole days or in months from
calendar arithmetic (near-ties R's ``timefix`` merges), events tied with censorings, censoring
piles at an administrative date, groups of five, an arm with no events, factor covariates with
3+ levels (tied propensity scores), missing values and near-separation. All cases go to one
``Rscript`` process (tests/analytics/r/oracle.R: survival, nnet, stats, and MatchIt's matching
rule in plain R, since the Debian MatchIt build ignores its caliper on the score scale).
Tolerances: estimates 1e-4 relative, p-values 1e-3, matched pairs identical. A failure names
the seed: ``R_ORACLE_SEED=<seed>`` reproduces the run. Without R these tests skip (install
with ``apt-get install r-base-core r-cran-survival r-cran-nnet r-cran-jsonlite``); under CI
(``REGISTRY_CI=1``) a missing R fails them.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from analytics.compare import fisher_exact_test, rank_sum_test, signed_rank_test
from analytics.describe import table_one
from analytics.errors import AnalysisError
from analytics.matching import match_nearest
from analytics.regression import logistic, multinomial_logistic
from analytics.survival import cox, kaplan_meier, logrank

ORACLE = Path(__file__).parent / "r" / "oracle.R"
INSTALL_R = "apt-get install r-base-core r-cran-survival r-cran-nnet r-cran-jsonlite"
# Fixed by default so CI is repeatable; R_ORACLE_SEED=random explores (seeds 7 and 123 found the
# log-rank arm never at risk at an event time, now 0 on 0 df with p 1 as survdiff).
_SEED = os.environ.get("R_ORACLE_SEED", "1")
SEED = random.SystemRandom().randrange(2**32) if _SEED == "random" else int(_SEED)
EXAMPLES = int(os.environ.get("R_ORACLE_EXAMPLES") or 30)  # cohorts per kind; CI may raise it
ESTIMATE_RTOL, ESTIMATE_ATOL, P_ATOL = 1e-4, 1e-7, 1e-3

if shutil.which("Rscript") is None:
    if os.environ.get("REGISTRY_CI"):
        pytest.fail(f"Rscript is missing under CI; install R: {INSTALL_R}", pytrace=False)
    pytest.skip(f"R is not installed; to compare with R: {INSTALL_R}", allow_module_level=True)


# --- hard cohorts ------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """What makes a cohort hard; the values themselves come from numpy with ``seed``."""

    seed: int
    sizes: tuple[int, int]
    times: str  # "days", "months" (calendar arithmetic: near-ties) or "continuous"
    censor_pile: bool
    silent_arm: bool  # no events in the second group
    levels: int  # of the factor covariate
    missing: bool
    separation: float  # 0: none; larger: the outcome follows x more closely


def shapes(*, small: bool = True) -> st.SearchStrategy[Shape]:
    group = st.sampled_from([5, 7, 13, 40, 120]) if small else st.sampled_from([40, 120, 300])
    return st.builds(
        Shape,
        seed=st.integers(0, 2**32 - 1),
        sizes=st.tuples(group, group),
        times=st.sampled_from(["days", "months", "continuous"]),
        censor_pile=st.booleans(),
        silent_arm=st.sampled_from([False, False, False, True]),
        levels=st.sampled_from([3, 4]),
        missing=st.booleans(),
        separation=st.sampled_from([0.0, 0.0, 2.0, 8.0]),
    )


def cohort(shape: Shape) -> pd.DataFrame:
    rng = np.random.default_rng(shape.seed)
    n = sum(shape.sizes)
    g = np.repeat([0, 1], shape.sizes)
    rng.shuffle(g)
    age = rng.normal(60, 12, n).round(0)  # whole years: ties
    stage = rng.integers(0, shape.levels, n)
    male = rng.integers(0, 2, n)
    hazard = 0.002 * np.exp(0.5 * g + 0.02 * (age - 60) + 0.3 * stage)
    event_days = np.ceil(rng.exponential(1 / hazard))
    censor_days = rng.integers(20, 900, n).astype(float)
    if shape.censor_pile:
        censor_days[rng.random(n) < 0.5] = 365.0  # the administrative censoring date
    days = np.minimum(event_days, censor_days)
    event = (event_days <= censor_days).astype(int)
    if shape.silent_arm:
        event[g == 1] = 0
    if event.sum() == 0:
        event[0] = 1
    if shape.times == "months":  # the same day counts divided two ways differ in the last bit
        t = np.where(rng.random(n) < 0.5, days / 30.4375, days * (1 / 30.4375))
    elif shape.times == "continuous":
        t = days + rng.random(n)
    else:
        t = days
    frame = pd.DataFrame({"id": np.arange(1, n + 1), "t": t, "e": event, "g": g, "age": age, "male": male})
    for level in range(1, shape.levels):
        frame[f"stage_{level}"] = (stage == level).astype(int)
    signal = shape.separation * (age - 60) / 12 + 0.4 * stage
    frame["z"] = (rng.random(n) < 1 / (1 + np.exp(-(signal - 0.5)))).astype(int)  # treatment
    outcome = np.column_stack([np.zeros(n), signal, -signal + 0.5 * male])
    outcome = np.exp(outcome - outcome.max(axis=1, keepdims=True))
    frame["y"] = (
        rng.random(n)[:, None] > np.cumsum(outcome / outcome.sum(axis=1, keepdims=True), axis=1)
    ).sum(axis=1)
    if shape.missing:
        frame.loc[rng.random(n) < 0.08, "age"] = np.nan
    return frame


def collect(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """``count`` examples from hypothesis (no shrinking: R judges them all in one batch)."""
    found: list[Any] = []

    @hypothesis_seed(SEED)
    @settings(
        max_examples=count,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def gather(example: Any) -> None:
        found.append(example)

    gather()
    return found


# --- cases: the python result (or its refusal) and what R is asked ----------------------------


@dataclass
class Later:
    """A Python result not computed yet: ``judged`` computes it while R answers the requests."""

    call: Callable[[], Any]

    def result(self) -> Any:
        """The result, or the AnalysisError raised."""
        try:
            return self.call()
        except AnalysisError as exc:
            return exc


@dataclass
class Case:
    kind: str
    label: str
    request: dict[str, Any]
    python: Any  # a result, or the AnalysisError raised (a ``Later`` until ``judged`` computes it)
    check: Callable[[Any, dict[str, Any]], Iterator[str]]


def attempt(call: Callable[[], Any]) -> Later:
    return Later(call)


def columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    return {name: [None if pd.isna(v) else float(v) for v in frame[name]] for name in frame.columns}


def close(python: Any, r: Any, *, rtol: float = ESTIMATE_RTOL, atol: float = ESTIMATE_ATOL) -> bool:
    python = None if python is None or (isinstance(python, float) and math.isnan(python)) else float(python)
    r = None if r is None else float(r)
    if python is None or r is None or not math.isfinite(r) or not math.isfinite(python):
        return python == r or (python is None and r is not None and not math.isfinite(r))
    return abs(python - r) <= atol + rtol * abs(r)


def mismatches(name: str, python: Any, r: Any, **tolerance: float) -> Iterator[str]:
    if r is None:  # R's NA for a single value (an SMD of groups without variance) is JSON's null
        r = None if np.ndim(python) == 0 else []
    python, r = list(np.atleast_1d(python)), list(np.atleast_1d(r))
    if len(python) != len(r):
        yield f"{name}: {len(python)} values here, {len(r)} in R"
        return
    for index, (mine, theirs) in enumerate(zip(python, r, strict=True)):
        if not close(mine, theirs, **tolerance):
            yield f"{name}[{index}]: {mine!r} here, {theirs!r} in R"


def r_refused(r: dict[str, Any]) -> bool:
    """R errored, warned (non-convergence, infinite coefficients, fitted 0/1) or gave an NA."""
    if r.get("error") or r.get("warnings"):
        return True
    return any(value is None for value in np.atleast_1d(r.get("coef", [])))


def refusal_agrees(python: Any, r: dict[str, Any]) -> Iterator[str]:
    if isinstance(python, AnalysisError):
        if not r_refused(r):
            yield f"refused here ({python}) but R fitted it without a warning"
    elif r.get("error"):
        yield f"R failed ({r['error']}) but here it computed"


def check_km(python: Any, r: dict[str, Any]) -> Iterator[str]:
    yield from refusal_agrees(python, r)
    if isinstance(python, AnalysisError) or r.get("error"):
        return
    curve = python.curve
    yield from mismatches("time", curve["time"], r["time"])
    yield from mismatches("survival", curve["survival"], r["surv"])
    finite = np.isfinite(curve["std_err"].to_numpy()) & (curve["survival"].to_numpy() > 0)
    yield from mismatches("std_err", curve["std_err"][finite], np.asarray(r["std_err"], dtype=float)[finite])
    yield from mismatches("lower", curve["lower"], r["lower"])
    yield from mismatches("upper", curve["upper"], r["upper"])
    for column in ("median", "median_lower", "median_upper"):
        yield from mismatches(column, python.summary[column], r[column])


def check_logrank(python: Any, r: dict[str, Any]) -> Iterator[str]:
    yield from refusal_agrees(python, r)
    if isinstance(python, AnalysisError) or r.get("error"):
        return
    yield from mismatches("chisq", python.statistic, r["chisq"])
    yield from mismatches("p", python.p, r["p"], rtol=0, atol=P_ATOL)
    yield from mismatches("expected", python.table["expected"], r["expected"])


def check_cox(python: Any, r: dict[str, Any]) -> Iterator[str]:
    yield from refusal_agrees(python, r)
    if isinstance(python, AnalysisError) or r_refused(r):
        return
    yield from mismatches("coef", python.table["coef"], r["coef"])
    yield from mismatches("se", python.table["se"], r["se"])
    yield from mismatches("p", python.table["p"], r["p"], rtol=0, atol=P_ATOL)
    yield from mismatches("loglik", python.loglik, r["loglik"])
    if r.get("zph") is not None:
        yield from mismatches("cox.zph chisq", python.proportional_hazards["chisq"], r["zph"], rtol=1e-3)
    elif python.proportional_hazards_note is None:
        yield "cox.zph failed in R but a proportional-hazards test was reported here"


def check_logistic(python: Any, r: dict[str, Any]) -> Iterator[str]:
    yield from refusal_agrees(python, r)
    if isinstance(python, AnalysisError) or r_refused(r):
        return
    yield from mismatches("coef", python.table["coef"], r["coef"])
    yield from mismatches("se", python.table["se"], r["se"])


def check_multinomial(python: Any, r: dict[str, Any]) -> Iterator[str]:
    if isinstance(python, AnalysisError):
        drifting = any(abs(c) > 15 for c in r.get("coef") or [] if c is not None)
        if not (r.get("error") or drifting or not r.get("converged")):
            yield f"refused here ({python}) but R converged to finite estimates"
        return
    if r.get("error"):
        yield f"R failed: {r['error']}"
        return
    yield from mismatches("coef", python.table["coef"], r["coef"], rtol=1e-4, atol=1e-5)


def check_match(python: Any, r: dict[str, Any]) -> Iterator[str]:
    yield from refusal_agrees(python, r)
    if isinstance(python, AnalysisError) or r_refused(r):
        return
    mine = sorted(map(tuple, python.pairs[["treated", "control"]].to_numpy().astype(int).tolist()))
    theirs = sorted(zip(map(int, r["treated"] or []), map(int, r["control"] or []), strict=True))
    if mine != theirs:
        differing = sorted(set(mine) ^ set(theirs))[:6]
        yield f"pairs differ: {len(mine)} here, {len(theirs)} in R; e.g. {differing}"
    yield from mismatches("ps", python.propensity["ps"], r["ps"], rtol=1e-6)


def check_table_one(python: Any, r: dict[str, Any]) -> Iterator[str]:
    yield from refusal_agrees(python, r)
    if isinstance(python, AnalysisError) or r.get("error"):
        return
    rows = python.table.groupby("variable", sort=False).first()
    for name, expected in r.items():
        if name == "warnings":
            continue
        row = rows.loc[name]
        yield from mismatches(f"{name} p", row["p"], expected["p"], rtol=0, atol=P_ATOL)
        if "q0" in expected:
            suffixes = [c.removeprefix("median_") for c in rows.columns if c.startswith("median_")]
            for suffix, quartiles in zip(suffixes, (expected["q0"], expected["q1"]), strict=True):
                mine = [row[f"q1_{suffix}"], row[f"median_{suffix}"], row[f"q3_{suffix}"]]
                yield from mismatches(f"{name} quartiles", mine, quartiles)
            yield from mismatches(f"{name} smd", row["smd"], expected["smd"])


def check_p(name: str) -> Callable[[Any, dict[str, Any]], Iterator[str]]:
    def check(python: Any, r: dict[str, Any]) -> Iterator[str]:
        yield from refusal_agrees(python, r)
        if not isinstance(python, AnalysisError) and not r.get("error"):
            yield from mismatches(name, python, r[name], rtol=0, atol=P_ATOL)

    return check


def survival_cases(shape: Shape) -> Iterator[Case]:
    frame = cohort(shape)
    data = columns(frame)
    covariates = ["g", "age", "male", *(c for c in frame.columns if c.startswith("stage_"))]
    label = f"{shape}"
    timefix_options = (True, False) if shape.times == "months" else (True,)
    for timefix in timefix_options:
        yield Case(
            "km",
            label,
            {"kind": "km", "data": data, "timefix": timefix},
            attempt(lambda timefix=timefix: kaplan_meier(frame, "t", "e", by="g", timefix=timefix)),
            check_km,
        )
    yield Case(
        "logrank",
        label,
        {"kind": "logrank", "data": data},  # R's survdiff: timefix = TRUE only (oracle.R says why)
        attempt(lambda: logrank(frame, "t", "e", "g")),
        check_logrank,
    )
    for ties, used in (("efron", covariates), ("breslow", ["g", "male"])):
        yield Case(
            "cox",
            label,
            {"kind": "cox", "data": data, "covariates": used, "ties": ties, "timefix": True},
            attempt(lambda ties=ties, used=used: cox(frame, "t", "e", used, ties=ties)),
            check_cox,
        )


def model_cases(shape: Shape) -> Iterator[Case]:
    frame = cohort(shape)
    data = columns(frame)
    stages = [c for c in frame.columns if c.startswith("stage_")]
    label = f"{shape}"
    yield Case(
        "logistic",
        label,
        {"kind": "logistic", "data": columns(frame.assign(y=frame["z"])), "covariates": ["age", *stages]},
        attempt(lambda: logistic(frame.assign(y=frame["z"]), "y", ["age", *stages])),
        check_logistic,
    )
    yield Case(
        "multinomial",
        label,
        {"kind": "multinomial", "data": data, "covariates": ["age", "male", *stages]},
        attempt(lambda: multinomial_logistic(frame, "y", ["age", "male", *stages], reference=0)),
        check_multinomial,
    )
    # Discrete covariates only half the time: tied propensity scores are the hard case.
    used = stages + ["male"] if shape.missing else ["age", *stages]
    for scale, ratio, caliper in (("ps", 1, 0.2), ("logit", 1, 0.2), ("ps", 2, None), ("logit", 2, 0.2)):
        matched = attempt(  # now: R is asked to match on the same distances
            lambda s=scale, r=ratio, c=caliper: match_nearest(frame, "z", used, scale=s, ratio=r, caliper=c)
        ).result()
        request = {"kind": "match", "data": data, "covariates": used, "ratio": ratio, "caliper": caliper}
        if not isinstance(matched, AnalysisError):  # R matches on the same distances (oracle.R says why)
            request["distance"] = matched.propensity[scale].tolist()
        yield Case("match", label, request, matched, check_match)


def table_one_cases(shape: Shape) -> Iterator[Case]:
    frame = cohort(shape)
    frame["stage"] = frame.filter(like="stage_").to_numpy() @ np.arange(1, shape.levels)
    continuous, categorical, exact = ["age", "t"], ["male"], ["stage"]
    yield Case(
        "table_one",
        f"{shape}",
        {
            "kind": "table_one",
            "data": columns(frame),
            "continuous": continuous,
            "categorical": categorical,
            "exact": exact,
        },
        attempt(lambda: table_one(frame, "g", continuous=continuous, categorical=categorical, exact=exact)),
        check_table_one,
    )


@st.composite
def two_by_k(draw: st.DrawFn) -> np.ndarray:
    k = draw(st.integers(2, 5))
    # Large n only with few columns: R's FEXACT takes minutes on a 2×5 table of 2,000.
    n = draw(st.sampled_from([6, 20, 80, 300, 2000, 20_000] if k <= 3 else [6, 20, 80, 300]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.multinomial(n, rng.dirichlet(np.ones(2 * k))).reshape(k, 2)


@st.composite
def r_by_c(draw: st.DrawFn) -> np.ndarray:
    """3–5 rows by 3–5 columns; R's FEXACT at its default workspace answers most of these up to
    n = 120 and stops on many of 250 (which this library may answer or refuse)."""
    rows, columns = draw(st.integers(3, 5)), draw(st.integers(3, 5))
    n = draw(st.sampled_from([6, 20, 60, 120, 250]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    concentration = draw(st.sampled_from([0.3, 1.0, 5.0]))  # small: sparse tables, extreme p
    return rng.multinomial(n, rng.dirichlet(np.full(rows * columns, concentration))).reshape(rows, columns)


def check_fisher_r_by_c(python: Any, r: dict[str, Any]) -> Iterator[str]:
    """Where R answers at its default workspace, the same p (relative 1e-6); where R stops
    (FEXACT's workspace errors), either an answer or a refusal naming simulate_p_value."""
    if r.get("error"):
        if isinstance(python, AnalysisError) and "simulate_p_value" not in str(python):
            yield f"refused without naming simulate_p_value: {python}"
        return
    if isinstance(python, AnalysisError):
        yield f"refused here ({python}) but R answered p = {r['p']}"
        return
    yield from mismatches("p", python, r["p"], rtol=1e-6, atol=1e-9)


def fisher_cases(table: np.ndarray) -> Iterator[Case]:
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        return
    r_by_c_table = min(table.shape) >= 3
    yield Case(
        "fisher",
        f"{table.tolist()}",
        # r×c: R's default workspace, whose failures are the point; 2×k: as much as it needs.
        {"kind": "fisher", "table": table.tolist(), "default_workspace": r_by_c_table},
        attempt(lambda: fisher_exact_test(table).p),
        check_fisher_r_by_c if r_by_c_table else check_p("p"),
    )


@st.composite
def samples(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sizes = draw(st.tuples(st.sampled_from([3, 8, 20, 49, 60]), st.sampled_from([3, 8, 20, 49, 60])))
    rounding = draw(st.sampled_from([0, 1, 3]))  # 0 decimals: many ties
    return [rng.normal(0, 2, size).round(rounding).tolist() for size in sizes]  # type: ignore[return-value]


def wilcoxon_cases(pair: tuple[list[float], list[float]]) -> Iterator[Case]:
    x, y = pair
    paired = min(len(x), len(y))
    d = (np.asarray(x[:paired]) - np.asarray(y[:paired])).tolist()
    request = {"kind": "wilcoxon", "x": x, "y": y, "d": d}
    yield Case("wilcoxon", f"{pair}", request, attempt(lambda: rank_sum_test(x, y).p), check_p("rank_sum"))
    if any(d):
        yield Case(
            "signed_rank", f"{pair}", request, attempt(lambda: signed_rank_test(d).p), check_p("signed_rank")
        )


# --- one R run for everything ----------------------------------------------------------------


@pytest.fixture(scope="module")
def judged() -> dict[str, list[tuple[Case, dict[str, Any]]]]:
    cases: list[Case] = []
    for shape in collect(shapes(), EXAMPLES):
        cases += survival_cases(shape)
        cases += table_one_cases(shape)
    for shape in collect(shapes(small=False), EXAMPLES // 2):
        cases += model_cases(shape)
    for table in collect(two_by_k(), EXAMPLES):
        cases += fisher_cases(table)
    for table in collect(r_by_c(), EXAMPLES // 2):  # half: the tables R cannot do take time here
        cases += fisher_cases(table)
    for pair in collect(samples(), EXAMPLES):
        cases += wilcoxon_cases(pair)
    # R answers on one core while Python computes its own results on the other (in turn, the batch
    # took 42 s of wall at CI's 200 examples: 17 s of Python, then 19 s of R).
    oracle = subprocess.Popen(
        ["Rscript", "--vanilla", str(ORACLE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    replied: dict[str, str] = {}
    payload = json.dumps([case.request for case in cases])
    talk = threading.Thread(
        target=lambda: replied.update(zip(("out", "err"), oracle.communicate(payload), strict=True))
    )
    talk.start()
    for case in cases:
        if isinstance(case.python, Later):
            case.python = case.python.result()
    talk.join()
    assert oracle.returncode == 0, f"Rscript failed (R_ORACLE_SEED={SEED}):\n{replied['err'][-3000:]}"
    answers = json.loads(replied["out"])
    by_kind: dict[str, list[tuple[Case, dict[str, Any]]]] = {}
    for case, answer in zip(cases, answers, strict=True):
        by_kind.setdefault(case.kind, []).append((case, answer))
    return by_kind


@pytest.mark.parametrize(
    "kind", ["km", "logrank", "cox", "logistic", "multinomial", "match", "table_one", "fisher", "wilcoxon"]
)
def test_agrees_with_r(judged: dict[str, list[tuple[Case, dict[str, Any]]]], kind: str) -> None:
    pairs = judged.get(kind, []) + (judged.get("signed_rank", []) if kind == "wilcoxon" else [])
    assert pairs, f"no {kind} cases were generated"
    failures = []
    for case, answer in pairs:
        found = list(case.check(case.python, answer))
        if found:
            failures.append(f"{case.label}: " + "; ".join(found[:4]))
    assert not failures, (
        f"{len(failures)} of {len(pairs)} {kind} cases differ from R (rerun with R_ORACLE_SEED={SEED}):\n"
        + "\n".join(failures[:8])
    )
