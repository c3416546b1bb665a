"""Recording an injection: the lumbar puncture unit of work, its safety checks and overrides, and the
link to the planned injection it fulfils.

``injection_record`` wraps ``registry.services.lumbar_puncture_save`` (which stays the unit of work
for an LP with its CSF and doses). Before anything is kept it runs ``protocols.safety`` on the
injection: a finding blocks the save unless it is overridden with a reason (``overrides`` maps
check codes to reasons). Accepted overrides are stored as ``SafetyOverride`` rows with the user, the
time and the reason, each with its own history row. Then the LP is linked to its planned injection,
which becomes *given* or *changed* (what differed, and why), and the rest of the plan is brought up
to date.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from accounts.models import User
from registry.action_events import Action, ActionKind, emit
from registry.models import CsfResult, IntrathecalDose, LumbarPuncture, PathogenTest
from registry.models.base import local_date
from registry.services import lumbar_puncture_save, record_delete, record_save
from registry.services.records import attribute

from ..choices import InjectionStatus, Severity
from ..models import Course, DoseFormulation, Formulation, PlannedInjection, SafetyOverride
from ..planning import GivenDose, ProposedDose, deviations
from ..safety import SafetyFinding, as_entries, evaluate, injection_context
from ..selectors import CourseState, NextInjection, active_course
from .courses import course_replan


class _Auto:
    def __repr__(self) -> str:
        return "AUTO"


#: ``planned=AUTO``: the injection the LP already fulfils, else the active course's next one.
AUTO = _Auto()


class SafetyCheckError(ValidationError):
    """An injection refused: unresolved safety findings (``findings``) and/or field errors.

    Its message dict has the field errors of the LP unit (``doses.0.dose_mg``) and one entry per
    unresolved finding under ``overrides.<check code>``; ``deviation_reason`` when a changed
    injection needs its reason.
    """

    def __init__(self, errors: dict[str, list[str]], findings: Sequence[SafetyFinding]) -> None:
        super().__init__(errors)
        self.findings = list(findings)


@dataclass(frozen=True)
class InjectionOutcome:
    """What ``injection_record`` did: the LP, the injection it fulfilled, every finding (overridden
    ones included), the overrides stored, and the course's next injection with its proposed doses."""

    lumbar_puncture: LumbarPuncture
    planned_injection: PlannedInjection | None
    findings: list[SafetyFinding] = field(default_factory=list)
    overrides: list[SafetyOverride] = field(default_factory=list)
    next: NextInjection | None = None


def _linked(lp: LumbarPuncture) -> PlannedInjection | None:
    if not lp.pk:
        return None
    return (
        PlannedInjection.objects.select_related("course").filter(lumbar_puncture=lp).order_by().first()
    )  # one-to-one


def _target(
    lp: LumbarPuncture, planned, has_doses: bool, errors: dict[str, list[str]]
) -> tuple[PlannedInjection | None, CourseState | None]:
    """The planned injection this LP fulfils (see ``AUTO``), checked to be the course's next one,
    with its course as read once for the checks and the link."""
    linked = _linked(lp)
    if planned is AUTO and not has_doses:
        return None, None  # a diagnostic LP (or one whose doses were all removed) fulfils nothing
    if planned is AUTO:
        course = linked.course if linked is not None else active_course(lp.patient_id)
    elif planned is None:
        course = None
    else:
        course = planned.course if linked is None or linked.pk != planned.pk else linked.course
    if course is None or course.patient_id != lp.patient_id:
        return None, None
    state = CourseState(course)
    if linked is not None and (planned is AUTO or planned.pk == linked.pk):
        return next(i for i in state.injections if i.pk == linked.pk), state
    expected = state.next_pending()
    if planned is not AUTO and (expected is None or expected.pk != planned.pk):
        errors.setdefault("planned_injection", []).append(
            "Record injections in order: this lumbar puncture can fulfil the course's next planned injection "
            + (f"({expected}); mark that one missed first." if expected else "only, and the course has none.")
        )
        return None, state
    return expected, state


