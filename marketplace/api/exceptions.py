"""The API's one exception handler: every 4xx has the body {"code", "message", "fields"}.

``fields`` maps a request field (dotted for nested input, e.g. ``readings.3.imported_kwh``) to
its messages; it is empty when the error is not about one field. Domain errors
(``ApplicationError``) keep their stable code and HTTP status; DRF's own errors keep DRF's code
(``not_authenticated``, ``permission_denied``, ``throttled``, ``parse_error``, ...).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import (
    RETRY_AFTER_SECONDS,
    UNAVAILABLE_MESSAGE,
    ApplicationError,
    ErrorCode,
    is_unavailable,
)

NON_FIELD = "non_field_errors"


# DRF's field codes that ErrorCode names differently; any other unlisted code is sent as
# ``invalid``, so every error body's code is one the schema lists.
_FRAMEWORK_CODES = {
    "null_characters_not_allowed": ErrorCode.FORBIDDEN_CHARACTER,
    "surrogate_characters_not_allowed": ErrorCode.FORBIDDEN_CHARACTER,
    "max_string_length": ErrorCode.MAX_VALUE,
    "overflow": ErrorCode.MAX_VALUE,
    "does_not_exist": ErrorCode.NOT_FOUND,
}


def listed_code(code: str) -> ErrorCode:
    """The ErrorCode for a code from a service or from the framework."""
    try:
        return ErrorCode(code)
    except ValueError:
        return _FRAMEWORK_CODES.get(code, ErrorCode.INVALID)


def error_body(
    code: str, message: str, fields: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    return {"code": listed_code(code).value, "message": message, "fields": fields or {}}


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as ``{"a.0.b": [messages]}``: one level, easy to show."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for sub, messages in _flatten(value, name).items():
                out.setdefault(sub, []).extend(messages)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix or NON_FIELD] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                if item:  # ListSerializer reports {} for the rows that were fine
                    name = f"{prefix}.{index}" if prefix else str(index)
                    for sub, messages in _flatten(item, name).items():
                        out.setdefault(sub, []).extend(messages)
    else:
        out[prefix or NON_FIELD] = [str(detail)]
    return out


def _first_code(codes: Any) -> str | None:
    if isinstance(codes, dict):
        for value in codes.values():
            found = _first_code(value)
            if found:
                return found
    elif isinstance(codes, list):
        for value in codes:
            found = _first_code(value)
            if found:
                return found
    elif codes:
        return str(codes)
    return None


def _validation_error(exc: exceptions.ValidationError) -> dict[str, Any]:
    fields = _flatten(exc.detail)
    non_field = fields.pop(NON_FIELD, [])
    message = " ".join(non_field) or "The request has invalid fields."
    if non_field and fields:
        fields[NON_FIELD] = non_field
    # "required" and similar tell a client more than a generic "invalid"; keep DRF's first.
    code = _first_code(exc.get_codes()) or ErrorCode.INVALID.value
    return error_body(code, message, fields)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render every known error in the one format; unknown exceptions stay 500s (and get fixed,
    rendered as JSON by ``config.middleware.ApiErrorsMiddleware``)."""
    if isinstance(exc, RequestDataTooBig | TooManyFieldsSent):
        message = "The request body is larger than the server accepts."
        return Response(error_body(ErrorCode.PAYLOAD_TOO_LARGE, message), status=413)
    if is_unavailable(exc):
        return Response(
            error_body(ErrorCode.SERVICE_UNAVAILABLE, UNAVAILABLE_MESSAGE),
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, ApplicationError):
        fields = {exc.field: [exc.message]} if exc.field else {}
        return Response(error_body(exc.code, exc.message, fields), status=exc.http_status)
    if isinstance(exc, DjangoValidationError):
        # A model or form validator reached from a service: still the client's input.
        messages = exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD: exc.messages}
        exc = exceptions.ValidationError(messages)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    # DRF's handler sets WWW-Authenticate, Retry-After and rolls back an atomic request.
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        response.data = _validation_error(exc)
    else:
        detail = exc.detail
        if isinstance(detail, dict | list):
            fields = _flatten(detail)
            message = " ".join(fields.pop(NON_FIELD, [])) or str(exc.default_detail)
            response.data = error_body(exc.default_code, message, fields)
        else:
            code = getattr(detail, "code", None) or exc.default_code
            response.data = error_body(str(code), str(detail))
    return response
