"""Courses: start one from a protocol, keep its plan current, mark an injection missed, stop it."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from registry.action_events import Action, ActionKind, emit
from registry.models import Patient
from registry.models.base import local_date
from registry.services import record_save
from registry.services.bulk import record_create_many, record_update_many

from ..choices import CourseStatus, InjectionStatus, StopReason
from ..models import Course, PlannedInjection, Protocol
from ..planning import dated, plan_slots, propose_doses
from ..selectors import CourseState
from ..thresholds import OPEN_PHASE_LOOKAHEAD


@transaction.atomic
def course_start(
    *, patient: Patient, protocol: Protocol, start_date: dt.date, actor: User, reason: str
) -> Course:
    """Start a course and plan its injections: every injection of the fixed phases, and the next
    few of a phase that runs until the course is stopped (the plan rolls on as they are given)."""
    course = record_save(
        Course(patient=patient, protocol=protocol, start_date=start_date), actor=actor, reason=reason
    )
    course_replan(course=course, actor=actor, reason=reason)
    emit(
        Action(
            kind=ActionKind.COURSE_STARTED,
            actor=actor,
            record=course,
            old_state="",
            new_state=course.status,
            reason=reason,
            detail={"protocol": str(protocol), "start_date": start_date.isoformat()},
        )
    )
    return course


def _anchor(injections: list[PlannedInjection]) -> tuple[int, dt.date] | None:
    """The last injection that happened or was missed: (its sequence, its date)."""
    for injection in reversed(injections):
        if injection.fulfilled and injection.lumbar_puncture is not None:
            return injection.sequence, local_date(injection.lumbar_puncture.performed_at)
        if injection.status == InjectionStatus.MISSED:
            return injection.sequence, injection.planned_date
    return None


@transaction.atomic
def course_replan(*, course: Course, actor: User, reason: str, state: CourseState | None = None) -> Course:
    """Bring the plan up to date with what happened: date the injections still planned from the last
    one given (or missed), refresh their proposed doses, plan ahead in an open-ended phase, and mark
    the course completed when nothing is left to give.

    ``state``: the course as already read and updated in memory by the caller (saves a second read).
    """
    if state is None:
        course = Course.objects.select_related("protocol", "patient").get(pk=course.pk)
        state = CourseState(course) if course.is_active else None
    else:
        course = state.course
    if state is None or not course.is_active:
        return course
    open_phase = next((p for p in state.phases if p.open_ended), None)
    injections, slots = _extend_plan(course, state, open_phase)
    _redate_pending(state, injections, slots, actor=actor, reason=reason)
    state.injections = injections  # the caller's snapshot now holds the plan as saved
    state.forget_proposals()
    if open_phase is None and injections and not any(i.status == InjectionStatus.PLANNED for i in injections):
        _complete(course, injections, actor=actor, reason=reason)
    return course


def _extend_plan(course: Course, state: CourseState, open_phase) -> tuple[list[PlannedInjection], list]:
    """The course's injections with new (unsaved) ones for slots not planned yet, and all the slots.

    An open-ended phase is planned ``OPEN_PHASE_LOOKAHEAD`` injections ahead of the last one given.
    """
    injections = list(state.injections)
    open_count = sum(1 for i in injections if open_phase and i.phase_id == open_phase.pk)
    if open_phase is not None:
        pending_open = sum(
            1 for i in injections if i.phase_id == open_phase.pk and i.status == InjectionStatus.PLANNED
        )
        open_count += max(0, OPEN_PHASE_LOOKAHEAD - pending_open)
    slots = plan_slots(state.phases, open_injections=open_count)
    for sequence in range(len(injections) + 1, len(slots) + 1):
        slot = slots[sequence - 1]
        injections.append(
            PlannedInjection(
                course=course, sequence=sequence, phase=slot.phase, planned_date=course.start_date
            )
        )
    return injections, slots


def _redate_pending(state: CourseState, injections, slots, *, actor: User, reason: str) -> None:
    """Date the injections still planned from the last one given (or missed) and refresh their doses;
    save only those that changed."""
    anchor = _anchor(injections)
    after = anchor[0] if anchor else 0
    pending = [i for i in injections if i.status == InjectionStatus.PLANNED and i.sequence > after]
    if not pending:
        return
    last = pending[-1].sequence
    dates = dated(slots[after:last], anchor[1] if anchor else state.course.start_date)
    by_sequence = dict(zip(range(after + 1, last + 1), dates, strict=True))
    past, _, since = state.history()
    proposals = propose_doses([state.by_phase[i.phase_id] for i in pending], past, toxicity_since_last=since)
    new: list[PlannedInjection] = []
    changed: list[PlannedInjection] = []
    for injection, doses in zip(pending, proposals, strict=True):
        planned_date = by_sequence[injection.sequence]
        proposed = [dose.to_json() for dose in doses]
        if injection.pk and injection.planned_date == planned_date and injection.proposed_doses == proposed:
            continue
        injection.planned_date, injection.proposed_doses = planned_date, proposed
        (changed if injection.pk else new).append(injection)
    # In set queries: a new course's whole plan; the rest of a plan a dose step changed.
    record_update_many(changed, ["planned_date", "proposed_doses"], actor=actor, reason=reason)
    record_create_many(new, actor=actor, reason=reason)


def _complete(course: Course, injections, *, actor: User, reason: str) -> None:
    """Nothing left to give: the course is completed on the day of its last injection."""
    last = max(
        local_date(i.lumbar_puncture.performed_at) if i.fulfilled else i.planned_date
        for i in injections
        if i.status != InjectionStatus.CANCELLED
    )
    course.status, course.ended_on = CourseStatus.COMPLETED, max(last, course.start_date)
    record_save(course, actor=actor, reason=f"Every planned injection given or accounted for ({reason})")


@transaction.atomic
def planned_injection_mark_missed(
    *, injection: PlannedInjection, deviation_reason: str, actor: User, reason: str = ""
) -> PlannedInjection:
    """An injection that was not given (with why); the rest of the course is dated from its day."""
    injection = PlannedInjection.objects.select_related("course").get(pk=injection.pk)
    if injection.status != InjectionStatus.PLANNED:
        raise ValidationError(
            {"status": f"Injection {injection.sequence} is already {injection.get_status_display().lower()}."}
        )
    if not injection.course.is_active:
        raise ValidationError({"status": "The course has ended."})
    upcoming = CourseState(injection.course).next_pending()
    if upcoming is None or upcoming.pk != injection.pk:
        raise ValidationError({"status": f"Injections are accounted for in order: {upcoming} comes first."})
    injection.status, injection.deviation_reason = InjectionStatus.MISSED, deviation_reason.strip()
    injection.deviation = "not given"
    why = reason or f"Injection {injection.sequence} missed: {deviation_reason}"
    record_save(injection, actor=actor, reason=why)
    emit(
        Action(
            kind=ActionKind.INJECTION_MISSED,
            actor=actor,
            record=injection,
            old_state=InjectionStatus.PLANNED,
            new_state=injection.status,
            reason=why,
            detail={"planned_date": injection.planned_date.isoformat(), "sequence": injection.sequence},
        )
    )
    course_replan(
        course=injection.course,
        actor=actor,
        reason=f"Re-planned after injection {injection.sequence} was missed",
    )
    return injection


@transaction.atomic
def course_stop(
    *,
    course: Course,
    ended_on: dt.date,
    stop_reason: StopReason | str,
    stop_note: str = "",
    actor: User,
    reason: str = "",
) -> Course:
    """Stop a course, saying why; the injections still planned are cancelled (not counted as missed)."""
    course = Course.objects.select_for_update().select_related("patient", "protocol").get(pk=course.pk)
    if not course.is_active:
        raise ValidationError({"status": f"This course is already {course.get_status_display().lower()}."})
    last_given = (
        course.injections.filter(lumbar_puncture__isnull=False)
        .order_by("-lumbar_puncture__performed_at")
        .values_list("lumbar_puncture__performed_at", flat=True)
        .first()
    )
    if last_given is not None and ended_on < local_date(last_given):
        raise ValidationError(
            {"ended_on": f"An injection was given on {local_date(last_given):%Y-%m-%d}, after this date."}
        )
    old = course.status
    course.status, course.ended_on = CourseStatus.STOPPED, ended_on
    course.stop_reason, course.stop_note = stop_reason, stop_note.strip()
    label = StopReason(stop_reason).label if stop_reason in StopReason.values else stop_reason
    why = reason or f"Course stopped: {label}" + (f" ({course.stop_note})" if course.stop_note else "")
    record_save(course, actor=actor, reason=why)
    cancelled = list(course.injections.filter(status=InjectionStatus.PLANNED).select_related("phase"))
    for injection in cancelled:
        injection.status = InjectionStatus.CANCELLED
        injection.deviation_reason = f"Course stopped: {label}"
    record_update_many(cancelled, ["status", "deviation_reason"], actor=actor, reason=why)
    emit(
        Action(
            kind=ActionKind.COURSE_STOPPED,
            actor=actor,
            record=course,
            old_state=old,
            new_state=course.status,
            reason=why,
            detail={"ended_on": ended_on.isoformat(), "stop_reason": str(stop_reason)},
        )
    )
    return course
