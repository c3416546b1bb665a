"""Reads of courses and plans that are more than a filter (the pages, the services and the API use them)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from registry.choices import CYTOPENIA_TERMS, Attribution
from registry.models import AdverseEvent, IntrathecalDose, LumbarPuncture, Patient
from registry.models.base import local_date

from .choices import FULFILLED, CourseStatus, InjectionStatus, ProtocolStatus
from .models import Component, Course, Phase, PlannedInjection, Protocol
from .planning import PastInjection, ProposedDose, propose_doses, summary
from .thresholds import SEVERE_CYTOPENIA_GRADE


def active_protocols(disease_area: str | None = None):
    protocols = Protocol.objects.filter(status=ProtocolStatus.ACTIVE).order_by("code")
    return protocols if disease_area is None else protocols.filter(disease_area=disease_area)


def active_course(patient: Patient | int) -> Course | None:
    patient_id = patient.pk if isinstance(patient, Patient) else patient
    return (
        Course.objects.filter(patient_id=patient_id, status=CourseStatus.ACTIVE)
        .select_related("protocol", "patient", "patient__study")
        .order_by()  # at most one (course_one_active_per_patient)
        .first()
    )


def next_pending(course: Course | None) -> PlannedInjection | None:
    """The course's next injection still to give (the one a new lumbar puncture fulfils)."""
    if course is None or not course.is_active:
        return None
    return (
        course.injections.filter(status=InjectionStatus.PLANNED)
        .select_related("phase")
        .order_by("sequence")
        .first()
    )


def steps_back(event: AdverseEvent) -> bool:
    """Whether an escalating dose steps back after this adverse event.

    Grade ≥3 myelosuppression (CTCAE white cells, neutrophils or platelets decreased) or any grade ≥3
    event attributed to the intrathecal therapy (the protocol's "intolerable symptoms").
    """
    return event.grade >= SEVERE_CYTOPENIA_GRADE and (
        event.ctcae_term in CYTOPENIA_TERMS or event.attribution == Attribution.INTRATHECAL_THERAPY
    )


def step_back_days(events: Iterable[AdverseEvent]) -> list[dt.date]:
    """Onset dates, in order, of the events after which an escalating dose steps back."""
    return sorted(event.onset_date for event in events if steps_back(event))


def step_back_triggers(patient_id: int) -> list[dt.date]:
    """The patient's step-back dates, reading only its severe events (the case record passes the
    events it lists to ``step_back_days`` instead)."""
    severe = AdverseEvent.objects.filter(patient_id=patient_id, grade__gte=SEVERE_CYTOPENIA_GRADE).order_by()
    return step_back_days(severe.only("onset_date", "grade", "ctcae_term", "attribution"))


def _any_between(days: Iterable[dt.date], start: dt.date | None, end: dt.date | None) -> bool:
    """Whether a day falls in [start, end) (open-ended when either is None)."""
    return any((start is None or day >= start) and (end is None or day < end) for day in days)


#: Phases and components of protocols that can no longer change (active or retired), read once per
#: process. Keyed by id and creation time, so a row id reused after a rolled-back test is not mistaken.
_FROZEN_PARTS: dict[tuple[int, dt.datetime], tuple[list[Phase], list[Component]]] = {}


def protocol_parts(protocol: Protocol) -> tuple[list[Phase], list[Component]]:
    """A protocol's phases (in order) and components; cached once the protocol is no longer a draft."""
    key = (protocol.pk, protocol.created_at)
    if key in _FROZEN_PARTS:
        return _FROZEN_PARTS[key]
    parts = (list(protocol.phases.order_by("order")), list(protocol.components.all()))
    if not protocol.is_draft:
        if len(_FROZEN_PARTS) > 256:
            _FROZEN_PARTS.clear()
        _FROZEN_PARTS[key] = parts
    return parts


