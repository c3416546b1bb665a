"""Lost-update protection: every record carries a version; a stale save is refused with what changed.

Saving compares the version the user started from with the current one (django-concurrency makes the
UPDATE conditional on it, so even a race between two saves cannot lose one). The refusal says who
changed which fields since, read from the record's history.
"""

from __future__ import annotations

from dataclasses import dataclass

from concurrency.forms import get_signer
from django import forms
from django.db import models
from django.http import QueryDict

from accounts.audited import AuditedRecord

from .. import write_hooks
from ..history import field_changes, user_label


@dataclass(frozen=True)
class StaleEdit:
    """What happened to a record after the version a user started editing."""

    current_version: int
    changes: tuple[str, ...]  # "opening pressure (mmH2O): 180 → 210"
    by: str
    at: str

    def message(self) -> str:
        what = "; ".join(self.changes) or "no visible field changed"
        return (
            f"{self.by} changed this record at {self.at} while you were editing it ({what}). Your entries are kept "
            "below: check them against the current values and save again to keep yours."
        )


def current_version(instance: models.Model) -> int | None:
    return type(instance)._base_manager.filter(pk=instance.pk).values_list("version", flat=True).first()


def stale_edit(instance: AuditedRecord, started_from: int) -> StaleEdit | None:
    """None when ``started_from`` is still the current version; otherwise what changed since."""
    current = current_version(instance)
    if current is None or current == started_from:
        return None
    rows = list(instance.history.filter(id=instance.pk).order_by("history_date", "history_id"))
    changed: dict[str, str] = {}
    last = None
    for previous, row in zip([None, *rows[:-1]], rows, strict=True):
        if row.version is None or row.version <= started_from or row.history_type != "~":
            continue
        for field in field_changes(type(instance), previous, row):
            first_old = changed.get(field.field, field.old).split(" → ")[0]
            changed[field.field] = f"{first_old} → {field.new or '—'}"
        last = row
    labels = {f.name: str(f.verbose_name) for f in type(instance)._meta.concrete_fields}
    lines = tuple(f"{labels.get(name, name)}: {value}" for name, value in changed.items())
    who = user_label(last) if last else "Someone"
    when = f"{last.history_date:%Y-%m-%d %H:%M} UTC" if last else "an unknown time"
    return StaleEdit(current_version=current, changes=lines, by=who, at=when)


def signed_version(version: int) -> str:
    """The version as the hidden form field carries it (signed, so it cannot be forged)."""
    return get_signer().sign(version) if version else ""


class VersionedForm(forms.ModelForm):
    """Refuses an edit based on a version that someone else has changed since, saying what changed.

    The user's entries stay in the form; the hidden version moves to the current one, so saving again
    (after checking) deliberately keeps the user's values.
    """

    stale: StaleEdit | None = None

    def has_changed(self) -> bool:
        """The hidden version alone is not a change (an empty extra row stays empty)."""
        return any(name != "version" for name in self.changed_data)

    def _post_clean(self) -> None:
        """After the model's own validation: would a write guard (the review workflow) refuse it? Say so now."""
        super()._post_clean()  # type: ignore[misc]  # ModelForm's hook, missing from django-stubs
        if not hasattr(self.instance, "owning_patient_id"):
            return
        self.instance._change_reason = (
            self.cleaned_data.get("change_reason", "") if hasattr(self, "cleaned_data") else ""
        )
        for field, message in write_hooks.problems(self.instance).items():
            self.add_error(None if field == "__all__" or field not in self.fields else field, message)

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        if self.instance.pk and "version" in self.fields and "version" in cleaned:
            self.stale = stale_edit(self.instance, cleaned["version"])
            if self.stale:
                data = QueryDict(mutable=True)
                data.update(self.data)
                data[self.add_prefix("version")] = signed_version(self.stale.current_version)
                self.data = data
                raise forms.ValidationError(self.stale.message(), code="stale")
        return cleaned
