"""OpenAPI pieces shared by every view: the error body, the error responses, bearer auth."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from config.errors import MEANINGS, ErrorCode

# Every code with its meaning: the schema lists them as the error body's ``code`` enum.
ERROR_CODE_CHOICES = [(code.value, MEANINGS[code]) for code in ErrorCode]


class ErrorSerializer(serializers.Serializer):
    """The body of every 4xx answer."""

    code = serializers.ChoiceField(
        choices=ERROR_CODE_CHOICES,
        help_text="A stable, machine-readable code (`config.errors.ErrorCode`).",
    )
    message = serializers.CharField(help_text="A human-readable explanation.")
    fields = serializers.DictField(  # type: ignore[assignment] # the metaclass takes it
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per request field (dotted for nested input); empty if none.",
    )


_DESCRIPTIONS = {
    400: "Invalid input or refused by a market rule.",
    401: "No or invalid credentials.",
    403: "The token lacks the scope, or the role does not allow it.",
    404: "No such object, or not visible to you.",
    409: "Conflict: wrong state, or an Idempotency-Key reused with another body or in flight.",
    415: "Only application/json request bodies are accepted.",
    429: "Too many requests; see Retry-After.",
}

_EXAMPLE = OpenApiExample(
    "over capacity",
    value={
        "code": "over_capacity",
        "message": "This meter point can export at most 2.500 kWh in this interval (10 kW).",
        "fields": {"quantity_kwh": ["This meter point can export at most 2.500 kWh ..."]},
    },
    response_only=True,
    status_codes=["400"],
)


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Error responses for ``@extend_schema(responses=...)``.

    400 (a malformed query string, e.g. a NUL byte), 401 and 429 are possible everywhere.
    """
    wanted = sorted({400, 401, 429, *codes})
    return {
        code: OpenApiResponse(
            ErrorSerializer,
            description=_DESCRIPTIONS[code],
            examples=[_EXAMPLE] if code == 400 else [],
        )
        for code in wanted
    }


READ_ERRORS = (400, 403)
DETAIL_ERRORS = (403, 404)
WRITE_ERRORS = (400, 403, 404, 409, 415)

# What the server accepts as an Idempotency-Key (``marketplace.api.idempotency`` applies this
# very pattern): visible ASCII, no spaces, so it survives every HTTP stack unchanged.
IDEMPOTENCY_KEY_MAX_LENGTH = 255
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]{1,255}$"

IDEMPOTENCY_KEY = OpenApiParameter(
    name="Idempotency-Key",
    location=OpenApiParameter.HEADER,
    required=False,
    type={
        "type": "string",
        "minLength": 1,
        "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH,
        "pattern": IDEMPOTENCY_KEY_PATTERN,
    },
    description=(
        "A unique string of 1 to 255 visible ASCII characters, no spaces (a UUID is ideal). "
        "Retrying with the same key "
        "and body replays the first answer (with `Idempotent-Replayed: true`) and creates "
        "nothing; the same key with another body is a 409. Kept for 24 hours."
    ),
)


# Statement months the calendar can express with a month's end in every time zone.
FIRST_YEAR, LAST_YEAR = 2000, 9000
# A day in those years, YYYY-MM-DD (the statistics' first_day and last_day).
DAY_PATTERN = r"^(?:[2-8]\d{3}|9000)-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])$"
STATEMENT_MONTH = [
    OpenApiParameter(
        name="year", location=OpenApiParameter.PATH, required=True,
        type={"type": "integer", "minimum": FIRST_YEAR, "maximum": LAST_YEAR},
    ),
    OpenApiParameter(
        name="month", location=OpenApiParameter.PATH, required=True,
        type={"type": "integer", "minimum": 1, "maximum": 12},
    ),
]  # fmt: skip


def responses(ok: Any, *codes: int, status: int = 200) -> dict[int, Any]:
    """The success response plus the given error responses."""
    return {status: ok, **errors(*codes)}