def _unchanged(lp: LumbarPuncture, doses: Sequence[IntrathecalDose], formulations) -> bool:
    """An existing LP whose injection (time, pressure, doses, products) is as stored: not re-checked."""
    if not lp.pk:
        return False
    stored = LumbarPuncture.objects.filter(pk=lp.pk).first()
    if stored is None or (stored.performed_at, stored.opening_pressure_mmh2o) != (
        lp.performed_at,
        lp.opening_pressure_mmh2o,
    ):
        return False
    before = {
        (d.drug, d.timing, d.dose_mg, getattr(getattr(d, "formulation_record", None), "formulation_id", None))
        for d in IntrathecalDose.objects.filter(lumbar_puncture=stored).select_related("formulation_record")
    }
    after = {
        (d.drug, d.timing, d.dose_mg, f.pk if f is not None else None)
        for d, f in zip(doses, _padded(formulations, len(doses)), strict=True)
    }
    return before == after


def _padded(formulations: Sequence[Formulation | None], n: int) -> list[Formulation | None]:
    return [*formulations[:n], *([None] * (n - len(formulations)))]


@transaction.atomic
def injection_record(
    *,
    lp: LumbarPuncture,
    csf: CsfResult | None = None,
    pathogen_tests: Sequence[PathogenTest] = (),
    doses: Sequence[IntrathecalDose] = (),
    kept: Sequence[IntrathecalDose] = (),
    removed: Iterable[models.Model] = (),
    formulations: Sequence[Formulation | None] = (),
    planned=AUTO,
    deviation_reason: str = "",
    overrides: Mapping[str, str] | None = None,
    actor: User,
    reason: str,
) -> InjectionOutcome:
    """Check an LP with its CSF and doses, save them, and link them to the planned injection they fulfil.

    ``doses``: new or changed doses (saved); ``kept``: stored doses that stay (checked, not re-saved);
    ``formulations`` pairs with ``doses`` (None: not recorded); ``planned``: ``AUTO``, a
    ``PlannedInjection`` or None (not part of a course); ``overrides``: {check code: reason} for the
    findings accepted. Raises ``SafetyCheckError`` listing what is unresolved; nothing is written.
    """
    was_new = lp.pk is None
    overrides = {code: (text or "").strip() for code, text in (overrides or {}).items()}
    formulations = _padded(list(formulations), len(doses))
    given = [*doses, *kept]  # every dose of the injection once saved
    given_formulations = [*formulations, *(_stored_formulation(dose) for dose in kept)]
    errors: dict[str, list[str]] = {}
    # 1. check: the plan it fulfils, the safety checks, the deviations from the plan.
    target, state = _target(lp, planned, bool(given), errors)
    if target is not None and not given:
        errors.setdefault("planned_injection", []).append(
            "A planned injection is fulfilled by a lumbar puncture with at least one intrathecal dose."
        )
    findings = _safety_findings(lp, given, given_formulations, target, state)
    unresolved, accepted = _triage(lp, findings, overrides, errors)
    status, deviation, deviation_reason = _plan_deviation(lp, given, target, state, deviation_reason, errors)
    # 2. save: the LP with its CSF and doses (its own validation errors join the others).
    saving = {"lp": lp, "csf": csf, "pathogen_tests": pathogen_tests, "doses": doses, "removed": removed}
    _merge_errors(errors, lumbar_puncture_save, **saving, actor=actor, reason=reason)
    if errors:
        # Raising inside the transaction undoes the LP written above: all or nothing.
        raise SafetyCheckError(errors, unresolved)
    _save_formulations(doses, formulations, was_new=was_new, actor=actor, reason=reason)
    saved_overrides = _save_overrides(lp, accepted, overrides, actor)
    # 3. link: the planned injection it fulfils, and what comes next.
    linked = _link(
        lp,
        target,
        state,
        doses=given,
        proposal=_proposal(state, target),
        status=status,
        deviation=deviation,
        deviation_reason=deviation_reason.strip(),
        was_new=was_new,
        actor=actor,
        reason=reason,
    )
    return InjectionOutcome(lp, linked, findings, saved_overrides, _following(linked, state))


