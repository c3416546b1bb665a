"""The audited bulk path: validate every object, insert in batches, write one history row per object.

Used where saving one by one is too slow (the demo generator at 100,000 patients, imports). It runs
the same field validators and ``clean()`` rules as ``record_save``; it skips only the per-object
existence query of foreign keys (the parents were just created in the same transaction) and leaves
uniqueness and check constraints to the database, which enforces them on insert.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from concurrency.exceptions import RecordModifiedError
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import F
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from accounts.audited import audited_bulk_write
from accounts.models import User

from .. import write_hooks
from ..models.base import ComputedScoreMixin
from .copy_in import copy_history, copy_insert
from .records import attribute


def _foreign_key_names(model: type[models.Model]) -> list[str]:
    return [f.name for f in model._meta.concrete_fields if isinstance(f, models.ForeignKey)]


@transaction.atomic
def bulk_record_create(
    objects: Sequence[models.Model],
    *,
    actor: User,
    reason: str,
    batch_size: int = 2000,
    validated: bool = False,
) -> list[models.Model]:
    """Validate and insert objects of one model with their history; all or nothing.

    Raises ValidationError naming the first invalid object (by its position) and its fields.
    ``validated``: the caller has run these same checks on every object and reported each row's
    errors itself (the set-based importer), so they are not run twice; the write hooks'
    ``before_batch`` runs either way.
    """
    if not objects:
        return []
    model = type(objects[0])
    for obj in objects:
        if type(obj) is not model:
            raise TypeError(f"bulk_record_create takes one model at a time; got {type(obj).__name__}")
        # Parent objects saved earlier in the transaction: copy their new keys onto the child.
        obj._prepare_related_fields_for_save(operation_name="bulk_record_create")  # type: ignore[attr-defined]
    if not validated:
        _validate(model, objects)
        write_hooks.check_batch(model, objects)  # a validating caller asked ``batch_refusals`` per row
    # Either way (an import of new patients once left the study's reports cached): the report
    # tokens the records feed are replaced.
    write_hooks.before_batch(model, objects)
    with audited_bulk_write():
        if connection.vendor != "postgresql":
            return bulk_create_with_history(
                list(objects), model, batch_size=batch_size, default_user=actor, default_change_reason=reason
            )
        # New records and their history rows go in by COPY; records that bring their own keys by INSERT.
        created = list(objects)
        cells = None
        if any(obj.pk is not None for obj in created):
            created = model._default_manager.bulk_create(created, batch_size=batch_size)
        else:
            cells = copy_insert(model, created)
        copy_history(model, created, actor=actor, reason=reason, cells=cells)
        return created


@transaction.atomic
def record_create_many(
    objects: Sequence[models.Model], *, actor: User, reason: str, validated: bool = False
) -> list[models.Model]:
    """``record_save`` for several new records of one model, in set queries: the same field rules,
    ``clean()`` and check constraints, the same write hooks (the review workflow's refusals under
    the same row locks, then its after-write rules for the set), one history row each with the
    actor and the reason. Uniqueness is left to the database, as in ``bulk_record_create`` (a
    service creating rows it numbered itself). Starting an LM course saved its ~10 planned
    injections one by one: ~10 queries each.

    ``validated``: the caller ran each object's ``full_clean()`` and reported its errors itself (an
    LP's new doses, checked with the LP); the write hooks still refuse.

    Raises ValidationError naming the first refused or invalid object by its position.
    """
    if not objects:
        return []
    model = type(objects[0])
    for obj in objects:
        attribute(obj, actor=actor, reason=reason)  # the hooks read who and why, as on a save
    _refuse(model, objects)
    if not validated:
        _validate(model, objects, constraints=True)
    created = bulk_record_create(objects, actor=actor, reason=reason, validated=True)
    write_hooks.after_batch(model, created)
    return created


@transaction.atomic
def record_update_many(
    objects: Sequence[models.Model], fields: Sequence[str], *, actor: User, reason: str
) -> list[models.Model]:
    """``record_save`` for several stored records of one model that change the same ``fields``, in set
    queries: the same write hooks (the review workflow's refusals under the same row locks, its
    after-write rules for the set, the report tokens of their patients), the same field rules,
    ``clean()`` and check constraints, the same optimistic lock (a record changed since it was read
    is refused, nothing is written), its version raised by one, and one "~" history row each with
    the actor and the reason. Uniqueness is left to the database, as on the bulk insert.

    For records a patient owns. Stopping an LM course cancelled its planned injections one save
    at a time (about six queries each): 15% of loading the LM demo (py-spy, 2026-12-08).

    Raises ValidationError naming the first refused or invalid object by its position, or
    RecordModifiedError for a stale one.
    """
    if not objects:
        return []
    model = type(objects[0])
    if getattr(model, "patient_lookup", None) in (None, "self"):
        raise TypeError(f"record_update_many takes records a patient owns, not {model.__name__}")
    for obj in objects:
        if type(obj) is not model or obj.pk is None:
            raise TypeError(f"record_update_many takes stored {model.__name__} records, one model at a time")
        attribute(obj, actor=actor, reason=reason)
    _refuse(model, objects)  # locks the section reviews, as each save would
    _validate(model, objects, constraints=True)
    stored = dict(
        model._default_manager.select_for_update()
        .filter(pk__in=[obj.pk for obj in objects])
        .order_by("pk")
        .values_list("pk", "version")
    )
    for obj in objects:
        if stored.get(obj.pk) != obj.version:  # type: ignore[attr-defined]
            raise RecordModifiedError(
                f"{obj} was changed since it was read; nothing was written.", target=obj
            )
    write_hooks.before_batch(model, objects)
    now = timezone.now()
    for obj in objects:
        obj.version += 1  # type: ignore[attr-defined]
        obj.updated_at = now  # type: ignore[attr-defined]
    with audited_bulk_write():
        _update(model, objects, fields, now)
    model.history.bulk_history_create(  # type: ignore[attr-defined]
        objects, update=True, default_user=actor, default_change_reason=reason, default_date=now
    )
    write_hooks.after_batch(model, objects)
    return list(objects)


def _refuse(model: type[models.Model], objects: Sequence[models.Model]) -> None:
    """The write hooks' refusals of a set (taken under the row locks a save takes), as the field
    errors of the first refused object, named by its position."""
    refusals = write_hooks.batch_refusals(model, objects)
    if refusals:
        position = min(refusals)
        raise ValidationError(
            {
                f"{model._meta.model_name}[{position}].{field}": [message]
                for field, message in refusals[position].items()
            }
        )


def _update(model: type[models.Model], objects: Sequence[models.Model], fields: Sequence[str], now) -> None:
    """One UPDATE when every record takes the same values (a stopped course cancels its plan alike);
    else Django's ``bulk_update`` (a CASE per field, built in Python: 2.5% of the LM demo's load for
    sets that needed none, py-spy 2026-12-08). Versions were checked under the row locks just taken."""
    attnames = [cast(models.Field, model._meta.get_field(name)).attname for name in fields]
    first = [getattr(objects[0], attname) for attname in attnames]
    if all([getattr(obj, attname) for attname in attnames] == first for obj in objects[1:]):
        model._default_manager.filter(pk__in=[obj.pk for obj in objects]).update(
            **dict(zip(attnames, first, strict=True)), version=F("version") + 1, updated_at=now
        )
    else:
        model._default_manager.bulk_update(objects, [*fields, "version", "updated_at"])


def _validate(
    model: type[models.Model], objects: Sequence[models.Model], *, constraints: bool = False
) -> None:
    """Each object's field rules and ``clean()``; ``constraints``: its check constraints too (in
    Python where they can be; foreign keys excluded, so no uniqueness query)."""
    exclude = _foreign_key_names(model)
    # Checks that need the database run once for the batch (``Model.batch_check``), not per object.
    batch_check = getattr(model, "batch_check", None)
    batch_errors = batch_check(list(objects)) if batch_check else {}
    for position, obj in enumerate(objects):
        errors = {field: list(messages) for field, messages in batch_errors.get(position, {}).items()}
        try:
            obj.full_clean(exclude=exclude, validate_unique=False, validate_constraints=constraints)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                errors.setdefault(field, []).extend(messages)
        if errors:
            raise ValidationError(
                {
                    f"{model._meta.model_name}[{position}].{field}": messages
                    for field, messages in errors.items()
                }
            )
        if isinstance(obj, ComputedScoreMixin):
            obj.refresh_computed_fields()  # bulk_create bypasses save(), where scores are computed