class DecimalInputField(OpenApiSerializerFieldExtension):
    """A decimal as the API reads and writes it: a string in the field's own pattern.

    spectacular's pattern for a DecimalField lets "" and "-." through, and states no sign; this
    is the pattern ``DecimalInput`` itself applies (``config.fields.decimal_pattern``).
    """

    target_class = "config.fields.DecimalInput"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        field = self.target
        return {"type": "string", "format": "decimal", "pattern": field.pattern}


class TextFieldSchema(OpenApiSerializerFieldExtension):
    """Text as ``TextField`` takes it: its lengths, and not only whitespace unless blank is fine."""

    target_class = "marketplace.api.serializers.TextField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        from marketplace.api.serializers import NOT_ONLY_SPACE

        field = self.target
        schema: dict[str, Any] = {"type": "string"}
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
        if not field.allow_blank:
            schema.update(minLength=1, pattern=NOT_ONLY_SPACE)
        return schema


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents `Authorization: Bearer <personal access token>`."""

    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A personal access token (`pgt_...`) created on the account page, with scopes "
                "`read`, `trade`, `meter` and (managers) `manage`."
            ),
        }


# OpenAPI links: what a client does next with what an operation answered, by operation id.
# schemathesis's stateful phase follows them (create a posting, then read, modify, cancel it).
_ID = "$response.body#/id"
LINKS: dict[tuple[str, str], dict[str, dict[str, str]]] = {
    ("postings_create", "201"): {
        target: {"id": _ID}
        for target in ("postings_retrieve", "postings_modify", "postings_cancel", "postings_bids")
    },
    ("postings_cancel", "200"): {"postings_retrieve": {"id": _ID}},
    ("postings_modify", "200"): {"postings_retrieve": {"id": _ID}, "postings_cancel": {"id": _ID}},
    ("bids_create", "201"): {
        target: {"id": _ID} for target in ("bids_retrieve", "bids_modify", "bids_withdraw")
    },
    ("bids_withdraw", "200"): {"bids_retrieve": {"id": _ID}},
    ("bids_accept", "201"): {"trades_retrieve": {"id": _ID}},
    ("meter_points_create", "201"): {"meter_points_retrieve": {"id": _ID}},
}


def _list_bounds() -> dict[tuple[str, str], dict[str, int]]:
    """Lists of nested objects (``many=True``), whose bounds spectacular does not carry over."""
    from marketplace.ledger.services.readings import MAX_ROWS

    return {("ReadingsUploadRequest", "readings"): {"minItems": 1, "maxItems": MAX_ROWS}}


# Objects whose serializer requires one of two fields (``validate``): said with ``anyOf``.
ONE_OF_REQUIRED = {"ReadingInputRequest": ("interval", "interval_start")}


def postprocess_constraints(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Constraints the views enforce that no serializer field carries, and the links between
    operations (a spectacular hook).

    Path ids are database ids (1 to the bigint's maximum: a larger one is a 404 like any
    missing id); a query parameter given empty is refused (``ApiView.initial``), so every
    string parameter has a minimum length of 1.
    """
    from marketplace.api.serializers import MAX_ID

    components = result.get("components", {}).get("schemas", {})
    for (component, name), bounds in _list_bounds().items():
        components[component]["properties"][name].update(bounds)
    for component, names in ONE_OF_REQUIRED.items():
        components[component]["anyOf"] = [{"required": [name]} for name in names]
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                links = LINKS.get((operation.get("operationId", ""), status))
                if links:
                    response["links"] = {
                        target: {"operationId": target, "parameters": parameters}
                        for target, parameters in links.items()
                    }
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if parameter["in"] == "path" and schema.get("type") == "integer":
                    schema.setdefault("minimum", 1)
                    schema.setdefault("maximum", MAX_ID)
                if parameter["in"] == "path" and schema.get("type") == "string":
                    # Django's <slug:...> converter: anything else is not this path at all.
                    schema.setdefault("pattern", r"^[-a-zA-Z0-9_]+$")
                if parameter["in"] == "query" and schema.get("type") == "string":
                    schema.setdefault("minLength", 1)
    return result