class CourseState:
    """A course read once (four queries): its protocol's phases and components, its injections with
    the doses given, and the step-back triggers; the plan's computations work on this snapshot.

    A page that has read these already passes them (``PatientCourses``): then it reads nothing more.
    """

    def __init__(
        self,
        course: Course,
        *,
        injections: list[PlannedInjection] | None = None,
        doses: dict[int, dict[tuple[str, str], Decimal]] | None = None,
        triggers: list[dt.date] | None = None,
    ) -> None:
        self.course = course
        self.protocol = course.protocol
        self.phases, components = protocol_parts(self.protocol)
        self.by_phase: dict[int, list[Component]] = {
            phase.pk: [c for c in components if c.phase_id in (None, phase.pk)] for phase in self.phases
        }
        self.components = components
        phases = {phase.pk: phase for phase in self.phases}
        if injections is None:
            injections = list(course.injections.select_related("lumbar_puncture").order_by("sequence"))
        self.injections = injections
        for injection in self.injections:
            injection.phase = phases[injection.phase_id]
            injection.course = course
        if doses is None:
            lp_ids = [i.lumbar_puncture_id for i in self.injections if i.lumbar_puncture_id]
            doses = {}
            for lp_id, drug, timing, dose_mg in (
                IntrathecalDose.objects.filter(lumbar_puncture_id__in=lp_ids)
                .order_by()
                .values_list("lumbar_puncture_id", "drug", "timing", "dose_mg")
            ):
                doses.setdefault(lp_id, {})[(drug, timing)] = dose_mg
        self.doses = doses
        self.triggers = step_back_triggers(course.patient_id) if triggers is None else triggers
        self._proposals: dict[int, list[ProposedDose]] | None = None

    @property
    def pending(self) -> list[PlannedInjection]:
        return [i for i in self.injections if i.status == InjectionStatus.PLANNED]

    def next_pending(self) -> PlannedInjection | None:
        if not self.course.is_active:
            return None
        return next(iter(self.pending), None)

    def history(self) -> tuple[list[PastInjection], dt.date | None, bool]:
        """What the course gave, in order (with step-back triggers before each), the last date given,
        and whether a trigger came since then."""
        past, previous_day = [], None
        for injection in self.injections:
            if injection.status not in FULFILLED or injection.lumbar_puncture is None:
                continue
            day = local_date(injection.lumbar_puncture.performed_at)
            toxic = previous_day is not None and _any_between(self.triggers, previous_day, day)
            past.append(
                PastInjection(self.doses.get(injection.lumbar_puncture.pk, {}), toxicity_before=toxic)
            )
            previous_day = day
        since = previous_day is not None and _any_between(self.triggers, previous_day, None)
        return past, previous_day, since

    def proposals(self) -> dict[int, list[ProposedDose]]:
        """The live proposal of each injection still planned: the first follows what actually
        happened (escalation, step-back, cap); later ones are projections assuming no further toxicity."""
        if self._proposals is None:
            pending = self.pending
            past, _, since = self.history()
            proposed = propose_doses(
                [self.by_phase[i.phase_id] for i in pending], past, toxicity_since_last=since
            )
            self._proposals = {i.pk: doses for i, doses in zip(pending, proposed, strict=True)}
        return self._proposals

    def forget_proposals(self) -> None:
        """After the course changed in memory (an injection given), proposals are computed afresh."""
        self._proposals = None

    def proposal_for(self, injection: PlannedInjection) -> list[ProposedDose]:
        """The live proposal while planned; the proposal it was given against afterwards."""
        if injection.status == InjectionStatus.PLANNED and injection.pk in self.proposals():
            return self.proposals()[injection.pk]
        return [ProposedDose.from_json(d) for d in injection.proposed_doses]


def components_by_phase(protocol: Protocol) -> dict[int, list[Component]]:
    components = list(protocol.components.all())
    return {
        phase.pk: [c for c in components if c.phase_id in (None, phase.pk)] for phase in protocol.phases.all()
    }


@dataclass(frozen=True)
class NextInjection:
    """What the lumbar puncture form pre-fills: the injection a new LP fulfils and its doses."""

    injection: PlannedInjection
    doses: list[ProposedDose]

    @property
    def text(self) -> str:
        return (
            f"Injection {self.injection.sequence} ({self.injection.phase.name}), planned for "
            f"{self.injection.planned_date:%Y-%m-%d}: {summary(self.doses)}."
        )


