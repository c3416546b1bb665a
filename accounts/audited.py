"""What every audited record is: stamped, versioned, historied, and closed to writes that skip all that.

Sites (here) and every case record (registry.RegistryRecord) share it. Records change one at a time
through save()/delete() (the registry's services add the actor and the reason), or in bulk inside
``audited_bulk_write()``, which the registry's bulk path opens after validating and writing history.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from concurrency.fields import AutoIncVersionField
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from simple_history.manager import HistoryManager as LibraryHistoryManager
from simple_history.models import HistoricalRecords


class UnauditedWriteError(RuntimeError):
    """A write that would bypass the audit trail (QuerySet.update/delete, raw bulk writes)."""


_audited_bulk_write: ContextVar[bool] = ContextVar("audited_bulk_write", default=False)


@contextmanager
def audited_bulk_write() -> Iterator[None]:
    """Allow bulk_create and bulk_update inside the audited bulk path (registry.services.bulk), which
    checks versions and writes history."""
    token = _audited_bulk_write.set(True)
    try:
        yield
    finally:
        _audited_bulk_write.reset(token)


def _is_relation(model: type[models.Model], name: Any) -> bool:
    if not isinstance(name, str) or "__" in name:
        return False
    try:
        return bool(model._meta.get_field(name.lstrip("-")).is_relation)
    except FieldDoesNotExist:
        return False


class AuditedQuerySet(models.QuerySet):
    """Refuses the writes that would skip per-record history, locks and reasons.

    Records change one at a time through the services (``record_save``/``record_delete``) or, in
    bulk, through ``registry.services.bulk`` (``bulk_record_create``, ``record_update_many``), which
    validates, checks versions and writes history.
    """

    def update(self, **kwargs):
        if _audited_bulk_write.get():  # bulk_update's own statement, inside the audited bulk path
            return super().update(**kwargs)
        raise UnauditedWriteError(
            f"{self.model.__name__}.objects.update() would change records without history; save each record "
            "through a service (registry.services.record_save)."
        )

    def bulk_update(self, objs, fields, batch_size=None):
        if not _audited_bulk_write.get():
            raise UnauditedWriteError(
                f"{self.model.__name__}.objects.bulk_update() would skip the audit trail; use "
                "registry.services.bulk.record_update_many."
            )
        return super().bulk_update(objs, fields, batch_size=batch_size)

    def bulk_create(self, objs, *args, **kwargs):
        if not _audited_bulk_write.get():
            raise UnauditedWriteError(
                f"{self.model.__name__}.objects.bulk_create() would skip validation and history; use "
                "registry.services.bulk.bulk_record_create."
            )
        return super().bulk_create(objs, *args, **kwargs)

    def delete(self):
        raise UnauditedWriteError(
            f"{self.model.__name__}.objects.delete() would delete without a reason; delete each record through "
            "registry.services.record_delete."
        )

    delete.queryset_only = True  # type: ignore[attr-defined]  # Django's marker: not copied to managers

    def within_owner(self) -> AuditedQuerySet:
        """The model's own order for rows of one owner (one patient, one LP, one course).

        ``Meta.ordering`` starts with the owner ("patient", "performed_at"), and ordering by a relation
        means ordering by *its* ordering: the patient's study code and study number, a join per level
        up to the study, built and compiled for every query (a fifth of the statements of the LM
        demo's load, 2026-12-07). Among one owner's rows that part orders nothing, so it is dropped.
        """
        ordering = list(self.model._meta.ordering or ())
        if ordering and _is_relation(self.model, ordering[0]):
            del ordering[0]  # the owner only: a second relation would still order its rows
        return self.order_by(*ordering)


class HistoryManager(LibraryHistoryManager):
    """simple-history's manager of a record's history, its class made once.

    simple-history's descriptor makes a new manager class (``from_queryset``, which walks the
    queryset class's members with ``inspect``) on every ``record.history``, and it reads that for
    each history row it writes: 60-90 µs a row, 1.2% of the test suite's CPU (py-spy, 2026-12-07).
    The class depends only on the two classes, so it is made once for them (an access then costs
    2.4 µs instead of 91); each access still gets its own manager for its record.
    """

    @classmethod
    def from_queryset(cls, queryset_class: type, class_name: str | None = None) -> type:
        key = (cls, queryset_class, class_name)
        made = _MANAGER_CLASSES.get(key)
        if made is None:
            made = _MANAGER_CLASSES[key] = super().from_queryset(queryset_class, class_name)
        return made


#: The manager classes made, by (manager class, queryset class, name): a handful per process.
_MANAGER_CLASSES: dict[tuple[type, type, str | None], type] = {}


def history_records(**options: Any) -> HistoricalRecords:
    """``HistoricalRecords`` with the registry's history manager (declared on every audited model)."""
    return HistoricalRecords(history_manager=HistoryManager, **options)


class AuditedRecord(models.Model):
    """Abstract base of every audited record (sites here; case records through registry.RegistryRecord).

    It keeps created/updated stamps, a version that refuses a save based on a stale copy, and a full
    change history (who, when, old/new values, why). Each model declares once, on its class, where it
    belongs; site scoping (accounts.access.site_path), the audit views and the review read these
    declarations through registry.catalogue, and registry.checks refuses a model whose do not resolve:
    the case-record section it belongs to, how it reaches its patient ("self" for Patient; None for
    records no patient owns), whether it holds direct identifiers (names, record numbers), and, for
    records not owned through a patient, how they reach their site or that no site owns them
    (reference data such as protocols).
    """

    #: Who made the change being saved and why: simple-history writes them into the history row.
    _history_user: Any
    _change_reason: str

    review_section: str | None = None
    patient_lookup: str | None = None
    site_lookup: str | None = None
    reference_data: bool = False
    holds_identifiers: bool = False

    created_at = models.DateTimeField(auto_now_add=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True, editable=False)
    version = AutoIncVersionField(help_text="Incremented on every save; a stale version is refused.")

    objects = AuditedQuerySet.as_manager()
    history = history_records(inherit=True)

    class Meta:
        abstract = True
