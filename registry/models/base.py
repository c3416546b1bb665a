"""What every case-record model shares: timestamps, history, and the date-order rules."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, router, transaction
from django.db.models import Q
from django.db.models.deletion import Collector
from django.utils import timezone

from accounts.audited import AuditedRecord

from .. import missing, write_hooks
from .constraints import UNSUPPORTED, evaluate, referenced_fields

if TYPE_CHECKING:
    from .patients import Patient


def missing_codes_field() -> models.JSONField:
    """The record's missing-data codes (registry.missing), declared last among a model's fields so
    the exchange tables show it after the values it explains."""
    return models.JSONField(
        "missing-data codes",
        default=dict,
        blank=True,
        help_text="Why an empty field is empty: field name → code (NA not applicable, UNK unknown, "
        "NASK not asked, ND not done; settings.MISSING_DATA_CODES).",
    )


class MissingCodes(models.Model):
    """A record whose optional fields may say why they are empty (its ``missing_codes`` field)."""

    missing_codes: Any

    class Meta:
        abstract = True

    def clean_fields(self, exclude=None) -> None:
        found: dict[str, Any] = {}
        try:
            super().clean_fields(exclude)
        except ValidationError as error:
            found = error.update_error_dict(found)
        for name, messages in missing.errors(self).items():
            found.setdefault(name, []).extend(messages)
        if found:
            raise ValidationError(found)


class RegistryRecord(AuditedRecord):
    """Abstract base of every case-record model (an accounts.AuditedRecord: stamps, version, history,
    and the declarations of where it belongs).

    Writes pass the guards registered on ``registry.write_hooks`` (the review workflow: nothing
    changes in a locked section, and a change to a submitted section needs a reason).
    """

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        with transaction.atomic(using=router.db_for_write(type(self), instance=self)):
            write_hooks.check(self)
            super().save(*args, **kwargs)
            write_hooks.after_write(self)

    def delete(self, *args, **kwargs):
        """Delete with the same attribution on every record the deletion cascades to."""
        if self.pk is None:
            raise ValueError(f"{type(self).__name__} cannot be deleted before it is saved.")
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using):
            write_hooks.check(self, deleting=True)
            collector = Collector(using=using, origin=self)
            collector.collect([self], keep_parents=kwargs.get("keep_parents", False))
            for instances in collector.data.values():
                for obj in instances:
                    if isinstance(obj, RegistryRecord):
                        obj._history_user = getattr(self, "_history_user", None)
                        obj._change_reason = getattr(self, "_change_reason", "")
                        write_hooks.check(obj, deleting=True)
            patient_id = self.owning_patient_id() if self.patient_lookup != "self" else None
            result = collector.delete()
            if patient_id is not None:
                write_hooks.after_delete(patient_id)
            return result

    def owning_patient_id(self) -> int | None:
        """The id of the patient this record belongs to (None for sites and studies)."""
        if self.patient_lookup is None:
            return None
        if self.patient_lookup == "self":
            return self.pk
        *hops, last = self.patient_lookup.split("__")
        target: Any = self
        for hop in hops:
            target = getattr(target, hop, None)
            if target is None:
                return None
        return getattr(target, f"{last}_id")

    def validate_constraints(self, exclude=None) -> None:
        """Unique constraints as Django does; check constraints in Python, as field-level errors."""
        exclude = set(exclude or ())
        errors: dict[str, list[ValidationError]] = {}
        for model_class, constraints in self.get_constraints():
            for constraint in constraints:
                if not isinstance(constraint, models.CheckConstraint):
                    if isinstance(constraint, models.UniqueConstraint) and exclude.intersection(
                        constraint.fields
                    ):
                        continue  # as Django's validate() does, without building its queryset first
                    self._validate_with_database(
                        constraint, model_class, exclude, errors, self._error_field(constraint)
                    )
                    continue
                condition = constraint.condition
                if not isinstance(condition, Q):  # an expression: only the database can judge it
                    self._validate_with_database(constraint, model_class, exclude, errors, None)
                    continue
                fields = referenced_fields(condition)
                if exclude.intersection(fields):
                    continue
                verdict = evaluate(condition, self)
                if verdict is UNSUPPORTED:
                    self._validate_with_database(
                        constraint, model_class, exclude, errors, fields[0] if fields else None
                    )
                elif verdict is False:
                    message = ValidationError(constraint.get_violation_error_message(), code="constraint")
                    errors.setdefault(fields[0] if fields else NON_FIELD_ERRORS, []).append(message)
        if errors:
            raise ValidationError(errors)

    def _validate_with_database(self, constraint, model_class, exclude, errors, field: str | None) -> None:
        try:
            constraint.validate(
                model_class, self, exclude=exclude, using=router.db_for_write(model_class, instance=self)
            )
        except ValidationError as exc:
            for key, messages in exc.update_error_dict({}).items():
                target = field if key == NON_FIELD_ERRORS and field else key
                errors.setdefault(target, []).extend(messages)

    def _error_field(self, constraint) -> str | None:
        """The field a person would correct when a unique constraint fails: the first one that is
        not the parent record (``study_code`` in (study, study_code)), else one its condition names."""
        own = [n for n in getattr(constraint, "fields", ()) if not self._meta.get_field(n).is_relation]
        if own:
            return own[0]
        condition = getattr(constraint, "condition", None)
        mentioned = referenced_fields(condition) if condition is not None else []
        return mentioned[0] if mentioned else None


class ComputedScoreMixin(models.Model):
    """For models whose scores or grades derive from their stored items: recomputed on every save.

    ``refresh_computed_fields()`` is also what bulk inserts call, since bulk_create skips save().
    """

    computed_fields: tuple[str, ...] = ()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        self.refresh_computed_fields()
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], *self.computed_fields}
        super().save(*args, **kwargs)

    def refresh_computed_fields(self) -> None:
        raise NotImplementedError


def local_date(value: dt.date | dt.datetime) -> dt.date:
    """The clinic's calendar date of a date or an aware date-time."""
    if isinstance(value, dt.datetime):
        return timezone.localdate(value) if timezone.is_aware(value) else value.date()
    return value


def patient_date_errors(patient: Patient, when: dt.date | dt.datetime | None, what: str) -> list[str]:
    """Why a clinical date is impossible for this patient: before birth, after death, or in the future."""
    if when is None:
        return []
    day = local_date(when)
    errors = []
    earliest = patient.earliest_possible_date
    if earliest and day < earliest:
        errors.append(f"The {what} ({day:%Y-%m-%d}) is before the patient's birth ({earliest:%Y-%m-%d}).")
    if patient.death_date and day > patient.death_date:
        errors.append(
            f"The {what} ({day:%Y-%m-%d}) is after the patient's recorded death ({patient.death_date:%Y-%m-%d})."
        )
    if day > timezone.localdate():
        errors.append(f"The {what} ({day:%Y-%m-%d}) is in the future.")
    return errors
