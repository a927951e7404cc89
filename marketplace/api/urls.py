"""URL map of the API, version 1 (mounted at /api/v1/)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from marketplace.api import schema as _schema  # noqa: F401 - registers the bearer scheme
from marketplace.api import views
from marketplace.api.exceptions import error_body

app_name = "api"


@csrf_exempt  # an unknown path is a 404 for every method, never a CSRF page
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Unknown API paths answer in the API's error format, not with the site's HTML 404."""
    return JsonResponse(error_body("not_found", "No such API endpoint."), status=404)


urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("communities/", views.CommunityListView.as_view(), name="community-list"),
    path("communities/<slug:slug>/", views.CommunityDetailView.as_view(), name="community-detail"),
    path("communities/<slug:slug>/rules/", views.MarketRulesView.as_view(), name="market-rules"),
    path("intervals/", views.IntervalListView.as_view(), name="interval-list"),
    path("intervals/<int:pk>/", views.IntervalDetailView.as_view(), name="interval-detail"),
    path("intervals/<int:pk>/depth/", views.IntervalDepthView.as_view(), name="interval-depth"),
    path(
        "intervals/<int:pk>/grid-check/",
        views.IntervalGridCheckView.as_view(),
        name="interval-grid-check",
    ),
    path("board/", views.BoardView.as_view(), name="board"),
    path("postings/", views.PostingListView.as_view(), name="posting-list"),
    path("postings/<int:pk>/", views.PostingDetailView.as_view(), name="posting-detail"),
    path("postings/<int:pk>/cancel/", views.PostingCancelView.as_view(), name="posting-cancel"),
    path("postings/<int:pk>/bids/", views.PostingBidsView.as_view(), name="posting-bids"),
    path("bids/", views.BidListView.as_view(), name="bid-list"),
    path("bids/<int:pk>/", views.BidDetailView.as_view(), name="bid-detail"),
    path("bids/<int:pk>/withdraw/", views.BidWithdrawView.as_view(), name="bid-withdraw"),
    path("bids/<int:pk>/accept/", views.BidAcceptView.as_view(), name="bid-accept"),
    path("bids/<int:pk>/reject/", views.BidRejectView.as_view(), name="bid-reject"),
    path("trades/", views.TradeListView.as_view(), name="trade-list"),
    path("trades/<int:pk>/", views.TradeDetailView.as_view(), name="trade-detail"),
    path("meter-points/", views.MeterPointListView.as_view(), name="meter-point-list"),
    path("meter-points/<int:pk>/", views.MeterPointDetailView.as_view(), name="meter-point-detail"),
    path("meter-readings/", views.MeterReadingListView.as_view(), name="meter-reading-list"),
    path("settlements/", views.SettlementListView.as_view(), name="settlement-list"),
    path("statements/<slug:slug>/", views.StatementIndexView.as_view(), name="statement-index"),
    path(
        "statements/<slug:slug>/<int:year>/<int:month>/",
        views.StatementMonthView.as_view(),
        name="statement-month",
    ),
    path("statistics/", views.StatisticsView.as_view(), name="statistics"),
    re_path(r"^(?P<rest>[\s\S]*)$", not_found),  # [\s\S]: paths may hold newlines; reversible
]
