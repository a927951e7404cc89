"""Limit/offset pagination with bounds the schema states and the server enforces.

DRF's own pagination falls back to the default for a ``limit`` it cannot read and clamps one
above the maximum; here a value outside what the schema says is a 400 naming the parameter,
so a client's typo is not silently a different page.
"""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

from config.errors import ApplicationError, ErrorCode

# SQLite and PostgreSQL refuse OFFSETs beyond 64 bits; nobody pages that far anyway.
MAX_OFFSET = 10**9


def _bounded(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # ASCII digits only, as the schema's integer: int() takes " 5", "+5" and other digits.
    digits = raw.isascii() and raw.isdigit()
    if not digits or not low <= int(raw) <= high:
        code = ErrorCode.NOT_AN_INTEGER if not digits else ErrorCode.MIN_VALUE
        if digits and int(raw) > high:
            code = ErrorCode.MAX_VALUE
        raise ApplicationError(
            code, f"Give {name} as a whole number from {low} to {high}.", field=name
        )
    return int(raw)


class ApiPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500

    def get_limit(self, request: Request) -> int:
        return _bounded(request, self.limit_query_param, default=50, low=1, high=self.max_limit)

    def get_offset(self, request: Request) -> int:
        return _bounded(request, self.offset_query_param, default=0, low=0, high=MAX_OFFSET)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": self.max_limit, "default": 50},
            self.offset_query_param: {"minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters
