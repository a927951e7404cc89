"""OpenAPI pieces shared by every view: the error body, the error responses, bearer auth."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
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

IDEMPOTENCY_KEY = OpenApiParameter(
    name="Idempotency-Key",
    location=OpenApiParameter.HEADER,
    required=False,
    type=str,
    description=(
        "Any unique string up to 255 characters (a UUID is ideal). Retrying with the same key "
        "and body replays the first answer (with `Idempotent-Replayed: true`) and creates "
        "nothing; the same key with another body is a 409. Kept for 24 hours."
    ),
)


def responses(ok: Any, *codes: int, status: int = 200) -> dict[int, Any]:
    """The success response plus the given error responses."""
    return {status: ok, **errors(*codes)}


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
