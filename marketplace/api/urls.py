"""URL map of the API, version 1 (mounted at /api/v1/)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from config.errors import ErrorCode
from marketplace.api import schema as _schema  # noqa: F401 - registers the bearer scheme
from marketplace.api.exceptions import error_body
from marketplace.api.views import (
    bids,
    board,
    communities,
    intervals,
    me,
    meter_points,
    postings,
    regions,
    settlements,
    statistics,
    trades,
)

app_name = "api"


@csrf_exempt  # an unknown path is a 404 for every method, never a CSRF page
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Unknown API paths answer in the API's error format, not with the site's HTML 404."""
    return JsonResponse(error_body(ErrorCode.NOT_FOUND, "No such API endpoint."), status=404)


urlpatterns = [
    path("me/", me.MeView.as_view(), name="me"),
    path("communities/", communities.CommunityListView.as_view(), name="community-list"),
    path(
        "communities/<slug:slug>/",
        communities.CommunityDetailView.as_view(),
        name="community-detail",
    ),
    path(
        "communities/<slug:slug>/rules/", communities.MarketRulesView.as_view(), name="market-rules"
    ),
    path("intervals/", intervals.IntervalListView.as_view(), name="interval-list"),
    path("intervals/<int:pk>/", intervals.IntervalDetailView.as_view(), name="interval-detail"),
    path("intervals/<int:pk>/depth/", intervals.IntervalDepthView.as_view(), name="interval-depth"),
    path(
        "intervals/<int:pk>/grid-check/",
        intervals.IntervalGridCheckView.as_view(),
        name="interval-grid-check",
    ),
    path("board/", board.BoardView.as_view(), name="board"),
    path("postings/", postings.PostingListView.as_view(), name="posting-list"),
    path("postings/<int:pk>/", postings.PostingDetailView.as_view(), name="posting-detail"),
    path("postings/<int:pk>/cancel/", postings.PostingCancelView.as_view(), name="posting-cancel"),
    path("postings/<int:pk>/bids/", postings.PostingBidsView.as_view(), name="posting-bids"),
    path("bids/", bids.BidListView.as_view(), name="bid-list"),
    path("bids/<int:pk>/", bids.BidDetailView.as_view(), name="bid-detail"),
    path("bids/<int:pk>/withdraw/", bids.BidWithdrawView.as_view(), name="bid-withdraw"),
    path("bids/<int:pk>/accept/", bids.BidAcceptView.as_view(), name="bid-accept"),
    path("bids/<int:pk>/reject/", bids.BidRejectView.as_view(), name="bid-reject"),
    path("trades/", trades.TradeListView.as_view(), name="trade-list"),
    path("trades/<int:pk>/", trades.TradeDetailView.as_view(), name="trade-detail"),
    path("meter-points/", meter_points.MeterPointListView.as_view(), name="meter-point-list"),
    path(
        "meter-points/managed/",
        meter_points.ManagedMeterPointListView.as_view(),
        name="meter-point-managed-list",
    ),
    path(
        "meter-points/<int:pk>/",
        meter_points.MeterPointDetailView.as_view(),
        name="meter-point-detail",
    ),
    path(
        "meter-points/<int:pk>/approve/",
        meter_points.MeterPointApproveView.as_view(),
        name="meter-point-approve",
    ),
    path(
        "meter-points/<int:pk>/reject/",
        meter_points.MeterPointRejectView.as_view(),
        name="meter-point-reject",
    ),
    path("meter-readings/", meter_points.MeterReadingListView.as_view(), name="meter-reading-list"),
    path(
        "meter-readings/<int:pk>/accept/",
        meter_points.MeterReadingAcceptView.as_view(),
        name="meter-reading-accept",
    ),
    path("settlements/", settlements.SettlementListView.as_view(), name="settlement-list"),
    path(
        "statements/<slug:slug>/", settlements.StatementIndexView.as_view(), name="statement-index"
    ),
    path(
        "statements/<slug:slug>/<int:year>/<int:month>/",
        settlements.StatementMonthView.as_view(),
        name="statement-month",
    ),
    path("statistics/", statistics.StatisticsView.as_view(), name="statistics"),
    path("regions/", regions.RegionListView.as_view(), name="region-list"),
    path(
        "region-intervals/",
        regions.RegionIntervalListView.as_view(),
        name="region-interval-list",
    ),
    re_path(r"^(?P<rest>[\s\S]*)$", not_found),  # [\s\S]: paths may hold newlines; reversible
]
