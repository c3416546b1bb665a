"""Values as text in exchange files, and back: one rule per field type, used by export and import."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models

from accounts.models import Site
from protocols.models import Formulation, Protocol
from registry.formatting import plain, spreadsheet_unsafe

TRUE, FALSE = "1", "0"
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _protocol_from_text(text: str) -> Protocol:
    code, _, revision = text.rpartition(":")
    found = Protocol.objects.filter(code=code, revision=revision).first() if revision.isdigit() else None
    if found is None:
        raise ValueError(
            f"no protocol {text!r} (write code:version, e.g. lm-pemetrexed:1; load the seed protocols with "
            "manage.py load_protocols)"
        )
    return found


def _by_field(model, field: str, what: str):
    def find(text: str):
        found = model._default_manager.filter(**{field: text}).first()
        if found is None:
            raise ValueError(f"no {what} {text!r}")
        return found

    return find


@cache
def _natural_keys() -> dict[type[models.Model], tuple]:
    """Links to reference data are written as the natural key of the record they name: (encode, decode)."""
    user = get_user_model()
    return {
        Site: (lambda site: site.code, _by_field(Site, "code", "site with the code")),
        Protocol: (lambda p: f"{p.code}:{p.revision}", _protocol_from_text),
        Formulation: (lambda f: f.name, _by_field(Formulation, "name", "formulation named")),
        user: (lambda u: u.get_username(), _by_field(user, user.USERNAME_FIELD, "user named")),
    }


def datetime_text(moment: dt.datetime) -> str:
    """A moment as the exchange files write it: UTC, to the second, with Z."""
    return moment.astimezone(dt.UTC).strftime(DATETIME_FORMAT)


def to_text(model_field: models.Field, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(model_field, models.ForeignKey):
        encode, _ = _natural_keys()[model_field.related_model]
        if not isinstance(value, model_field.related_model):
            value = model_field.related_model._default_manager.get(pk=value)
        return encode(value)
    if isinstance(model_field, models.JSONField):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, bool):
        return TRUE if value else FALSE
    if isinstance(value, dt.datetime):
        return datetime_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return plain(value)
    return str(value)


def from_text(model_field: models.Field, text: str) -> Any:
    """Parse a cell for a model field; raise ValueError with a plain message when it cannot be read."""
    return cell_reader(model_field)(text)


Parser = Callable[[str], Any]


@cache
def cell_reader(model_field: models.Field) -> Parser:
    """``from_text`` for one field, its rules chosen once: an import reads each column with its reader
    (looking the rule up per cell hashed the field, in Python, twice a cell)."""
    parse = _parser(model_field)
    required = isinstance(model_field, models.BooleanField) and not model_field.null
    empty = "" if isinstance(model_field, models.CharField | models.TextField) else None

    def read(text: str) -> Any:
        text = spreadsheet_unsafe(text.strip()) if isinstance(text, str) else text
        if text in ("", None):
            if required:
                raise ValueError("is empty; write 1 (yes) or 0 (no)")
            return empty
        return parse(text)

    return read


@cache
def _parser(model_field: models.Field) -> Parser:
    """The rule that reads a non-empty cell of this field, chosen once per field: an import reads
    every cell of a column with the same rule (choosing it per cell, and listing a field's codes
    per cell, were a fifth of a 44,190-row import's parsing)."""
    if isinstance(model_field, models.ForeignKey):
        return _natural_keys()[model_field.related_model][1]
    if isinstance(model_field, models.JSONField):
        return _json_from_text
    if isinstance(model_field, models.BooleanField):
        return _boolean_from_text
    if isinstance(model_field, models.DateTimeField):  # before DateField: a subclass of it
        return _datetime_from_text
    if isinstance(model_field, models.DateField):
        return _date_from_text
    if isinstance(model_field, models.DecimalField):
        return _decimal_from_text
    if isinstance(model_field, models.IntegerField):
        return _integer_from_text
    if model_field.choices:
        return _coded(model_field)
    return _as_is


def _json_from_text(text: str) -> Any:
    """A JSON cell; ``{}`` (a record without missing-data codes, most rows) without the parser: json.loads
    of it was 3% of a 44,190-row import."""
    if text == "{}":
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"is not valid JSON ({error.msg} at character {error.pos})") from None
    except RecursionError:
        raise ValueError("is JSON nested too deeply") from None


def _boolean_from_text(text: str) -> bool:
    if text in (TRUE, FALSE):
        return text == TRUE
    raise ValueError(f"{text!r} is not 1 (yes) or 0 (no)")


def _datetime_from_text(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date-time like 2021-03-02T09:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z (UTC) or an offset like +08:00")
    return moment


def _date_from_text(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date like 2021-03-02") from None


def _decimal_from_text(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None


def _integer_from_text(text: str) -> int:
    if not text.lstrip("-").isdigit():
        raise ValueError(f"{text!r} is not a whole number")
    return int(text)


def _coded(model_field: models.Field) -> Parser:
    codes = frozenset(str(code) for code, _ in model_field.flatchoices)
    listed = ", ".join(str(code) for code, _ in model_field.flatchoices if code != "")

    def read(text: str) -> str:
        if text not in codes:
            raise ValueError(f"{text!r} is not one of the codes: {listed}")
        return text

    return read


def _as_is(text: str) -> str:
    return text
