"""Missing-data codes: why an optional field is empty (not applicable, unknown, not asked, not done).

Each record keeps its codes in one JSON field, ``missing_codes`` ({field name: code}), beside the
values rather than in them: the value column stays typed and empty (so every analysis already treats
it as missing and no code can be mistaken for a number), a blank field without a code stays "not
entered", and one column per record — not one companion column per optional field, which would double
the width of every table and its history — carries the codes through history, exports and the API.
The codes and their meanings are a setting (``MISSING_DATA_CODES``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from .formatting import sentence


def codes() -> dict[str, str]:
    """The configured codes, code → meaning, in their configured order."""
    return dict(settings.MISSING_DATA_CODES)


def meaning(code: str) -> str:
    return codes().get(code, code)


def eligible(model: type[models.Model]) -> list[str]:
    """The fields that may carry a code: optional values (not yes/no ticks, links or free text)."""
    return [
        f.name
        for f in model._meta.concrete_fields
        if (f.null or f.blank)
        and f.editable
        and not f.primary_key
        and not isinstance(f, models.BooleanField | models.ForeignKey | models.JSONField)
        and not (isinstance(f, models.CharField | models.TextField) and not f.choices)
    ]


def _empty(value: Any) -> bool:
    return value in (None, "")


def errors(record: Any) -> dict[str, list[str]]:
    """{field: [message]} for codes that cannot stand: unknown field or code, or a value given too."""
    found: dict[str, list[str]] = {}
    if record.missing_codes is None:
        # A record always has its codes, if only {}: the column is NOT NULL. A JSON null reached it
        # through the API's form-encoded bodies, whose JSON text DRF parses after its null check.
        return {
            "missing_codes": ["Give the missing-data codes as {field name: code}; {} when there are none."]
        }
    given = record.missing_codes or {}
    if not isinstance(given, dict):
        return {"missing_codes": ["Give the missing-data codes as {field name: code}."]}
    if not given:
        return found  # most records have no codes: nothing to judge, and no field list to build
    allowed = eligible(type(record))
    known = codes()
    for name, code in given.items():
        if name not in allowed:
            found.setdefault("missing_codes", []).append(f"{name!r} is not an optional field of this record.")
        elif code not in known:
            found.setdefault(name, []).append(
                f"{code!r} is not a missing-data code; use one of {', '.join(known)}."
            )
        elif not _empty(getattr(record, name)):
            found.setdefault(name, []).append(
                f"Give a value or a missing-data code ({code}), not both; clear one of them."
            )
    return found


def described(record: Any) -> list[tuple[str, str, str]]:
    """(field label, code, meaning) for each code of a record, in field order."""
    given = getattr(record, "missing_codes", None) or {}
    model = type(record)
    return [
        (sentence(model._meta.get_field(name).verbose_name), given[name], meaning(given[name]))
        for name in eligible(model)
        if name in given
    ]
