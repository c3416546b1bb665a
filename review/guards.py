"""The review workflow's rules on every write to a case record (registered on registry's write hooks).

- Nothing changes in a locked section, whatever the route (page, admin, API, import, command).
- A change to a submitted or verified section needs a reason.
- A change to a verified section sends it back to submitted: the verification no longer holds.

The section's review row is read with SELECT ... FOR UPDATE inside the write's transaction, and the
lock service takes the same row lock, so a lock and an edit of the same section never interleave.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.core.exceptions import ValidationError
from django.db import models

from accounts.statements import Statement
from registry.models.base import RegistryRecord
from registry.services.records import attribute
from registry.write_hooks import WriteGuard

from .models import ReviewStatus, SectionReview
from .rules import schedule_check, schedule_checks
from .selectors import section_status


class RecordLockedError(ValidationError):
    """A write to a locked section."""


REASON_NEEDED = "This section has been submitted for review; give a reason for the change."


def locked_message(review: SectionReview) -> str:
    """The one wording of a refusal by a locked section: which, who signed it, when, what to do."""
    label = review.get_section_display()
    section = label[:1].lower() + label[1:]  # "lumbar punctures, CSF and …": abbreviations stay capitals
    return (
        f"{review.patient}: the {section} section is locked (signed by "
        f"{review.locked_by} on {review.locked_at:%Y-%m-%d %H:%M} UTC); ask a reviewer to unlock it first."
    )


def locked_notice(review: SectionReview) -> str:
    """The one sentence a locked section shows on its page (sentence case; the edit URLs show it too)."""
    signer = review.locked_by.get_full_name() or review.locked_by.get_username()  # type: ignore[union-attr]  # a locked review has a signer (constraint)
    return (
        f"This section is locked: signed by {signer} on {review.locked_at:%Y-%m-%d %H:%M} UTC. "
        "It is read-only until a reviewer unlocks it."
    )


#: The section's review row, locked for the write's transaction: read before every case-record write,
#: so a statement (``accounts.statements``; 13% of loading the LM demo as a queryset built per write).
#: One row (unique), ordered by its key: the model's ordering by patient would join up to the study.
_LOCKED_REVIEW = Statement(
    lambda patient_id, section: (
        SectionReview.objects.select_for_update()
        .filter(patient_id=patient_id, section=section)
        .order_by("pk")[:1]
    ),
    patient_id=int,
    section=str,
)


def _review(record) -> SectionReview | None:
    patient_id, section = record.owning_patient_id(), record.review_section
    if patient_id is None or section is None:
        return None
    found = _LOCKED_REVIEW(patient_id=patient_id, section=section)
    return found[0] if found else None


def write_problems(record) -> dict[str, str]:
    """Why saving this record now would be refused, for forms to show before they save (no row lock)."""
    patient_id, section = record.owning_patient_id(), record.review_section
    if patient_id is None or section is None:
        return {}
    review = (
        SectionReview.objects.filter(patient_id=patient_id, section=section)
        .select_related("locked_by", "patient")
        .order_by()
        .first()
    )
    if review is None:
        return {}
    if review.status == ReviewStatus.LOCKED:
        return {"__all__": locked_message(review)}
    if review.status in (ReviewStatus.SUBMITTED, ReviewStatus.VERIFIED) and not getattr(
        record, "_change_reason", ""
    ):
        return {"change_reason": REASON_NEEDED}
    return {}


def section_is_draft(patient_id: int | None, section: str | None) -> bool:
    if patient_id is None or section is None:
        return True
    return section_status(patient_id, section) == ReviewStatus.DRAFT


def record_is_locked(record) -> bool:
    """Whether the record's section is locked (for a patient: any of its sections), so it cannot change."""
    patient_id, section = record.owning_patient_id(), record.review_section
    if patient_id is None:
        return False
    locked = SectionReview.objects.filter(patient_id=patient_id, status=ReviewStatus.LOCKED)
    if record.patient_lookup != "self":
        locked = locked.filter(section=section)
    return locked.exists()


def check_record_writable(record, *, deleting: bool = False) -> None:
    review = _review(record)
    if record.patient_lookup == "self" and deleting and record.pk:
        locked = SectionReview.objects.filter(patient_id=record.pk, status=ReviewStatus.LOCKED)
        if locked.exists():
            raise RecordLockedError(
                f"{record} has locked sections and cannot be deleted; ask a reviewer to unlock them."
            )
    if review is None:
        return
    if review.status == ReviewStatus.LOCKED:
        raise RecordLockedError(locked_message(review))
    if review.status in (ReviewStatus.SUBMITTED, ReviewStatus.VERIFIED):
        reason = (getattr(record, "_change_reason", "") or "").strip()
        if not reason:
            raise ValidationError({"change_reason": REASON_NEEDED})
    record._section_review = review


