"""The audited case-record models and what each declares about itself.

Each model says once, on its class, which review section it belongs to (``review_section``), how it
reaches its patient (``patient_lookup``) and whether it holds direct identifiers
(``holds_identifiers``). Site scoping, the audit timeline, the audit export and the review sections
read those declarations, through here, instead of keeping lists of their own; a new model of any
app (protocols' courses included) appears in all of them. ``registry.checks`` refuses a model whose
declarations do not resolve.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeAlias

from django.apps import apps
from django.db.models import QuerySet

from accounts.audited import AuditedRecord

from .chunked import filter_in_chunks
from .models.base import RegistryRecord


def audited_models() -> list[type[AuditedRecord]]:
    """Every concrete audited model of every installed app (sites and case records), in app and
    definition order."""
    return [model for model in apps.get_models() if issubclass(model, AuditedRecord)]


def patient_record_models(*, include_identifiers: bool) -> list[type[RegistryRecord]]:
    """The audited models whose records belong to a patient (the patient first)."""
    return [
        model
        for model in audited_models()
        if issubclass(model, RegistryRecord)
        and model.patient_lookup is not None
        and (include_identifiers or not model.holds_identifiers)
    ]


Owners: TypeAlias = dict[type[RegistryRecord], dict[int, int]]


def history_owners(
    model: type[RegistryRecord], patient_ids: set[int], known: Owners | None = None
) -> dict[int, int]:
    """Record id → patient id for every record of the model that belonged to these patients.

    Read from the history tables, hop by hop along ``patient_lookup``, so deleted records (and
    children of deleted parents) are still found. ``known`` keeps the maps already read in one pass.
    """
    known = {} if known is None else known
    if model in known:
        return known[model]
    owners: dict[int, int]
    lookup = model.patient_lookup
    if lookup is None:
        raise LookupError(f"{model.__name__} does not belong to a patient")
    if lookup == "self":
        owners = {pid: pid for pid in patient_ids}
    else:
        hop, *rest = lookup.split("__")
        column = f"{hop}_id"
        history = model.history.order_by("history_id")
        if not rest:
            owners = dict(_in_history_order(history, column, patient_ids))
        else:
            parent = model._meta.get_field(hop).related_model
            assert isinstance(parent, type) and issubclass(parent, RegistryRecord), parent  # registry.checks
            parents = history_owners(parent, patient_ids, known)
            owners = {
                record_id: parents[parent_id]
                for record_id, parent_id in _in_history_order(history, column, parents)
            }
    known[model] = owners
    return owners


def _in_history_order(
    history: QuerySet[Any, Any], column: str, values: Collection[int]
) -> list[tuple[int, int]]:
    """(record id, ``column``) of the history rows whose ``column`` is in ``values``, oldest first:
    a record moved to another parent is owned by its latest one. Read in chunks of ``values``."""
    rows = sorted(filter_in_chunks(history.values_list("history_id", "id", column), column, values))
    return [(record_id, owner) for _, record_id, owner in rows]
