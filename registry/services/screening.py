"""The screening log's writes: a count in it is evidence for the study's flow diagram, so every
entry, correction and removal says why (kept in its history with who and when)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from ..models import ScreeningLogEntry
from .records import record_delete, record_save

REASON_REQUIRED = (
    "Say why this count is recorded, corrected or removed (e.g. the search or review it comes from)."
)


def _reason(reason: str) -> str:
    given = reason.strip()
    if not given:
        raise ValidationError({"change_reason": REASON_REQUIRED})
    return given


@transaction.atomic
def screening_entry_save(*, entry: ScreeningLogEntry, actor: Any, reason: str) -> ScreeningLogEntry:
    """Validate and save one count of the screening log; refused without a reason."""
    record_save(entry, actor=actor, reason=_reason(reason))
    return entry


@transaction.atomic
def screening_entry_delete(*, entry: ScreeningLogEntry, actor: Any, reason: str) -> None:
    """Remove one count of the screening log (its history keeps it); refused without a reason."""
    record_delete(entry, actor=actor, reason=_reason(reason))
