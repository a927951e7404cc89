"""The API's JSON body parser: DRF's, with a bound on nesting so no body can exhaust the stack.

A request body of a few kilobytes of ``[[[[...`` made Python's JSON decoder raise
``RecursionError``, a 500; no field of this API nests more than a few levels, so anything
deeper than ``MAX_DEPTH`` is a 400 ``parse_error`` naming the limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 16
TOO_DEEP = f"The JSON body nests deeper than {MAX_DEPTH} levels."


def check_depth(document: Any, limit: int = MAX_DEPTH) -> None:
    """Raise ``ParseError`` when lists and objects nest deeper than ``limit`` (iteratively)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                raise ParseError(TOO_DEEP)
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)


class BoundedJSONParser(JSONParser):
    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        check_depth(data)
        return data