def after_record_write(record) -> None:
    patient_id = record.owning_patient_id()
    if patient_id is not None:
        schedule_check(patient_id)
    review = getattr(record, "_section_review", None)
    if review is None or review.status != ReviewStatus.VERIFIED:
        return
    review.status = ReviewStatus.SUBMITTED
    review.verified_by, review.verified_at = None, None
    attribute(
        review,
        actor=getattr(record, "_history_user", None),
        reason=f"Changed after verification: {getattr(record, '_change_reason', '')}",
    )
    review.save()
    del record._section_review


def refuse_locked_sections(model: type[models.Model], objects: Sequence[RegistryRecord]) -> None:
    """One query for the whole batch: no record may land in a locked section."""
    section = getattr(model, "review_section", None)
    if section is None:
        return
    patient_ids = {pid for obj in objects if (pid := obj.owning_patient_id()) is not None}
    locked = SectionReview.objects.filter(
        patient_id__in=patient_ids, section=section, status=ReviewStatus.LOCKED
    )
    if patient_ids and locked.exists():
        raise RecordLockedError(
            f"Some records fall in locked sections ({locked.first()}); nothing was written."
        )


#: Patients per set query (SQLite takes at most 32,766 parameters in one statement).
PATIENTS_PER_QUERY = 5000


def _owners(records: Sequence[models.Model]) -> list[int | None]:
    """Each record's patient id, in order."""
    return [record.owning_patient_id() for record in records]  # type: ignore[attr-defined]


def _patient_chunks(owners: Iterable[int | None]) -> list[list[int]]:
    ids = sorted({owner for owner in owners if owner is not None})
    return [ids[start : start + PATIENTS_PER_QUERY] for start in range(0, len(ids), PATIENTS_PER_QUERY)]


def batch_write_refusals(
    model: type[models.Model], records: Sequence[models.Model]
) -> dict[int, dict[str, str]]:
    """``check_record_writable`` for a whole batch: the section reviews it touches are read (and row
    locked, as a single write does) by one query per 5,000 patients; a locked section or a missing
    reason refuses its record, by position."""
    section = getattr(model, "review_section", None)
    if section is None:
        return {}
    reviews: dict[int | None, SectionReview] = {}
    owners = _owners(records)
    for chunk in _patient_chunks(owners):
        # Locked in one order by every batch, by a column of the row (no join to order by, none to lock).
        found = (
            SectionReview.objects.select_for_update()
            .filter(patient_id__in=chunk, section=section)
            .order_by("patient_id")
        )
        reviews.update({review.patient_id: review for review in found.exclude(status=ReviewStatus.DRAFT)})
    refusals: dict[int, dict[str, str]] = {}
    for position, (record, owner) in enumerate(zip(records, owners, strict=True)):
        review = reviews.get(owner)
        if review is None:
            continue
        if review.status == ReviewStatus.LOCKED:
            refusals[position] = {"__all__": locked_message(review)}
        elif not (getattr(record, "_change_reason", "") or "").strip():
            refusals[position] = {"change_reason": REASON_NEEDED}
    return refusals


def after_batch_write(model: type[models.Model], records: Sequence[models.Model]) -> None:
    """``after_record_write`` for a batch: each patient's rules are checked at commit, and a verified
    section the batch changed goes back to submitted."""
    chunks = _patient_chunks(_owners(records))
    for chunk in chunks:
        schedule_checks(chunk)
    section = getattr(model, "review_section", None)
    if section is None or not records:
        return
    first = records[0]
    for chunk in chunks:
        verified = SectionReview.objects.filter(
            patient_id__in=chunk, section=section, status=ReviewStatus.VERIFIED
        ).order_by("pk")
        for review in verified:
            review.status = ReviewStatus.SUBMITTED
            review.verified_by, review.verified_at = None, None
            attribute(
                review,
                actor=getattr(first, "_history_user", None),
                reason=f"Changed after verification: {getattr(first, '_change_reason', '')}",
            )
            review.save()


class ReviewGuard(WriteGuard):
    """The workflow on registry's write hooks (registered in ``ReviewConfig.ready``)."""

    def check(self, record, *, deleting: bool) -> None:
        check_record_writable(record, deleting=deleting)

    def check_batch(self, model, records) -> None:
        refuse_locked_sections(model, records)

    def batch_refusals(self, model, records) -> dict[int, dict[str, str]]:
        return batch_write_refusals(model, records)

    def after_batch(self, model, records) -> None:
        after_batch_write(model, records)

    def problems(self, record) -> dict[str, str]:
        return write_problems(record)

    def after_write(self, record) -> None:
        after_record_write(record)

    def after_delete(self, patient_id: int) -> None:
        schedule_check(patient_id)

    def is_read_only(self, record) -> bool:
        return record_is_locked(record)

    def needs_reason(self, patient_id, section) -> bool:
        return not section_is_draft(patient_id, section)
