"""The prosumer's dashboard and trades pages, and the short links /dashboard/, /board/, /trades/.

Balance and statements come from the ledger app's selectors; everything else from the market's
selectors. The short links send a member to their community, and anyone else to a page that
says what state their application is in.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts import permissions
from accounts.models import MembershipStatus
from marketplace.ledger.selectors import member_balance
from marketplace.models import BidStatus, PostingStatus
from marketplace.selectors.board import intervals_upcoming, my_bids, my_postings
from marketplace.selectors.prosumer import (
    my_loss_shares,
    my_trades_with_value,
    positions_per_interval,
    traded_per_day,
)
from marketplace.views.charts import daily_chart
from marketplace.views.common import current_user, local_now, member_view

UPCOMING_SHOWN = 6
OWN_ORDERS_SHOWN = 10
POSITION_HOURS_BACK = 12
POSITIONS_SHOWN = 16
CHART_DAYS = 7
TRADES_PER_PAGE = 50


def _short_link(request: HttpRequest, name: str) -> HttpResponse:
    """Send the caller to ``name`` in their (first) community, or explain why there is none."""
    user = current_user(request)
    memberships = list(
        permissions.visible_memberships(user)
        .filter(user=user)
        .select_related("community")
        .order_by("requested_at", "pk")
    )
    for membership in memberships:
        if permissions.can_read_own_history(user, membership.community):
            return redirect(name, slug=membership.community.slug)
    return render(
        request, "marketplace/not_yet_member.html", {"memberships": memberships}, status=200
    )


@login_required
@require_GET
def dashboard_home(request: HttpRequest) -> HttpResponse:
    return _short_link(request, "marketplace:dashboard")


@login_required
@require_GET
def board_home(request: HttpRequest) -> HttpResponse:
    return _short_link(request, "marketplace:board")


@login_required
@require_GET
def trades_home(request: HttpRequest) -> HttpResponse:
    return _short_link(request, "marketplace:trades")


@login_required
@require_GET
def dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    member = member_view(request, slug)
    if isinstance(member, HttpResponse):
        return member
    now = timezone.now()
    community, membership = member.community, member.membership
    # Other communities the caller belongs to, for the switcher.
    others = list(
        permissions.visible_memberships(member.user)
        .filter(user=member.user, status__in=permissions.HISTORY_STATUSES)
        .exclude(pk=membership.pk)
        .select_related("community")
    )
    upcoming = list(intervals_upcoming(community=community, now=now)[:UPCOMING_SHOWN])
    open_postings = list(
        my_postings(membership=membership).filter(status=PostingStatus.OPEN)[:OWN_ORDERS_SHOWN]
    )
    pending_bids = list(
        my_bids(membership=membership).filter(status=BidStatus.PENDING)[:OWN_ORDERS_SHOWN]
    )
    positions = positions_per_interval(
        membership=membership,
        since=now - timedelta(hours=POSITION_HOURS_BACK),
        until=now + timedelta(days=2),
    )[-POSITIONS_SHOWN:]
    days = traded_per_day(
        membership=membership, today=local_now(community, now).date(), days=CHART_DAYS
    )
    return render(
        request,
        "marketplace/dashboard.html",
        {
            "member": member,
            "community": community,
            "membership": membership,
            "others": others,
            "now": now,
            "upcoming": upcoming,
            "open_postings": open_postings,
            "pending_bids": pending_bids,
            "positions": positions,
            "balance": member_balance(membership=membership),
            "days": days,
            "week_kwh": sum((d.bought_kwh + d.sold_kwh for d in days), start=0),
            "week_savings": sum((d.savings for d in days), start=0),
            "chart": daily_chart(days, currency=community.currency),
            "currency": community.currency,
            "suspended": membership.status == MembershipStatus.SUSPENDED,
        },
    )


@login_required
@require_GET
def trades(request: HttpRequest, slug: str) -> HttpResponse:
    member = member_view(request, slug)
    if isinstance(member, HttpResponse):
        return member
    page = Paginator(my_trades_with_value(membership=member.membership), TRADES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "marketplace/trades.html",
        {
            "member": member,
            "community": member.community,
            "membership": member.membership,
            "page": page,
            "loss_shares": my_loss_shares(membership=member.membership),
            "currency": member.community.currency,
        },
    )
