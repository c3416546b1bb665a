"""Hook points on every case-record write, for the apps above registry.

Registry decides *when* a write is checked (every save, delete and bulk write of a
``RegistryRecord``, whatever the route); the apps above decide *what* is refused. The review
workflow registers its guard in ``ReviewConfig.ready()``, so a locked section refuses a write from
a page, the admin, the API, an import or a command alike, and registry imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.db import models

    from .models.base import RegistryRecord


class WriteGuard:
    """What a guard may take part in; each method's default lets the write through."""

    def check(self, record: RegistryRecord, *, deleting: bool) -> None:
        """Raise a ValidationError to refuse the write (called inside its transaction, before it)."""

    def check_batch(self, model: type[models.Model], records: Sequence[models.Model]) -> None:
        """Raise a ValidationError to refuse a bulk write of these new records (all or nothing).
        A caller that asked ``batch_refusals`` per row (the importer) does not ask again."""

    def before_batch(self, model: type[models.Model], records: Sequence[models.Model]) -> None:
        """Just before every bulk write of these new records, once nothing refused it (inside its
        transaction): what each single write does in ``check`` besides refusing."""

    def batch_refusals(
        self, model: type[models.Model], records: Sequence[models.Model]
    ) -> dict[int, dict[str, str]]:
        """Why each record of a batch (new or changed) would be refused, by position and field; checked
        by set queries under the same row locks as ``check``, for a set-based importer to report per row."""
        return {}

    def problems(self, record: RegistryRecord) -> dict[str, str]:
        """Why the write would be refused, per field, for a form to show before it saves (no locks)."""
        return {}

    def after_write(self, record: RegistryRecord) -> None:
        """After the record is saved, inside the same transaction."""

    def after_batch(self, model: type[models.Model], records: Sequence[models.Model]) -> None:
        """After a bulk write of these records, inside the same transaction (``after_write`` for a set)."""

    def after_delete(self, patient_id: int) -> None:
        """After a patient's record was deleted, inside the same transaction."""

    def is_read_only(self, record: RegistryRecord) -> bool:
        """Whether the record cannot change at all now (pages and the admin hide their buttons)."""
        return False

    def needs_reason(self, patient_id: int | None, section: str | None) -> bool:
        """Whether a write to this section of this patient must give a reason."""
        return False


_guards: list[WriteGuard] = []


def register(guard: WriteGuard) -> None:
    """Add a guard (once: registering the same class again replaces the earlier one)."""
    _guards[:] = [g for g in _guards if type(g) is not type(guard)] + [guard]


def check(record: RegistryRecord, *, deleting: bool = False) -> None:
    for guard in _guards:
        guard.check(record, deleting=deleting)


def check_batch(model: type[models.Model], records: Sequence[models.Model]) -> None:
    for guard in _guards:
        guard.check_batch(model, records)


def before_batch(model: type[models.Model], records: Sequence[models.Model]) -> None:
    for guard in _guards:
        guard.before_batch(model, records)


def batch_refusals(model: type[models.Model], records: Sequence[models.Model]) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for guard in _guards:
        for position, fields in guard.batch_refusals(model, records).items():
            for field, message in fields.items():
                found.setdefault(position, {}).setdefault(field, message)
    return found


def after_batch(model: type[models.Model], records: Sequence[models.Model]) -> None:
    for guard in _guards:
        guard.after_batch(model, records)


def problems(record: RegistryRecord) -> dict[str, str]:
    found: dict[str, str] = {}
    for guard in _guards:
        for field, message in guard.problems(record).items():
            found.setdefault(field, message)
    return found


def after_write(record: RegistryRecord) -> None:
    for guard in _guards:
        guard.after_write(record)


def after_delete(patient_id: int) -> None:
    for guard in _guards:
        guard.after_delete(patient_id)


def is_read_only(record: RegistryRecord) -> bool:
    return any(guard.is_read_only(record) for guard in _guards)


def needs_reason(patient_id: int | None, section: str | None) -> bool:
    return any(guard.needs_reason(patient_id, section) for guard in _guards)
