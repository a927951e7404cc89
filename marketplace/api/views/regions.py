"""Regions and what their markets traded between communities (read-only)."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from marketplace.api import filters, schema
from marketplace.api import serializers as s
from marketplace.api.selectors import visible_region_intervals, visible_regions
from marketplace.api.views.base import ApiView, FilteredListView
from marketplace.models import Region, RegionInterval


class RegionListView(ApiView):
    serializer_class = s.RegionSerializer
    model = Region

    def visible_queryset(self, user: User) -> QuerySet[Region]:
        return visible_regions(user=user)

    @extend_schema(
        operation_id="regions_list",
        summary="Regions of the communities whose market data you may read, with their rules",
        responses=schema.responses(s.RegionSerializer(many=True), 403), tags=["market"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        return self.paginated(self.get_queryset(), s.RegionSerializer)


class RegionIntervalListView(FilteredListView):
    serializer_class = s.RegionIntervalSerializer
    filterset_class = filters.RegionIntervalFilter
    model = RegionInterval

    def visible_queryset(self, user: User) -> QuerySet[RegionInterval]:
        return visible_region_intervals(user=user)

    @extend_schema(
        operation_id="region_intervals_list",
        summary="Each region period: every community's residual, the trades between "
        "communities and their prices, newest first",
        responses=schema.responses(s.RegionIntervalSerializer(many=True), *schema.READ_ERRORS),
        tags=["market"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        return self.list(request)
