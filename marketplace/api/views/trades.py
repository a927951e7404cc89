"""Trades and their deliveries."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from marketplace.api import filters, schema
from marketplace.api import serializers as s
from marketplace.api.selectors import history_memberships, own_trades
from marketplace.api.views.base import FilteredListView, request_user
from marketplace.models import Trade


class TradeListView(FilteredListView):
    serializer_class = s.TradeSerializer
    filterset_class = filters.TradeFilter
    model = Trade

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return own_trades(user=user)

    def membership_ids(self) -> set[int]:
        return {m.pk for m in history_memberships(user=request_user(self.request))}

    @extend_schema(
        operation_id="trades_list", summary="Your trades, with counterparts as pseudonyms",
        responses=schema.responses(s.TradeSerializer(many=True), *schema.READ_ERRORS),
        tags=["trading"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        return self.list(request, membership_ids=self.membership_ids())


class TradeDetailView(TradeListView):
    filter_backends = []

    @extend_schema(
        operation_id="trades_retrieve", summary="One of your trades",
        responses=schema.responses(s.TradeSerializer, *schema.DETAIL_ERRORS), tags=["trading"],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:  # type: ignore[override]
        context = {"membership_ids": self.membership_ids()}
        return Response(s.TradeSerializer(self.get_object(), context=context).data)
