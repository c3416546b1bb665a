"""The review workflow: submit → verify → lock (e-signature) → unlock, and data clarification queries.

Each transition takes the section's review row FOR UPDATE, the same lock every write to the section
takes, so a lock and an edit never interleave. Every transition is kept in the review row's history
and written as an action event of the audit trail (registry.action_events): who, from → to, why, and
for the signed steps (lock, unlock) the signature's meaning and printed name.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone

from accounts.access import Capability, has_capability
from accounts.models import User
from registry.action_events import Action, ActionKind, emit
from registry.models import Patient
from registry.models.base import RegistryRecord
from registry.services.records import attribute

from .models import (
    DataQuery,
    ElectronicSignature,
    QueryMessage,
    QueryOrigin,
    QueryStatus,
    ReviewStatus,
    Section,
    SectionReview,
    SignatureMeaning,
)
from .query_events import query_event
from .rules import schedule_check


def _require(actor: User, capability: Capability, patient: Patient) -> None:
    if not has_capability(actor, capability, patient.site_id):
        raise PermissionDenied(f"Your role at {patient.site} does not allow you to {capability.value}.")


def _review_for_update(patient: Patient, section: str) -> SectionReview:
    if section not in Section.values:
        raise ValidationError({"section": f"Unknown section {section!r}."})
    review, _ = SectionReview.objects.select_for_update().get_or_create(patient=patient, section=section)
    return review


def _save(review: SectionReview, *, actor: User, reason: str) -> SectionReview:
    attribute(review, actor=actor, reason=reason)
    review.save()
    return review


def _section_event(
    kind: ActionKind,
    review: SectionReview,
    *,
    actor: User,
    old: str,
    reason: str = "",
    signature: ElectronicSignature | None = None,
) -> None:
    emit(
        Action(
            kind=kind,
            actor=actor,
            patient_id=review.patient_id,
            study_id=review.patient.study_id,
            section=review.section,
            object_label=f"{review.get_section_display()} section",
            old_state=old,
            new_state=review.status,
            reason=reason,
            signature_meaning=signature.get_meaning_display() if signature else "",
            signer=signature.printed_name if signature else "",
            detail={"signature": signature.pk} if signature else {},
        )
    )


def _sign(
    actor: User, password: str, *, meaning: SignatureMeaning, patient: Patient, sections, reason="", what: str
):
    """An electronic signature: the password typed again, the printed name, the time and the meaning."""
    if not password or not actor.check_password(password):
        raise ValidationError({"password": f"The password is not correct; the record was not {what}."})
    return ElectronicSignature.objects.create(
        signer=actor,
        printed_name=actor.get_full_name() or actor.get_username(),
        meaning=meaning,
        patient=patient,
        sections=list(sections),
        reason=reason,
    )


def open_queries(patient: Patient, section: str | None = None) -> models.QuerySet[DataQuery]:
    queries = DataQuery.objects.filter(patient=patient).exclude(status=QueryStatus.CLOSED)
    return queries.filter(section=section) if section else queries


@transaction.atomic
def section_submit(*, patient: Patient, section: str, actor: User) -> SectionReview:
    """Data entry hands a section over for review."""
    _require(actor, Capability.EDIT_RECORDS, patient)
    review = _review_for_update(patient, section)
    if review.status != ReviewStatus.DRAFT:
        raise ValidationError(f"The section is {review.get_status_display().lower()}, not a draft.")
    old = review.status
    review.status, review.submitted_by, review.submitted_at = ReviewStatus.SUBMITTED, actor, timezone.now()
    _save(review, actor=actor, reason="Submitted for review")
    _section_event(ActionKind.SECTION_SUBMITTED, review, actor=actor, old=old)
    # Rules that wait for the submission (e.g. "ECOG missing") look at the section now.
    schedule_check(patient.pk)
    return review


@transaction.atomic
def section_verify(*, patient: Patient, section: str, actor: User) -> SectionReview:
    """A reviewer confirms a submitted section; open queries block it."""
    _require(actor, Capability.REVIEW, patient)
    review = _review_for_update(patient, section)
    if review.status != ReviewStatus.SUBMITTED:
        raise ValidationError(
            f"Only a submitted section can be verified; this one is {review.get_status_display().lower()}."
        )
    pending = open_queries(patient, section).count()
    if pending:
        raise ValidationError(
            f"{pending} open quer{'y' if pending == 1 else 'ies'} must be closed before verification."
        )
    old = review.status
    review.status, review.verified_by, review.verified_at = ReviewStatus.VERIFIED, actor, timezone.now()
    _save(review, actor=actor, reason="Verified")
    _section_event(ActionKind.SECTION_VERIFIED, review, actor=actor, old=old)
    return review


@transaction.atomic
def patient_submit(*, patient: Patient, actor: User) -> list[str]:
    """Submit every draft section of a patient at once; returns the sections submitted."""
    submitted = []
    for section in Section.values:
        if _review_for_update(patient, section).status == ReviewStatus.DRAFT:
            section_submit(patient=patient, section=section, actor=actor)
            submitted.append(section)
    return submitted


@transaction.atomic
def patient_verify(*, patient: Patient, actor: User) -> tuple[list[str], dict[str, str]]:
    """Verify every submitted section that has no open query; returns (verified, why others were not)."""
    verified: list[str] = []
    held: dict[str, str] = {}
    for section in Section.values:
        if _review_for_update(patient, section).status != ReviewStatus.SUBMITTED:
            continue
        try:
            section_verify(patient=patient, section=section, actor=actor)
        except ValidationError as error:
            held[section] = " ".join(error.messages)
        else:
            verified.append(section)
    return verified, held


@transaction.atomic
def sections_lock(
    *, patient: Patient, sections: Iterable[str], actor: User, password: str
) -> ElectronicSignature:
    """Lock verified sections with an electronic signature: the reviewer's password, again.

    The signature records the printed name, the time (UTC) and what signing means (21 CFR 11.50).
    """
    _require(actor, Capability.REVIEW, patient)
    sections = list(dict.fromkeys(sections))
    if not sections:
        raise ValidationError("Choose at least one section to lock.")
    reviews = [_review_for_update(patient, section) for section in sections]
    not_verified = [r.get_section_display() for r in reviews if r.status != ReviewStatus.VERIFIED]
    if not_verified:
        raise ValidationError(
            f"Only verified sections can be locked: {', '.join(not_verified)} {'is' if len(not_verified) == 1 else 'are'} not."
        )
    signature = _sign(
        actor,
        password,
        meaning=SignatureMeaning.REVIEW_AND_LOCK,
        patient=patient,
        sections=sections,
        what="locked",
    )
    for review in reviews:
        old = review.status
        review.status, review.locked_by, review.locked_at = ReviewStatus.LOCKED, actor, signature.signed_at
        _save(review, actor=actor, reason=f"Locked with e-signature #{signature.pk}")
        _section_event(ActionKind.SECTION_LOCKED, review, actor=actor, old=old, signature=signature)
    return signature


@transaction.atomic
def section_unlock(
    *, patient: Patient, section: str, actor: User, reason: str, password: str
) -> ElectronicSignature:
    """Reopen a locked section for correction, signed like the lock (password again, meaning stated).

    The section goes back to submitted and needs verifying and locking again.
    """
    _require(actor, Capability.REVIEW, patient)
    if not reason.strip():
        raise ValidationError({"reason": "Unlocking needs a reason."})
    review = _review_for_update(patient, section)
    if review.status != ReviewStatus.LOCKED:
        raise ValidationError("The section is not locked.")
    signature = _sign(
        actor,
        password,
        meaning=SignatureMeaning.UNLOCK,
        patient=patient,
        sections=[section],
        reason=reason,
        what="unlocked",
    )
    old = review.status
    review.status = ReviewStatus.SUBMITTED
    review.verified_by = review.verified_at = review.locked_by = review.locked_at = None
    _save(review, actor=actor, reason=f"Unlocked with e-signature #{signature.pk}: {reason}")
    _section_event(
        ActionKind.SECTION_UNLOCKED, review, actor=actor, old=old, reason=reason, signature=signature
    )
    return signature


def _record_section(record: RegistryRecord | None, section: str | None) -> str:
    if record is not None and record.review_section:
        return record.review_section
    if section in Section.values:
        return section
    raise ValidationError({"section": "Choose the section the query is about."})


@transaction.atomic
def query_raise(
    *,
    patient: Patient,
    actor: User,
    message: str,
    record: RegistryRecord | None = None,
    field_name: str = "",
    section: str | None = None,
) -> DataQuery:
    """A reviewer asks about a field of a record (or about a section as a whole)."""
    _require(actor, Capability.REVIEW, patient)
    if not message.strip():
        raise ValidationError({"message": "Write the question."})
    if record is not None and record.owning_patient_id() != patient.pk:
        raise ValidationError({"record": "That record belongs to another patient."})
    if field_name and record is not None and field_name not in {f.name for f in record._meta.concrete_fields}:
        raise ValidationError({"field_name": f"{record._meta.verbose_name} has no field {field_name!r}."})
    query = DataQuery.objects.create(
        patient=patient,
        section=_record_section(record, section),
        content_type=ContentType.objects.get_for_model(record) if record is not None else None,
        object_id=record.pk if record is not None else None,
        field_name=field_name,
        message=message,
        raised_by=actor,
    )
    QueryMessage.objects.create(query=query, author=actor, text=message)
    query_event(ActionKind.QUERY_RAISED, query, actor=actor, old="", text=message)
    return query


@transaction.atomic
def query_answer(*, query: DataQuery, actor: User, text: str) -> DataQuery:
    """Data entry answers (after correcting the record, or explaining why it is right)."""
    _require(actor, Capability.EDIT_RECORDS, query.patient)
    if query.status == QueryStatus.CLOSED:
        raise ValidationError("The query is closed.")
    if not text.strip():
        raise ValidationError({"text": "Write the answer."})
    QueryMessage.objects.create(query=query, author=actor, text=text)
    old, query.status = query.status, QueryStatus.ANSWERED
    attribute(query, actor=actor, reason="Answered")
    query.save()
    query_event(ActionKind.QUERY_ANSWERED, query, actor=actor, old=old, text=text)
    return query


@transaction.atomic
def query_close(*, query: DataQuery, actor: User, text: str = "") -> DataQuery:
    """The reviewer accepts the answer (or the correction) and closes the query."""
    _require(actor, Capability.REVIEW, query.patient)
    if query.status == QueryStatus.CLOSED:
        raise ValidationError("The query is already closed.")
    if text.strip():
        QueryMessage.objects.create(query=query, author=actor, text=text)
    old = query.status
    query.status, query.closed_by, query.closed_at = QueryStatus.CLOSED, actor, timezone.now()
    attribute(query, actor=actor, reason="Closed")
    query.save()
    query_event(ActionKind.QUERY_CLOSED, query, actor=actor, old=old, text=text)
    return query


@transaction.atomic
def query_reopen(*, query: DataQuery, actor: User, text: str) -> DataQuery:
    """The reviewer is not satisfied with the answer (or a closed query needs another look)."""
    _require(actor, Capability.REVIEW, query.patient)
    if not text.strip():
        raise ValidationError({"text": "Say what is still unclear."})
    if query.status == QueryStatus.OPEN:
        raise ValidationError("The query is already open.")
    QueryMessage.objects.create(query=query, author=actor, text=text)
    old, query.status = query.status, QueryStatus.OPEN
    query.closed_by, query.closed_at = None, None
    attribute(query, actor=actor, reason="Reopened")
    query.save()
    query_event(ActionKind.QUERY_REOPENED, query, actor=actor, old=old, text=text)
    return query


__all__ = [
    "QueryOrigin",
    "open_queries",
    "query_answer",
    "query_close",
    "query_raise",
    "query_reopen",
    "section_submit",
    "section_unlock",
    "section_verify",
    "sections_lock",
]
