"""Planning a course from its protocol: the injection calendar and the dose each injection proposes.

Pure functions over a protocol's phases and components and over what actually happened (they never
touch the database), so the pages, the services, the demo generators and the tests share them.

Calendar. Each injection is planned a fixed number of days (its *gap*) after the previous one: within
a phase the gaps follow its cycle ("0,3" in a 7-day cycle gives 3, 4, 3, 4, …); the first injection
of a later phase comes ``gap_before_days`` after the previous phase's last. Once an injection is
given (or missed), the injections still planned after it are dated from that day, keeping the gaps,
so a late injection moves the rest of the course rather than crowding it.

Doses. A fixed component proposes its dose. An escalating component proposes its start dose first,
then the last dose actually given plus the step, never above the protocol's cap; after a step-back
trigger (grade ≥3 myelosuppression or an intolerable adverse event since the previous injection) it
proposes the previous level and never rises above it again — ``registry.dosing.EscalationRule``, the
one implementation of that rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from registry.choices import DoseTiming, IntrathecalDrug
from registry.formatting import plain

from .choices import DoseRuleKind, EndRule


class PhaseLike(Protocol):
    """What planning reads of a phase (a ``protocols.models.Phase`` or a stand-in in tests)."""

    order: int
    cycle_days: int
    end_rule: str
    injection_count: int | None
    gap_before_days: int | None

    def offsets(self) -> list[int]: ...


@dataclass(frozen=True)
class Slot:
    """One injection of the plan: its phase and the days since the previous injection (0 for the first)."""

    phase: Any
    gap_days: int


def phase_slots(phase: PhaseLike, count: int | None = None) -> Iterator[int]:
    """The day of each injection of a phase, counted from its first injection (0, 3, 7, 10, …)."""
    offsets = phase.offsets()
    total = phase.injection_count if count is None else count
    made = 0
    cycle = 0
    while total is None or made < total:
        for offset in offsets:
            if total is not None and made >= total:
                return
            yield cycle * phase.cycle_days + offset
            made += 1
        cycle += 1


def plan_slots(phases: Sequence[PhaseLike], *, open_injections: int) -> list[Slot]:
    """Every injection of a protocol in order; a phase that runs until stopped gets ``open_injections``."""
    slots: list[Slot] = []
    for phase in sorted(phases, key=lambda p: p.order):
        count = open_injections if phase.end_rule == EndRule.UNTIL_STOPPED else phase.injection_count
        previous_day = None
        for day in phase_slots(phase, count):
            if previous_day is None:
                gap = 0 if not slots else (phase.gap_before_days or 0)
            else:
                gap = day - previous_day
            slots.append(Slot(phase, gap))
            previous_day = day
    return slots


def injection_days(phases: Sequence[PhaseLike], *, before_day: int) -> list[int]:
    """Days after the first injection of every planned injection strictly before ``before_day``."""
    days: list[int] = []
    open_injections = 0
    while True:
        open_injections = max(1, open_injections * 2)
        slots = plan_slots(phases, open_injections=open_injections)
        days, day = [], 0
        for index, slot in enumerate(slots):
            day = day + slot.gap_days if index else 0
            if day >= before_day:
                return days
            days.append(day)
        if not any(p.end_rule == EndRule.UNTIL_STOPPED for p in phases):
            return days


def dated(slots: Sequence[Slot], anchor: dt.date) -> list[dt.date]:
    """Dates for ``slots`` when the injection before the first of them fell on ``anchor``.

    For the first injection of a course pass its start date and slots from the first (gap 0).
    """
    dates, day = [], anchor
    for slot in slots:
        day = day + dt.timedelta(days=slot.gap_days)
        dates.append(day)
    return dates


# --- doses -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProposedDose:
    """One drug of an injection as the protocol proposes it."""

    drug: str
    dose_mg: Decimal
    timing: str = DoseTiming.WITH
    volume_ml: Decimal | None = None
    diluent: str = ""
    optional: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.drug, self.timing)

    def label(self) -> str:
        text = f"{IntrathecalDrug(self.drug).label} {plain(self.dose_mg)} mg"
        if self.timing != DoseTiming.WITH:
            text += f" ({DoseTiming(self.timing).label.lower()})"
        return text

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"drug": self.drug, "dose_mg": plain(self.dose_mg), "timing": self.timing}
        if self.volume_ml is not None:
            data["volume_ml"] = plain(self.volume_ml)
        if self.diluent:
            data["diluent"] = self.diluent
        if self.optional:
            data["optional"] = True
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProposedDose:
        volume = data.get("volume_ml")
        return cls(
            drug=data["drug"],
            dose_mg=Decimal(str(data["dose_mg"])),
            timing=data.get("timing", DoseTiming.WITH),
            volume_ml=Decimal(str(volume)) if volume is not None else None,
            diluent=data.get("diluent", ""),
            optional=bool(data.get("optional", False)),
        )


@dataclass(frozen=True)
class PastInjection:
    """What a fulfilled injection of the course gave, and whether a step-back trigger came before it."""

    doses: Mapping[tuple[str, str], Decimal]  # (drug, timing) → mg given
    toxicity_before: bool = False


@dataclass
class _Escalation:
    previous: Decimal | None = None
    ceiling: Decimal | None = None
    pending_step_back: bool = False
    history: list[Decimal] = field(default_factory=list)


def _escalate(component, state: _Escalation, *, step_back: bool) -> Decimal:
    """The next dose of an escalating component, updating its ceiling (``EscalationRule.next_dose``)."""
    rule = component.escalation()
    wanted = (step_back or state.pending_step_back) and component.step_back_on_toxicity
    dose, state.ceiling = rule.next_dose(state.previous, ceiling_mg=state.ceiling, step_back=wanted)
    return dose


def propose_doses(
    components_by_phase: Sequence[Sequence[Any]],
    past: Sequence[PastInjection],
    *,
    toxicity_since_last: bool,
) -> list[list[ProposedDose]]:
    """The doses to propose for the injections still to come, one list per injection.

    ``components_by_phase`` holds, for each injection still to come (in order), the components of
    its phase; ``past`` the course's fulfilled injections in order. The first injection to come sees
    ``toxicity_since_last``; later ones are projections that assume no further toxicity.
    """
    states: dict[tuple[str, str], _Escalation] = {}

    def state_of(component) -> _Escalation:
        return states.setdefault((component.drug, component.timing), _Escalation())

    escalating = {
        (c.drug, c.timing): c
        for comps in components_by_phase
        for c in comps
        if c.rule == DoseRuleKind.ESCALATING
    }
    for injection in past:
        for key, component in escalating.items():
            state = state_of(component)
            given = injection.doses.get(key)
            if given is None:
                # Not given this time: a step-back trigger still applies to the next dose that is.
                state.pending_step_back = state.pending_step_back or injection.toxicity_before
                continue
            _escalate(component, state, step_back=injection.toxicity_before)
            state.previous, state.pending_step_back = given, False

    proposals = []
    for index, components in enumerate(components_by_phase):
        doses = []
        for component in components:
            if component.rule == DoseRuleKind.ESCALATING:
                state = state_of(component)
                mg = _escalate(component, state, step_back=toxicity_since_last and index == 0)
                state.previous, state.pending_step_back = mg, False
            else:
                mg = component.dose_mg
            doses.append(
                ProposedDose(
                    drug=component.drug,
                    dose_mg=mg,
                    timing=component.timing,
                    volume_ml=component.volume_ml,
                    diluent=component.diluent or "",
                    optional=component.optional,
                )
            )
        proposals.append(sorted(doses, key=_dose_order))
    return proposals


_TIMING_ORDER: dict[str, int] = {DoseTiming.BEFORE: 0, DoseTiming.WITH: 1, DoseTiming.AFTER: 2}


def _dose_order(dose: ProposedDose) -> tuple[int, str]:
    return (_TIMING_ORDER.get(dose.timing, 1), dose.drug)


def summary(doses: Sequence[ProposedDose]) -> str:
    """'Dexamethasone 2.5 mg (before the main drug), Pemetrexed 20 mg, …'."""
    return ", ".join(dose.label() for dose in doses) or "no drug"


# --- comparing what was given with the plan -------------------------------------------------------


@dataclass(frozen=True)
class GivenDose:
    drug: str
    dose_mg: Decimal
    timing: str = DoseTiming.WITH


def deviations(
    proposed: Sequence[ProposedDose],
    given: Sequence[GivenDose],
    *,
    planned_date: dt.date,
    given_date: dt.date,
    window_days: int,
) -> list[str]:
    """How an injection differed from its plan, in words (empty when it was given as planned)."""
    found = []
    shift = (given_date - planned_date).days
    if abs(shift) > window_days:
        direction = "later" if shift > 0 else "earlier"
        found.append(
            f"given {abs(shift)} days {direction} than planned ({planned_date:%Y-%m-%d}; window ±{window_days} days)"
        )
    given_by_key = {(dose.drug, dose.timing): dose for dose in given}
    for dose in proposed:
        actual = given_by_key.pop(dose.key, None)
        if actual is None:
            found.append(f"{dose.label()} left out" + (" (optional)" if dose.optional else ""))
        elif actual.dose_mg != dose.dose_mg:
            found.append(
                f"{IntrathecalDrug(dose.drug).label} {plain(actual.dose_mg)} mg instead of {plain(dose.dose_mg)} mg"
            )
    for actual in given_by_key.values():
        found.append(f"{ProposedDose(actual.drug, actual.dose_mg, actual.timing).label()} added")
    return found
