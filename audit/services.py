"""Recording security events and workflow action events (both append-only)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from registry.action_events import Action
from registry.models import Patient

from .models import ActionEvent, ActionEventPatient, SecurityEvent, SecurityEventKind


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def security_event_record(
    kind: SecurityEventKind,
    *,
    request: HttpRequest | None = None,
    user=None,
    username: str = "",
    detail: dict[str, Any] | None = None,
) -> SecurityEvent:
    if (
        user is None
        and request is not None
        and getattr(request, "user", None)
        and request.user.is_authenticated
    ):
        user = request.user
    username = username or (user.get_username() if user is not None and user.is_authenticated else "")
    detail = dict(detail or {})
    path = request.get_full_path() if request is not None else ""
    # What a client types is bounded here, and the event says so: a sign-in with a 10,000-character
    # "username" is logged with its first characters and its length, never refused with an error.
    bounded = {}
    for name, value in (("username", username), ("path", path)):
        limit = SecurityEvent._meta.get_field(name).max_length  # type: ignore[union-attr]  # a CharField
        assert limit is not None
        if len(value) > limit:
            detail[f"{name}_length"] = len(value)
        bounded[name] = value[:limit]
    return SecurityEvent.objects.create(
        kind=kind,
        user=user if user is not None and user.is_authenticated else None,
        ip_address=client_ip(request),
        detail=detail,
        **bounded,
    )


#: Patients an event covers, written per INSERT: the model objects are made a batch at a time (those
#: of a 100,000-patient export, made at once, were its peak RSS: 336 MiB, 307 MiB a batch at a time).
PATIENTS_PER_INSERT = 2000


def _covered(action: Action, study_id: int | None) -> set[int]:
    ids = set(action.patient_ids)
    codes = list(action.patient_codes)
    if codes and study_id is not None:
        ids |= set(
            Patient.objects.filter(study_id=study_id, study_code__in=codes).values_list("pk", flat=True)
        )
    return ids


def action_event_record(action: Action) -> ActionEvent:
    """Write one action event (the recorder of registry.action_events, and called by the apps above)."""
    record = action.record
    patient_id = action.patient_id
    if patient_id is None and record is not None and hasattr(record, "owning_patient_id"):
        patient_id = record.owning_patient_id()
    study_id = action.study_id
    if study_id is None and patient_id is not None:
        study_id = Patient.objects.filter(pk=patient_id).order_by().values_list("study_id", flat=True).first()
    actor = action.actor if action.actor is not None and action.actor.is_authenticated else None
    event = ActionEvent.objects.create(
        kind=action.kind,
        actor=actor,
        study_id=study_id,
        patient_id=patient_id,
        section=action.section or (getattr(record, "review_section", None) or ""),
        object_model=str(record._meta.verbose_name) if record is not None else "",
        object_id=str(record.pk) if record is not None else "",
        object_label=(action.object_label or (str(record) if record is not None else ""))[:300],
        old_state=action.old_state,
        new_state=action.new_state,
        reason=action.reason,
        signature_meaning=action.signature_meaning,
        signer=action.signer,
        detail=action.detail,
    )
    covered = sorted(_covered(action, study_id) - {patient_id})
    for start in range(0, len(covered), PATIENTS_PER_INSERT):
        ActionEventPatient.objects.bulk_create(
            [
                ActionEventPatient(event=event, patient_id=pk)
                for pk in covered[start : start + PATIENTS_PER_INSERT]
            ]
        )
    return event