def _following(linked, state) -> NextInjection | None:
    """The course's next pending injection once this one is linked (None when the course ended)."""
    if linked is None or not state.course.is_active or (upcoming := state.next_pending()) is None:
        return None
    return NextInjection(upcoming, state.proposal_for(upcoming))


def _safety_findings(lp, given, given_formulations, target, state) -> list[SafetyFinding]:
    """What the safety checks say of this injection (nothing to say when its doses did not change)."""
    if not given or _unchanged(lp, given, given_formulations):
        return []
    course = state.course if state is not None else active_course(lp.patient_id)
    context = injection_context(
        lp.patient,
        lp.performed_at,
        as_entries(given, given_formulations),
        lp.opening_pressure_mmh2o,
        course=course,
        planned=target,
        lumbar_puncture=lp,
        state=state,
    )
    return evaluate(context)


def _triage(lp, findings, overrides: Mapping[str, str], errors: dict[str, list[str]]):
    """Split findings into unresolved (each an error at ``overrides.<code>``) and accepted overrides.

    A check already overridden for this LP stays accepted; an error-level finding with a field is
    left to the model, which refuses it at that field with the same message.
    """
    already = set(lp.safety_overrides.values_list("check_code", flat=True)) if lp.pk else set()
    unresolved, accepted = [], []
    for finding in findings:
        if finding.code in already:
            continue
        if finding.severity == Severity.WARNING and overrides.get(finding.code):
            accepted.append(finding)
        else:
            unresolved.append(finding)
    for finding in unresolved:
        if finding.severity == Severity.ERROR and finding.field:
            continue
        suffix = "" if finding.severity == Severity.ERROR else " Override it with a reason to save anyway."
        errors.setdefault(f"overrides.{finding.code}", []).append(finding.message + suffix)
    return unresolved, accepted


def _plan_deviation(lp, given, target, state, deviation_reason: str, errors: dict[str, list[str]]):
    """(status, deviation, reason) of the injection against its plan; a deviation needs a reason."""
    if target is None or not given or not lp.performed_at:
        return InjectionStatus.GIVEN, "", deviation_reason
    found = deviations(
        state.proposal_for(target),
        [GivenDose(d.drug, d.dose_mg, d.timing) for d in given],
        planned_date=target.planned_date,
        given_date=local_date(lp.performed_at),
        window_days=target.phase.window_days,
    )
    if not found:
        return InjectionStatus.GIVEN, "", deviation_reason
    deviation = "; ".join(found)
    deviation_reason = deviation_reason.strip() or (
        target.deviation_reason if target.lumbar_puncture_id == lp.pk else ""
    )
    if not deviation_reason:
        errors.setdefault("deviation_reason", []).append(
            f"This injection differs from the plan ({deviation}); give the reason."
        )
    return InjectionStatus.CHANGED, deviation, deviation_reason


def _merge_errors(errors: dict[str, list[str]], save, **kwargs) -> None:
    """Run a save; its validation errors join ``errors`` (each message once) instead of raising."""
    try:
        save(**kwargs)
    except ValidationError as exc:
        for key, messages in exc.message_dict.items():
            for message in messages:
                if message not in errors.setdefault(key, []):
                    errors[key].append(message)


