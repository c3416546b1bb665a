"""Evaluate simple CheckConstraints in Python during ``full_clean()``.

Django validates a CheckConstraint with one SELECT per constraint per object, which made saving a
lumbar puncture with its CSF and doses cost dozens of queries. The registry's check constraints are
plain comparisons, so they are evaluated here with SQL's three-valued logic (a comparison with NULL
is unknown, and an unknown CHECK passes). Anything this evaluator does not understand is left to
Django's database check, so the database stays the single source of the rule.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import cache
from typing import Any

from django.db.models import F, Field, Model, Q

UNSUPPORTED = object()

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "exact": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _value(instance: Model, name: str) -> Any:
    return getattr(instance, _attname(type(instance), name))


@cache
def _attname(model: type[Model], name: str) -> str:
    """The attribute a field named in a condition is read from (looked up once per model and name)."""
    field = model._meta.get_field(name)
    if not isinstance(field, Field):
        raise LookupError(f"{name} is a reverse relation, not a field")
    return field.attname


def _leaf(instance: Model, key: str, expected: Any) -> bool | None | object:
    name, _, lookup = key.partition("__")
    lookup = lookup or "exact"
    try:
        value = _value(instance, name)
    except Exception:  # a related path or transform: not a plain field
        return UNSUPPORTED
    if lookup == "isnull":
        return (value is None) == bool(expected)
    if isinstance(expected, F):
        reference = str(expected.name)  # type: ignore[attr-defined]  # F's name is set in __init__
        if "__" in reference:
            return UNSUPPORTED
        expected = _value(instance, reference)
    elif hasattr(expected, "resolve_expression"):
        return UNSUPPORTED
    if lookup == "in":
        return None if value is None else value in expected
    compare = _COMPARISONS.get(lookup)
    if compare is None:
        return UNSUPPORTED
    if value is None or expected is None:
        return None
    return compare(value, expected)


def _pair(child: Any) -> tuple[str, Any]:
    """A leaf of a Q: (lookup, value)."""
    key, expected = child
    return str(key), expected


def evaluate(condition: Q, instance: Model) -> bool | None | object:
    """True, False, None (unknown, as SQL NULL) or UNSUPPORTED."""
    results = []
    for child in condition.children:
        result = evaluate(child, instance) if isinstance(child, Q) else _leaf(instance, *_pair(child))
        if result is UNSUPPORTED:
            return UNSUPPORTED
        results.append(result)
    if condition.connector == Q.AND:
        combined = False if False in results else (None if None in results else True)
    else:
        combined = True if True in results else (None if None in results else False)
    if condition.negated and combined is not None:
        combined = not combined
    return combined


#: ``referenced_fields`` of each model's conditions, by the condition's identity (a Q is hashed
#: through all its children); the condition is kept beside its names so its id cannot be reused.
_REFERENCED: dict[int, tuple[Q, list[str]]] = {}


def referenced_fields(condition: Q) -> list[str]:
    """Field names a condition mentions, in order (the first one carries the error); worked out once
    per condition, since validation asks it for every record of an import."""
    found = _REFERENCED.get(id(condition))
    if found is None or found[0] is not condition:
        found = _REFERENCED[id(condition)] = (condition, _referenced_fields(condition))
    return found[1]


def _referenced_fields(condition: Q) -> list[str]:
    names: list[str] = []
    for child in condition.children:
        if isinstance(child, Q):
            names.extend(_referenced_fields(child))
        else:
            key, expected = _pair(child)
            names.append(key.partition("__")[0])
            if isinstance(expected, F):
                names.append(str(expected.name).partition("__")[0])  # type: ignore[attr-defined]
    return list(dict.fromkeys(names))
