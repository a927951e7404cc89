"""A check schemathesis loads for PeerGrid's API run (``hooks`` in its config).

schemathesis's ``positive_data_acceptance`` counts any 400 to a schema-valid request as a
finding. A schema cannot know the stored data a market rule reads (the community's price band,
a meter point's capacity and approval, whether a posting is the caller's own, gate closure),
nor relations between fields (a range's order, the rules' floor below the cap), so those
refusals are 400s with their own domain code. The run therefore accepts a 400 for valid data
only through this stricter check: the refusal must carry a domain code, never one of the codes
that form validation produces (a type, a pattern, a bound, a length, a choice). A schema-valid
request refused for its form is a schema that does not say what the server enforces.
"""

from __future__ import annotations

from typing import Any

import schemathesis

# The codes request parsing and field validation give (``config.errors.ErrorCode``); each is
# something a schema keyword can state, so valid data must never receive one.
FORM_CODES = frozenset(
    {
        "invalid", "required", "null", "blank", "max_length", "min_length", "max_value",
        "min_value", "max_digits", "max_decimal_places", "max_whole_digits", "not_a_list",
        "empty", "not_a_number", "too_precise", "not_an_integer", "unknown_choice",
        "invalid_choice", "invalid_idempotency_key", "not_editable", "forbidden_character",
        "bad_datetime", "make_aware", "parse_error", "not_utf8", "bad_request",
        "unsupported_media_type",
    }
)  # fmt: skip


@schemathesis.check
def valid_data_passes_form_validation(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schema-valid request is refused only by a market rule, never by its form."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    try:
        code = response.json().get("code")
    except ValueError:
        code = None
    if code in FORM_CODES or code is None:
        raise AssertionError(
            f"A schema-valid request was refused for its form ({code}): {response.text[:300]}"
        )
    return None
