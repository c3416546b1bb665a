"""``field__in`` over a list as long as a study, read in chunks.

A list of ids becomes one bound parameter each: SQLite refuses a statement with more than its
variable limit (250,000 in Debian's build, 32,766 in SQLite's own default), and PostgreSQL parses
every one of them. The audit export names every record of a study this way, so it reads them
``CHUNK`` ids at a time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any, TypeVar

from django.db.models import Model, QuerySet

CHUNK = 10_000

_M = TypeVar("_M", bound=Model)


def filter_in_chunks(queryset: QuerySet[_M, Any], field: str, values: Collection[Any]) -> Iterator[Any]:
    """The rows of ``queryset.filter(<field>__in=values)``, one query per ``CHUNK`` values (in each
    chunk in the queryset's order; none at all for no values)."""
    ordered = sorted(values)
    for start in range(0, len(ordered), CHUNK):
        yield from queryset.filter(**{f"{field}__in": ordered[start : start + CHUNK]})
