"""Cohort filters of a report: one JSON form, parsed from the page, the command line and definitions.

The stored (canonical) form is plain JSON, so it can be saved in a report definition, hashed into a
cache key and shown back to people::

    {"site": ["north"], "index_from": "2019-01-01", "index_to": "2022-12-31",
     "syndromes": ["psychosis"], "it_drug": ["pemetrexed"],
     "sex_male": 1, "mutation_class": ["EGFR", "ALK"], "age": {"op": ">=", "value": 18}}

``for_dataset`` turns it into the keys ``analytics.datasets.apply_filters`` takes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from analytics.datasets import Variable

LIST_KEYS = ("site", "syndromes", "it_drug")
DATE_KEYS = ("index_from", "index_to")
#: Units of columns that hold text (codes, categories, dates); the rest compare as numbers.
TEXT_UNITS = ("", "category", "date")
_CONDITION = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(>=|<=|!=|==|=|>|<)\s*(.*?)\s*$")
_SHOWN_OPERATORS = {">=": "≥", "<=": "≤", "!=": "≠", ">": ">", "<": "<"}


class FilterError(ValueError):
    """A filter that cannot be applied; the message says which and how to write it."""


def parse_condition(text: str, dictionary: Iterable[Variable]) -> tuple[str, Any]:
    """``"age>=18"`` → ``("age", {"op": ">=", "value": 18})``; ``"site=north,south"`` → a list."""
    match = _CONDITION.match(text)
    if not match or not match.group(3):
        raise FilterError(f"{text.strip()!r} is not a condition; write it as column=value or column>=value")
    key, op, raw = match.groups()
    op = "=" if op == "==" else op
    units = {variable.name: variable.unit for variable in dictionary}
    if key in DATE_KEYS:
        if op != "=":
            raise FilterError(f"{key} takes a date: {key}=YYYY-MM-DD")
        return key, _iso_date(key, raw)
    if key in LIST_KEYS:
        if op != "=":
            raise FilterError(f"{key} takes one or more values: {key}=a,b")
        return key, [part.strip() for part in raw.split(",") if part.strip()]
    if key not in units:
        raise FilterError(f"no column {key!r} in this study's dataset (see its data dictionary)")
    numeric = units[key] not in TEXT_UNITS
    values = [_typed(key, part.strip(), numeric) for part in raw.split(",") if part.strip()]
    if op == "=":
        return key, values if len(values) > 1 else values[0]
    if len(values) != 1 or not numeric:
        raise FilterError(f"{key} {op} needs one number")
    return key, {"op": op, "value": values[0]}


def _iso_date(key: str, raw: str) -> str:
    try:
        return dt.date.fromisoformat(raw).isoformat()
    except ValueError:
        raise FilterError(f"{key} must be a date written YYYY-MM-DD, not {raw!r}") from None


def _typed(key: str, raw: str, numeric: bool) -> Any:
    if not numeric:
        return raw
    try:
        number = float(raw)
    except ValueError:
        raise FilterError(f"{key} is a number; {raw!r} is not") from None
    return int(number) if number.is_integer() else number


def parse_conditions(lines: Iterable[str], dictionary: Iterable[Variable]) -> dict[str, Any]:
    dictionary = list(dictionary)
    filters: dict[str, Any] = {}
    for line in lines:
        if line.strip():
            key, value = parse_condition(line, dictionary)
            filters[key] = value
    return filters


def canonical(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Drop empty filters and sort lists, so equal cohorts give equal cache keys."""
    clean: dict[str, Any] = {}
    for key in sorted(filters):
        value = filters[key]
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, list | tuple | set):
            value = sorted(value, key=str)
        clean[key] = value
    return clean


def for_dataset(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical form as ``analytics.datasets.apply_filters`` keys (operators become tuples)."""
    return {
        key: (value["op"], value["value"]) if isinstance(value, Mapping) else value
        for key, value in filters.items()
    }


def as_line(key: str, value: Any) -> str:
    """One filter written back as the text a person types (the inverse of ``parse_condition``)."""
    if isinstance(value, Mapping):
        return f"{key}{value['op']}{value['value']}"
    if isinstance(value, list):
        return f"{key}={','.join(str(v) for v in value)}"
    return f"{key}={value}"


def describe(filters: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    """Each filter as a short phrase for the report header and the flow diagram."""
    labels = {"syndromes": "NPSLE syndromes"} | dict(labels)  # the one filter that is not a column
    phrases = []
    for key, value in filters.items():
        if key == "index_from":
            phrases.append(f"index admission on or after {value}")
        elif key == "index_to":
            phrases.append(f"index admission on or before {value}")
        elif isinstance(value, Mapping):
            phrases.append(f"{labels.get(key, key)} {_SHOWN_OPERATORS[value['op']]} {value['value']}")
        elif isinstance(value, list):
            phrases.append(f"{labels.get(key, key)}: {', '.join(str(v) for v in value)}")
        else:
            phrases.append(f"{labels.get(key, key)} = {value}")
    return phrases
