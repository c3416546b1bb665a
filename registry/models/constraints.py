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


def _pair(child: Any) -> tuple[str, Any]:
    """A leaf of a Q: (lookup, value)."""
    key, expected = child
    return str(key), expected


def evaluate(condition: Q, instance: Model) -> bool | None | object:
    """True, False, None (unknown, as SQL NULL) or UNSUPPORTED."""
    found = _COMPILED.get(id(condition))
    if found is None or found[0] is not condition:
        found = _COMPILED[id(condition)] = (condition, _compiled(condition))
    return found[1](instance)


Verdict = Callable[[Model], "bool | None | object"]
#: Each condition's ``_compiled`` rule, by identity, kept beside its condition (as ``_REFERENCED``).
_COMPILED: dict[int, tuple[Q, Verdict]] = {}


def _compiled(condition: Q) -> Verdict:
    """The condition as a function of the record: its tree walked, and each leaf's lookup read, once.
    Hand-rolled for speed: an import evaluates every condition for every record (walking the tree per
    record was 9% of a 44,190-row import)."""
    rules = [
        _compiled(child) if isinstance(child, Q) else _leaf_rule(*_pair(child))
        for child in condition.children
    ]
    is_and, negated = condition.connector == Q.AND, condition.negated

    def verdict(instance: Model) -> bool | None | object:
        results = []
        for rule in rules:
            result = rule(instance)
            if result is UNSUPPORTED:
                return UNSUPPORTED
            results.append(result)
        if is_and:
            combined = False if False in results else (None if None in results else True)
        else:
            combined = True if True in results else (None if None in results else False)
        if negated and combined is not None:
            combined = not combined
        return combined

    return verdict


def _unsupported(instance: Model) -> object:
    return UNSUPPORTED


def _leaf_rule(key: str, expected: Any) -> Verdict:
    """One comparison of a condition, its lookup and the kind of what it compares with read once."""
    name, _, lookup = key.partition("__")
    lookup = lookup or "exact"
    if lookup == "isnull":
        is_null = bool(expected)

        def null_test(instance: Model) -> bool | None | object:
            try:
                value = _value(instance, name)
            except Exception:  # a related path or transform: not a plain field
                return UNSUPPORTED
            return (value is None) == is_null

        return null_test
    reference: str | None = None
    if isinstance(expected, F):
        reference = str(expected.name)  # type: ignore[attr-defined]  # F's name is set in __init__
        if "__" in reference:
            return _unsupported
    elif hasattr(expected, "resolve_expression"):
        return _unsupported
    compare = _COMPARISONS.get(lookup)

    def comparison(instance: Model) -> bool | None | object:
        try:
            value = _value(instance, name)
        except Exception:  # a related path or transform: not a plain field
            return UNSUPPORTED
        other = expected if reference is None else _value(instance, reference)
        if lookup == "in":
            return None if value is None else value in other
        if compare is None:
            return UNSUPPORTED
        if value is None or other is None:
            return None
        return compare(value, other)

    return comparison


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