def next_injection(patient: Patient) -> NextInjection | None:
    course = active_course(patient)
    if course is None:
        return None
    state = CourseState(course)
    injection = state.next_pending()
    if injection is None:
        return None
    return NextInjection(injection, state.proposal_for(injection))


@dataclass(frozen=True)
class CalendarRow:
    injection: PlannedInjection
    doses: list[ProposedDose]  # proposed: the live proposal while planned, the proposal when given
    given: list[IntrathecalDose]
    overdue: bool
    is_next: bool = False  # the injection a new lumbar puncture gives

    @property
    def proposed_text(self) -> str:
        return summary(self.doses)


def course_calendar(
    course: Course,
    state: CourseState | None = None,
    given: dict[int, list[IntrathecalDose]] | None = None,
) -> list[CalendarRow]:
    """Every injection of a course with its proposal, what was given, and whether it is overdue.

    ``state`` and ``given`` (doses by LP id, in timing and drug order): as already read by the page.
    """
    state = state or CourseState(course)
    if given is None:
        given = {}
        lp_ids = [i.lumbar_puncture_id for i in state.injections if i.lumbar_puncture_id]
        for dose in IntrathecalDose.objects.filter(lumbar_puncture_id__in=lp_ids).order_by("timing", "drug"):
            given.setdefault(dose.lumbar_puncture_id, []).append(dose)
    today = timezone.localdate()
    upcoming = state.next_pending()
    rows = []
    for injection in state.injections:
        doses = (
            state.proposal_for(injection)
            if course.is_active
            else [ProposedDose.from_json(d) for d in injection.proposed_doses]
        )
        overdue = (
            course.is_active
            and injection.status == InjectionStatus.PLANNED
            and injection.planned_date + dt.timedelta(days=injection.phase.window_days) < today
        )
        done = given.get(injection.lumbar_puncture_id, []) if injection.lumbar_puncture_id else []
        rows.append(
            CalendarRow(injection, doses, done, overdue, upcoming is not None and injection.pk == upcoming.pk)
        )
    return rows


def patient_courses(patient: Patient) -> list[Course]:
    return list(
        Course.objects.filter(patient=patient).select_related("protocol").order_by("-start_date", "-pk")
    )


def patient_course_calendars(
    patient: Patient,
    punctures: list[LumbarPuncture],
    adverse_events: list[AdverseEvent],
    course_count: int | None = None,
) -> list[tuple[Course, list[CalendarRow]]]:
    """Each course of the patient (newest first) with its calendar, from one read of every course's
    injections: their lumbar punctures, doses and the step-back dates come from the records the case
    record read already (``punctures`` with their doses prefetched, every ``adverse_events``).

    ``course_count`` (the patient's number of courses, read with the patient): when the injections
    name fewer courses (a course with none planned), the courses are read on their own.
    """
    injections = list(
        PlannedInjection.objects.filter(course__patient=patient)
        .select_related("course__protocol")
        .order_by("-course__start_date", "-course_id", "sequence")
    )
    courses: dict[int, Course] = {}
    by_course: dict[int, list[PlannedInjection]] = {}
    for injection in injections:
        courses.setdefault(injection.course_id, injection.course)
        by_course.setdefault(injection.course_id, []).append(injection)
    if course_count is None or len(courses) < course_count:
        courses = {course.pk: courses.get(course.pk, course) for course in patient_courses(patient)}
    lps = {lp.pk: lp for lp in punctures}
    given = {lp.pk: list(lp.doses.all()) for lp in punctures}
    doses = {lp_id: {(d.drug, d.timing): d.dose_mg for d in rows} for lp_id, rows in given.items()}
    triggers = step_back_days(adverse_events)
    calendars = []
    for course in courses.values():
        planned = by_course.get(course.pk, [])
        for injection in planned:
            if injection.lumbar_puncture_id in lps:
                injection.lumbar_puncture = lps[injection.lumbar_puncture_id]
        state = CourseState(course, injections=planned, doses=doses, triggers=triggers)
        calendars.append((course, course_calendar(course, state, given)))
    return calendars
