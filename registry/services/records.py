"""The audited save and delete that every service ends in."""

from __future__ import annotations

from typing import TypeVar

from django.db import models, transaction

from accounts.audited import AuditedRecord
from accounts.models import User

from ..models.base import RegistryRecord


def attribute(instance: models.Model, *, actor: User | None, reason: str) -> None:
    """Tell django-simple-history who made the change and why (read when the history row is written).

    The attributes are simple-history's documented ones; any model with a history takes them."""
    setattr(instance, "_history_user", actor)  # noqa: B010  (not declared on every model with history)
    setattr(instance, "_change_reason", reason)  # noqa: B010


R = TypeVar("R", bound=AuditedRecord)


@transaction.atomic
def record_save(instance: R, *, actor: User, reason: str) -> R:
    """Validate every model rule, then save with attribution. Raises ValidationError and writes nothing."""
    instance.full_clean()
    attribute(instance, actor=actor, reason=reason)
    instance.save()
    return instance


@transaction.atomic
def record_delete(instance: RegistryRecord, *, actor: User, reason: str) -> None:
    attribute(instance, actor=actor, reason=reason)
    instance.delete()
