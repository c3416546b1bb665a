"""The audited save and delete that every service ends in."""

from __future__ import annotations

from django.db import models, transaction

from ..models.base import RegistryRecord


def attribute(instance: models.Model, *, actor, reason: str) -> None:
    """Tell django-simple-history who made the change and why (read when the history row is written)."""
    instance._history_user = actor
    instance._change_reason = reason


@transaction.atomic
def record_save(instance: RegistryRecord, *, actor, reason: str) -> RegistryRecord:
    """Validate every model rule, then save with attribution. Raises ValidationError and writes nothing."""
    instance.full_clean()
    attribute(instance, actor=actor, reason=reason)
    instance.save()
    return instance


@transaction.atomic
def record_delete(instance: RegistryRecord, *, actor, reason: str) -> None:
    attribute(instance, actor=actor, reason=reason)
    instance.delete()
