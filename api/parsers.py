"""JSON bodies with a bounded nesting depth.

Python's decoder recurses once per level: a body nested 1,000 deep raised RecursionError (a 500),
also on the unauthenticated token endpoint. No registry request nests more than a few levels (an LP
with its CSF, pathogen tests and doses is four), so anything deeper than ``MAX_DEPTH`` is refused
with a 400 before a serializer sees it.
"""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32


def nesting_depth(value) -> int:
    """How deeply lists and objects nest (iteratively, so measuring never recurses)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(
                f"JSON parse error - the body is nested too deeply (more than {MAX_DEPTH} levels)."
            ) from None
        if nesting_depth(data) > MAX_DEPTH:
            raise ParseError(
                f"JSON parse error - the body is nested too deeply (more than {MAX_DEPTH} levels)."
            )
        return data
