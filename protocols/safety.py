"""Safety checks run before an intrathecal injection is saved: one function, shared by the lumbar
puncture page, the services and the API.

``check_injection(patient, performed_at, doses, opening_pressure_mmh2o, course=None)`` reads what
the checks need from the registry into an ``InjectionContext`` and returns the findings of
``evaluate(context)``, a pure function (the demo generators call it on records they hold in memory).

Every finding has a code (``SafetyCheck``), a severity, a plain-language message and the form field
it concerns. A *warning* blocks the save until someone overrides it with a reason (stored as a
``SafetyOverride`` and audited); an *error* cannot be overridden (a dose above the drug's absolute
cap, which the database refuses too).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from registry.choices import CYTOPENIA_TERMS, CtcaeTerm, DoseTiming, IntrathecalDrug, SystemicTherapyCategory
from registry.dosing import dose_cap_message
from registry.formatting import plain
from registry.models import AdverseEvent, LumbarPuncture, Patient, SystemicTherapy
from registry.models.base import local_date

from .choices import SafetyCheck, Severity
from .models import Course, Formulation, PlannedInjection
from .planning import ProposedDose
from .selectors import CourseState, active_course, next_pending
from .thresholds import (
    FIRST_DOSE_LOOKBACK_DAYS,
    LOW_ICP_MMH2O,
    PLATELET_THRESHOLD_1E9_PER_L,
    SEVERE_CYTOPENIA_GRADE,
    UNIT_SLIP_FACTORS,
    UNIT_SLIP_TOLERANCE,
    VITAMIN_B12_REPEAT_DAYS,
)


@dataclass(frozen=True)
class SafetyFinding:
    code: str
    severity: str
    message: str
    field: str | None = None

    @property
    def overridable(self) -> bool:
        return self.severity == Severity.WARNING

    @property
    def title(self) -> str:
        return SafetyCheck(self.code).label

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "field": self.field,
            "overridable": self.overridable,
        }


@dataclass(frozen=True)
class DoseEntry:
    drug: str
    dose_mg: Decimal
    timing: str = DoseTiming.WITH
    formulation: Formulation | None = None


@dataclass(frozen=True)
class AdverseEventFact:
    term: str
    grade: int
    onset_date: dt.date
    lab_value: Decimal | None = None
    label: str = ""


@dataclass(frozen=True)
class TherapyFact:
    category: str
    start_date: dt.date
    end_date: dt.date | None = None


@dataclass(frozen=True)
class ComponentFact:
    drug: str
    timing: str
    cap_mg: Decimal


@dataclass(frozen=True)
class Requirement:
    category: str
    for_drug: str
    description: str
    lead_min_days: int = 0
    repeat_days: int | None = None


#: Outside a course, pemetrexed still needs both vitamins current (no lead time is known).
PEMETREXED_WITHOUT_PROTOCOL = (
    Requirement(SystemicTherapyCategory.FOLIC_ACID, IntrathecalDrug.PEMETREXED, "folic acid"),
    Requirement(
        SystemicTherapyCategory.VITAMIN_B12,
        IntrathecalDrug.PEMETREXED,
        "vitamin B12",
        repeat_days=VITAMIN_B12_REPEAT_DAYS,
    ),
)
SUPPORTIVE_CHECKS: dict[str, SafetyCheck] = {
    SystemicTherapyCategory.FOLIC_ACID: SafetyCheck.FOLIC_ACID,
    SystemicTherapyCategory.VITAMIN_B12: SafetyCheck.VITAMIN_B12,
}


@dataclass(frozen=True)
class InjectionContext:
    """Everything the checks look at for one injection (built by ``check_injection`` or by hand)."""

    performed_at: dt.datetime | None
    doses: Sequence[DoseEntry]
    opening_pressure_mmh2o: int | None = None
    protocol_label: str | None = None  # None: not part of a course
    components: Sequence[ComponentFact] = ()
    phase_label: str = ""
    min_interval_hours: int | None = None
    proposed: Sequence[ProposedDose] = ()
    previous_injection_at: dt.datetime | None = None
    adverse_events: Sequence[AdverseEventFact] = ()
    therapies: Sequence[TherapyFact] = ()
    requirements: Sequence[Requirement] = ()
    first_with: frozenset[str] = field(default_factory=frozenset)  # drugs given for the first time
    platelet_threshold_1e9_per_l: Decimal = PLATELET_THRESHOLD_1E9_PER_L

    @property
    def day(self) -> dt.date | None:
        return local_date(self.performed_at) if self.performed_at else None

    @property
    def since(self) -> dt.date | None:
        """The first day "since the last dose" covers (the lookback for a first injection)."""
        if self.previous_injection_at is not None:
            return local_date(self.previous_injection_at)
        return self.day - dt.timedelta(days=FIRST_DOSE_LOOKBACK_DAYS) if self.day else None


def _label(drug: str) -> str:
    return IntrathecalDrug(drug).label if drug in IntrathecalDrug.values else drug


def _doses_field(index: int, name: str) -> str:
    return f"doses.{index}.{name}"


# --- the checks ------------------------------------------------------------------------------------


def _caps(context: InjectionContext) -> Iterator[SafetyFinding]:
    caps: dict[str, Decimal] = {}
    for component in context.components:
        caps[component.drug] = max(caps.get(component.drug, component.cap_mg), component.cap_mg)
    for index, dose in enumerate(context.doses):
        absolute = dose_cap_message(dose.drug, dose.dose_mg)
        if absolute:
            yield SafetyFinding(
                SafetyCheck.ABSOLUTE_CAP, Severity.ERROR, absolute, _doses_field(index, "dose_mg")
            )
        elif dose.drug in caps and dose.dose_mg > caps[dose.drug]:
            yield SafetyFinding(
                SafetyCheck.PROTOCOL_CAP,
                Severity.WARNING,
                f"{_label(dose.drug)} {plain(dose.dose_mg)} mg is above the protocol's cap of "
                f"{plain(caps[dose.drug])} mg per injection ({context.protocol_label}).",
                _doses_field(index, "dose_mg"),
            )


def _unit_slip(context: InjectionContext) -> Iterator[SafetyFinding]:
    proposed: dict[tuple[str, str | None], Decimal] = {}
    for offered in context.proposed:
        proposed.setdefault((offered.drug, offered.timing), offered.dose_mg)
        proposed.setdefault((offered.drug, None), offered.dose_mg)
    for index, dose in enumerate(context.doses):
        reference = proposed.get((dose.drug, dose.timing)) or proposed.get((dose.drug, None))
        if not reference or not dose.dose_mg:
            continue
        ratio = dose.dose_mg / reference
        for factor in UNIT_SLIP_FACTORS:
            for candidate, words in (
                (Decimal(factor), f"{factor}×"),
                (1 / Decimal(factor), f"1/{factor} of"),
            ):
                if abs(ratio - candidate) <= candidate * UNIT_SLIP_TOLERANCE:
                    yield SafetyFinding(
                        SafetyCheck.UNIT_SLIP,
                        Severity.WARNING,
                        f"{_label(dose.drug)} {plain(dose.dose_mg)} mg is {words} the proposed "
                        f"{plain(reference)} mg: was it entered in µg instead of mg, or with the decimal point "
                        "in the wrong place?",
                        _doses_field(index, "dose_mg"),
                    )


def _interval(context: InjectionContext) -> Iterator[SafetyFinding]:
    if not (context.min_interval_hours and context.previous_injection_at and context.performed_at):
        return
    elapsed = context.performed_at - context.previous_injection_at
    hours = elapsed.total_seconds() / 3600
    if hours < context.min_interval_hours:
        yield SafetyFinding(
            SafetyCheck.INTERVAL,
            Severity.WARNING,
            f"Only {hours:.0f} hours since the last intrathecal injection "
            f"({local_date(context.previous_injection_at):%Y-%m-%d}); the protocol allows no less than "
            f"{context.min_interval_hours} hours in {context.phase_label or 'this phase'}.",
            "performed_at",
        )


def _covers(therapy: TherapyFact, day: dt.date, repeat_days: int | None) -> bool:
    """A regimen ongoing on ``day``, or (for a repeated one) a dose given within ``repeat_days``."""
    if therapy.start_date > day:
        return False
    if therapy.end_date is None or therapy.end_date >= day:
        return True
    return repeat_days is not None and (day - therapy.start_date).days < repeat_days


def _supportive(context: InjectionContext) -> Iterator[SafetyFinding]:
    day = context.day
    drugs = {dose.drug for dose in context.doses}
    if day is None:
        return
    for requirement in context.requirements:
        if requirement.for_drug not in drugs:
            continue
        code = SUPPORTIVE_CHECKS.get(requirement.category, SafetyCheck.SUPPORTIVE_CARE)
        records = [t for t in context.therapies if t.category == requirement.category]
        drug = _label(requirement.for_drug)
        if not records:
            message = f"{drug} needs {requirement.description}, and none is recorded (systemic therapy)."
        elif (
            requirement.for_drug in context.first_with
            and requirement.lead_min_days
            and not any((day - t.start_date).days >= requirement.lead_min_days for t in records)
        ):
            first = min(t.start_date for t in records)
            message = (
                f"{requirement.description.capitalize()} started {(day - first).days} days before this first "
                f"{drug.lower()} dose; the protocol asks for at least {requirement.lead_min_days} days."
            )
        elif not any(_covers(t, day, requirement.repeat_days) for t in records):
            message = f"No {requirement.description} is recorded as current on {day:%Y-%m-%d}."
            if requirement.repeat_days:
                message = (
                    f"No {requirement.description} is recorded within the {requirement.repeat_days} days before "
                    f"{day:%Y-%m-%d}."
                )
        else:
            continue
        yield SafetyFinding(code, Severity.WARNING, message, None)


def _blood(context: InjectionContext) -> Iterator[SafetyFinding]:
    since, day = context.since, context.day
    if since is None or day is None or not context.doses:
        return
    recent = [ae for ae in context.adverse_events if since <= ae.onset_date <= day]
    threshold = context.platelet_threshold_1e9_per_l
    low = [
        ae
        for ae in recent
        if ae.term == CtcaeTerm.PLATELET_DECREASED and ae.lab_value is not None and ae.lab_value < threshold
    ]
    if low:
        worst = min(low, key=lambda ae: ae.lab_value or threshold)  # every one of them has a value
        yield SafetyFinding(
            SafetyCheck.PLATELETS,
            Severity.WARNING,
            f"Platelets {plain(worst.lab_value)} ×10⁹/L on {worst.onset_date:%Y-%m-%d}, below the threshold of "
            f"{plain(threshold)} ×10⁹/L.",
            None,
        )
    severe = [ae for ae in recent if ae.term in CYTOPENIA_TERMS and ae.grade >= SEVERE_CYTOPENIA_GRADE]
    if severe:
        worst = max(severe, key=lambda ae: (ae.grade, ae.onset_date))
        when = (
            "since the last dose"
            if context.previous_injection_at
            else f"in the last {FIRST_DOSE_LOOKBACK_DAYS} days"
        )
        yield SafetyFinding(
            SafetyCheck.CYTOPENIA,
            Severity.WARNING,
            f"Grade {worst.grade} {CtcaeTerm(worst.term).label.lower()} {when} (onset {worst.onset_date:%Y-%m-%d}).",
            None,
        )


def _low_icp(context: InjectionContext) -> Iterator[SafetyFinding]:
    pressure = context.opening_pressure_mmh2o
    if context.doses and pressure is not None and pressure < LOW_ICP_MMH2O:
        yield SafetyFinding(
            SafetyCheck.LOW_ICP,
            Severity.WARNING,
            f"Opening pressure {pressure} mmH2O is below {LOW_ICP_MMH2O} mmH2O: low intracranial pressure.",
            "opening_pressure_mmh2o",
        )


def _drugs_and_products(context: InjectionContext) -> Iterator[SafetyFinding]:
    in_protocol = {component.drug for component in context.components}
    for index, dose in enumerate(context.doses):
        if context.protocol_label and dose.drug not in in_protocol:
            where = f" in {context.phase_label}" if context.phase_label else ""
            yield SafetyFinding(
                SafetyCheck.DRUG_NOT_IN_PROTOCOL,
                Severity.WARNING,
                f"{_label(dose.drug)} is not part of {context.protocol_label}{where}.",
                _doses_field(index, "drug"),
            )
        product = dose.formulation
        if product is not None and product.flagged:
            why = "contains a preservative" if not product.preservative_free else "is flagged"
            yield SafetyFinding(
                SafetyCheck.PRESERVATIVE,
                Severity.WARNING,
                f"{product} {why} and is not for intrathecal use; use a preservative-free product.",
                _doses_field(index, "formulation"),
            )


CHECKS = (_caps, _unit_slip, _interval, _supportive, _blood, _low_icp, _drugs_and_products)


def evaluate(context: InjectionContext) -> list[SafetyFinding]:
    """Every finding for one injection, in a stable order."""
    return [finding for check in CHECKS for finding in check(context)]


# --- reading the context from the registry ---------------------------------------------------------


def as_entries(doses: Iterable[Any], formulations: Sequence[Formulation | None] = ()) -> list[DoseEntry]:
    """Dose rows (model instances, dicts or ``DoseEntry``) as entries; ``formulations`` pairs by position."""
    entries = []
    for index, dose in enumerate(doses):
        if isinstance(dose, DoseEntry):
            entries.append(dose)
            continue
        get = (
            dose.get
            if isinstance(dose, Mapping)
            else lambda name, default=None, d=dose: getattr(d, name, default)
        )
        formulation = formulations[index] if index < len(formulations) else get("formulation")
        if formulation is not None and not isinstance(formulation, Formulation):
            formulation = Formulation.objects.filter(pk=formulation).first()
        entries.append(
            DoseEntry(
                drug=get("drug") or "",
                dose_mg=Decimal(str(get("dose_mg"))),
                timing=get("timing") or DoseTiming.WITH,
                formulation=formulation,
            )
        )
    return entries


def injection_context(
    patient: Patient,
    performed_at: dt.datetime | None,
    doses: Sequence[DoseEntry],
    opening_pressure_mmh2o: int | None,
    *,
    course: Course | None,
    planned: PlannedInjection | None,
    lumbar_puncture: LumbarPuncture | None = None,
    state=None,
) -> InjectionContext:
    """Read the course, the previous injection, recent adverse events and supportive care.

    ``state``: the course already read (``protocols.selectors.CourseState``), to avoid reading it twice.
    """

    earlier = LumbarPuncture.objects.filter(patient=patient, doses__isnull=False)
    if lumbar_puncture is not None and lumbar_puncture.pk:
        earlier = earlier.exclude(pk=lumbar_puncture.pk)
    if performed_at is not None:
        earlier = earlier.filter(performed_at__lt=performed_at)
    # One read of the earlier injections: the last one, and the drugs given since the course began.
    given = list(earlier.order_by("-performed_at").values_list("performed_at", "doses__drug"))
    previous = given[0][0] if given else None

    context: dict[str, Any] = {}
    requirements: Sequence[Requirement] = PEMETREXED_WITHOUT_PROTOCOL
    if course is not None:
        state = state if state is not None and state.course.pk == course.pk else CourseState(course)
        protocol = course.protocol
        phase = planned.phase if planned is not None else None
        components = state.by_phase[phase.pk] if phase else state.components
        requirements = [
            Requirement(r.category, r.for_drug, r.description, r.lead_min_days, r.repeat_days)
            for r in protocol.supportive_requirements.all()
        ]
        context.update(
            protocol_label=str(protocol),
            components=[ComponentFact(c.drug, c.timing, c.cap_mg) for c in components],
            phase_label=phase.name.lower() if phase else "",
            min_interval_hours=phase.min_interval_hours if phase else None,
            proposed=state.proposal_for(planned) if planned is not None else [],
            platelet_threshold_1e9_per_l=protocol.platelet_threshold_1e9_per_l,
        )

    day = local_date(performed_at) if performed_at else None
    since = (
        local_date(previous)
        if previous
        else (day - dt.timedelta(days=FIRST_DOSE_LOOKBACK_DAYS) if day else None)
    )
    events = []
    if day is not None:
        events = [
            AdverseEventFact(ae.ctcae_term, ae.grade, ae.onset_date, ae.lab_value, str(ae))
            for ae in AdverseEvent.objects.filter(
                patient=patient, onset_date__gte=since, onset_date__lte=day
            ).within_owner()
        ]
    drugs = {dose.drug for dose in doses}
    wanted = {r.category for r in requirements if r.for_drug in drugs}
    therapies = [
        TherapyFact(t.category, t.start_date, t.end_date)
        for t in SystemicTherapy.objects.filter(patient=patient, category__in=wanted).within_owner()
    ]
    course_began = course.start_date if course is not None else None
    before = {drug for when, drug in given if course_began is None or local_date(when) >= course_began}
    first_with = frozenset(drugs - before)
    return InjectionContext(
        performed_at=performed_at,
        doses=list(doses),
        opening_pressure_mmh2o=opening_pressure_mmh2o,
        previous_injection_at=previous,
        adverse_events=events,
        therapies=therapies,
        requirements=list(requirements),
        first_with=first_with,
        **context,
    )


def check_injection(
    patient: Patient,
    performed_at: dt.datetime | None,
    doses: Iterable[Any],
    opening_pressure_mmh2o: int | None,
    course: Course | None = None,
    *,
    lumbar_puncture: LumbarPuncture | None = None,
    planned: PlannedInjection | None = None,
) -> list[SafetyFinding]:
    """The safety findings for an injection about to be recorded (nothing is written).

    ``doses``: dose rows (``IntrathecalDose`` instances, dicts with drug, dose_mg, timing and an
    optional formulation, or ``DoseEntry``). ``course``: the course it belongs to; None means the
    patient's active course, if any. ``planned``: the planned injection it fulfils; None means the
    course's next one (or, for an existing ``lumbar_puncture``, the one it already fulfils).
    """

    entries = as_entries(doses)
    course = course or active_course(patient)
    if planned is None and course is not None:
        linked = (
            getattr(lumbar_puncture, "planned_injection", None)
            if lumbar_puncture and lumbar_puncture.pk
            else None
        )
        planned = linked if linked is not None and linked.course_id == course.pk else next_pending(course)
    context = injection_context(
        patient,
        performed_at,
        entries,
        opening_pressure_mmh2o,
        course=course,
        planned=planned,
        lumbar_puncture=lumbar_puncture,
    )
    return evaluate(context)
