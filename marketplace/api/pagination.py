"""Limit/offset pagination with bounds, so no `limit` or `offset` can overflow a query."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

MAX_OFFSET = 10**9


class ApiPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500

    def get_offset(self, request: Request) -> int:
        # SQLite and PostgreSQL refuse OFFSETs beyond 64 bits; nobody pages that far anyway.
        return min(super().get_offset(request), MAX_OFFSET)