def _save_overrides(lp, accepted, overrides: Mapping[str, str], actor: User) -> list[SafetyOverride]:
    """One override record per accepted finding: what it said, who accepted it, when, and why."""
    saved = []
    for finding in accepted:
        override = record_save(
            SafetyOverride(
                lumbar_puncture=lp,
                check_code=finding.code,
                finding=finding.message,
                reason=overrides[finding.code],
                overridden_by=actor,
                overridden_at=timezone.now(),
            ),
            actor=actor,
            reason=overrides[finding.code],
        )
        emit(
            Action(
                kind=ActionKind.SAFETY_OVERRIDDEN,
                actor=actor,
                record=override,
                old_state="blocked",
                new_state="overridden",
                reason=override.reason,
                detail={"check": finding.code, "finding": finding.message},
            )
        )
        saved.append(override)
    return saved


def _stored_formulation(dose: IntrathecalDose) -> Formulation | None:
    record = DoseFormulation.objects.filter(dose=dose).select_related("formulation").first()
    return record.formulation if record is not None else None


def _save_formulations(doses, formulations, *, was_new: bool, actor: User, reason: str) -> None:
    for dose, formulation in zip(doses, formulations, strict=True):
        if was_new:  # a new LP's doses have no product recorded yet
            if formulation is not None:
                record_save(DoseFormulation(dose=dose, formulation=formulation), actor=actor, reason=reason)
            continue
        record = DoseFormulation.objects.filter(dose=dose).first()
        if formulation is None:
            if record is not None:
                record_delete(record, actor=actor, reason=reason)
        elif record is None:
            record_save(DoseFormulation(dose=dose, formulation=formulation), actor=actor, reason=reason)
        elif record.formulation_id != formulation.pk:
            record.formulation = formulation
            record_save(record, actor=actor, reason=reason)


def _proposal(state: CourseState | None, target: PlannedInjection | None) -> list[ProposedDose]:
    """What the course proposed for the injection this LP fulfils (nothing when it fulfils none)."""
    if target is None:
        return []
    assert state is not None, "_target reads the course whenever it finds a target"
    return state.proposal_for(target)


def _link(
    lp: LumbarPuncture,
    target: PlannedInjection | None,
    state: CourseState | None,
    *,
    doses: Sequence[IntrathecalDose],
    proposal: list[ProposedDose],
    status: str,
    deviation: str,
    deviation_reason: str,
    was_new: bool,
    actor: User,
    reason: str,
) -> PlannedInjection | None:
    """Fulfil ``target`` with ``lp`` (releasing any injection it fulfilled before), then re-plan."""
    linked = None if was_new else _linked(lp)
    replan: list[tuple[Course, CourseState | None]] = []
    when = f"{local_date(lp.performed_at):%Y-%m-%d}"
    if linked is not None and (target is None or linked.pk != target.pk):
        linked.lumbar_puncture, linked.status = None, InjectionStatus.PLANNED
        linked.deviation, linked.deviation_reason = "", ""
        record_save(linked, actor=actor, reason=f"Lumbar puncture of {when} unlinked: {reason}")
        if target is None or linked.course_id != target.course_id:
            replan.append((linked.course, None))
    if target is not None:
        if target.status == InjectionStatus.PLANNED:
            target.proposed_doses = [d.to_json() for d in proposal]
        target.lumbar_puncture, target.status = lp, status
        target.deviation = deviation
        target.deviation_reason = deviation_reason if status == InjectionStatus.CHANGED else ""
        # Its course, phase and LP are in hand (the LP just saved): the model's own rules are checked
        # here, the keys and uniqueness by the database, as on the audited bulk path.
        target.full_clean(exclude=["course", "phase", "lumbar_puncture"], validate_unique=False)
        attribute(target, actor=actor, reason=reason)
        target.save()
        assert state is not None, "_target reads the course whenever it finds a target"
        if linked is None or linked.pk == target.pk:
            # The course as read before, brought up to date in memory: no second read.
            state.doses[lp.pk] = {(d.drug, d.timing): d.dose_mg for d in doses}
            state.forget_proposals()
            replan.append((state.course, state))
        else:
            replan.append((state.course, None))
    for course, course_state in replan:
        course_replan(
            course=course, state=course_state, actor=actor, reason=f"Re-planned after the injection of {when}"
        )
    return target
