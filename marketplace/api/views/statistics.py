"""The community's market statistics."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.access import access_community
from marketplace.api import schema
from marketplace.api import serializers as s
from marketplace.api.selectors import market_statistics
from marketplace.api.views.base import ApiView, request_user


class StatisticsView(ApiView):
    pagination_class = None  # one row per community: short, and totals are not pages

    @extend_schema(
        operation_id="statistics",
        summary="Market figures per community: all for regulators, your own for members",
        parameters=[s.StatisticsQuerySerializer],
        responses=schema.responses(s.CommunityStatisticsSerializer(many=True), 400, 403, 404),
        tags=["market"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        query = self.validated_query(s.StatisticsQuerySerializer)
        community = None
        if "community" in query:
            community = access_community(request_user(request), query["community"])
        rows = market_statistics(
            user=request_user(request),
            community=community,
            first_day=query.get("first_day"),
            last_day=query.get("last_day"),
        )
        return Response(s.CommunityStatisticsSerializer(rows, many=True).data)
