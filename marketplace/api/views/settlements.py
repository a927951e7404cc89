"""Settlements and monthly statements."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Membership, User
from config.errors import ApplicationError, ErrorCode
from marketplace.api import filters, schema
from marketplace.api import serializers as s
from marketplace.api.selectors import own_settlements
from marketplace.api.views.base import ApiView, FilteredListView, request_user
from marketplace.ledger.models import Settlement
from marketplace.ledger.selectors import (
    member_balance,
    member_statement,
    statement_membership,
    statement_months,
)
from marketplace.models import Community


class SettlementListView(FilteredListView):
    serializer_class = s.SettlementSerializer
    filterset_class = filters.SettlementFilter
    model = Settlement

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return own_settlements(user=user)

    @extend_schema(
        operation_id="settlements_list", summary="How your intervals were settled",
        responses=schema.responses(s.SettlementSerializer(many=True), *schema.READ_ERRORS),
        tags=["settlement"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        return self.list(request)


class _StatementView(ApiView):
    def membership(self, slug: str) -> Membership:
        community = get_object_or_404(Community, slug=slug)
        query = self.validated_query(s.StatementQuerySerializer)
        return statement_membership(
            viewer=request_user(self.request),
            community=community,
            pseudonym=query.get("member") or None,
        )


class StatementIndexView(_StatementView):
    @extend_schema(
        operation_id="statements_index",
        summary="Your balance in a community and the months with statements",
        parameters=[s.StatementQuerySerializer],
        responses=schema.responses(s.StatementIndexSerializer, *schema.DETAIL_ERRORS),
        tags=["settlement"],
    )  # fmt: skip
    def get(self, request: Request, slug: str) -> Response:
        membership = self.membership(slug)
        data = {
            "community": slug,
            "pseudonym": membership.pseudonym,
            "balance": member_balance(membership=membership),
            "months": [{"year": y, "month": m} for y, m in statement_months(membership=membership)],
        }
        return Response(s.StatementIndexSerializer(data).data)


class StatementMonthView(_StatementView):
    @extend_schema(
        operation_id="statements_month",
        summary="Your monthly statement: each settled interval, totals and savings",
        parameters=[s.StatementQuerySerializer, *schema.STATEMENT_MONTH],
        responses=schema.responses(s.StatementSerializer, 400, 403, 404),
        tags=["settlement"],
    )  # fmt: skip
    def get(self, request: Request, slug: str, year: int, month: int) -> Response:
        if not schema.FIRST_YEAR <= year <= schema.LAST_YEAR or not 1 <= month <= 12:
            # Months near year 9999 have no end the calendar can express.
            raise ApplicationError(ErrorCode.NO_SUCH_MONTH, "No such month.", field="year")
        membership = self.membership(slug)
        statement = member_statement(membership=membership, year=year, month=month)
        return Response(s.StatementSerializer(statement).data)
