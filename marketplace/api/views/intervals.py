"""Delivery intervals, their order book depth and their grid check."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from config.errors import ApplicationError, ErrorCode
from grid.selectors import grid_check_result_get
from marketplace.api import filters, schema
from marketplace.api import serializers as s
from marketplace.api.selectors import visible_intervals
from marketplace.api.views.base import ApiView, FilteredListView
from marketplace.models import Interval
from marketplace.selectors.board import order_book_depth


class IntervalListView(FilteredListView):
    serializer_class = s.IntervalSerializer
    filterset_class = filters.IntervalFilter
    model = Interval

    def visible_queryset(self, user: User) -> QuerySet[Interval]:
        return visible_intervals(user=user)

    @extend_schema(
        operation_id="intervals_list", summary="Intervals with their state and results",
        responses=schema.responses(s.IntervalSerializer(many=True), *schema.READ_ERRORS),
        tags=["market"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        return self.list(request)


class IntervalDetailView(ApiView):
    serializer_class = s.IntervalSerializer
    model = Interval

    def visible_queryset(self, user: User) -> QuerySet[Interval]:
        return visible_intervals(user=user)

    @extend_schema(
        operation_id="intervals_retrieve", summary="One interval with its state and results",
        responses=schema.responses(s.IntervalSerializer, *schema.DETAIL_ERRORS), tags=["market"],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.IntervalSerializer(self.get_object()).data)


class IntervalDepthView(IntervalDetailView):
    @extend_schema(
        operation_id="intervals_depth",
        summary="The order book depth: cumulative open kWh by limit price",
        responses=schema.responses(s.DepthSerializer, *schema.DETAIL_ERRORS), tags=["market"],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        interval = self.get_object()
        curves = order_book_depth(interval=interval)
        data = {"interval": interval.pk}
        for name in ("supply", "demand"):
            data[name] = [{"price_per_kwh": p, "cumulative_kwh": q} for p, q in curves[name]]
        return Response(s.DepthSerializer(data).data)


class IntervalGridCheckView(IntervalDetailView):
    @extend_schema(
        operation_id="intervals_grid_check",
        summary="The interval's grid check result (anonymised); 404 until it has run",
        responses=schema.responses(s.GridCheckSerializer, *schema.DETAIL_ERRORS), tags=["market"],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        result = grid_check_result_get(interval=self.get_object())
        if result is None:
            raise ApplicationError(
                ErrorCode.NOT_FOUND, "The grid check of this interval has not run yet."
            )
        return Response(s.GridCheckSerializer(result).data)
