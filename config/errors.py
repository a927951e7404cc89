"""The one domain error: a stable code, a human message and, where it applies, the field.

Services raise it; the API's exception handler turns it into a 400/403/404/409 with the code and
the field, and the pages show its message next to the field.
"""

from __future__ import annotations

from enum import StrEnum

from django.http import Http404


class ErrorCode(StrEnum):
    INVALID = "invalid"
    REQUIRED = "required"
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    CONFLICT = "conflict"
    NOT_APPROVED = "not_approved"
    SUSPENDED = "suspended"
    ALREADY_MEMBER = "already_member"
    INVALID_STATE = "invalid_state"
    INTERVAL_CLOSED = "interval_closed"
    OUT_OF_RANGE = "out_of_range"
    OVER_CAPACITY = "over_capacity"
    OWN_POSTING = "own_posting"
    OVER_ALLOCATED = "over_allocated"
    UNKNOWN_BUS = "unknown_bus"
    INVALID_NETWORK = "invalid_network"
    DUPLICATE = "duplicate"


# The HTTP status each code maps to; anything not listed is a 400.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.CONFLICT: 409,
    ErrorCode.INVALID_STATE: 409,
}


class ApplicationError(Exception):
    """A rule of the domain refused an action; nothing was written."""

    def __init__(self, code: ErrorCode, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ObjectNotFoundError(ApplicationError, Http404):
    """The object does not exist or is not the caller's to act on; the two look the same.

    An ``Http404`` as well, so a page that lets it through answers with the site's 404 page and
    the API with its ``not_found`` error (the field says which id).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(ErrorCode.NOT_FOUND, message, field=field)
