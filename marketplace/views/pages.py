"""The prosumer's dashboard and trades pages, and the short links /dashboard/, /board/, /trades/.

Balance and statements come from the ledger app's selectors; everything else from the market's
selectors. The short links send a member to their community, and anyone else to a page that
says what state their application is in.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts import permissions
from accounts.models import MembershipStatus
from config.csv_export import csv_writer
from marketplace.ledger.selectors import member_balance
from marketplace.models import BidStatus, PostingStatus
from marketplace.selectors.board import (
    intervals_upcoming,
    my_bids,
    my_excluded_bids,
    my_excluded_postings,
    my_postings,
)
from marketplace.selectors.prosumer import (
    money_summary,
    my_loss_shares,
    my_trades_with_value,
    positions_per_interval,
    traded_per_day,
    traded_per_period,
)
from marketplace.services.rules import current_rules
from marketplace.views.charts import daily_chart, price_chart
from marketplace.views.common import (
    REFRESH_SECONDS,
    current_user,
    is_htmx,
    local_now,
    member_view,
)

UPCOMING_SHOWN = 6
OWN_ORDERS_SHOWN = 10
POSITION_HOURS_BACK = 12
POSITIONS_SHOWN = 16
CHART_DAYS = 7
TRADES_PER_PAGE = 50
CENT = Decimal("0.01")


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
    if not memberships and (permissions.is_regulator(user) or permissions.is_superuser(user)):
        # Regulators and operators do not trade: their pages are the dashboards.
        return redirect("oversight:index")
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
    today = local_now(community, now).date()
    days = traded_per_day(membership=membership, today=today, days=CHART_DAYS)
    # The live part alone for htmx's periodic refresh; the whole page otherwise.
    template = (
        "marketplace/_dashboard_live.html" if is_htmx(request) else "marketplace/dashboard.html"
    )
    return render(
        request,
        template,
        {
            "refresh_seconds": REFRESH_SECONDS,
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
            "summary": money_summary(membership=membership, today=today),
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
    community = member.community
    today = local_now(community, timezone.now()).date()
    return render(
        request,
        "marketplace/trades.html",
        {
            "member": member,
            "community": community,
            "membership": member.membership,
            "page": page,
            "currency": community.currency,
            "balance": member_balance(membership=member.membership),
            "summary": money_summary(membership=member.membership, today=today),
            "loss_shares": my_loss_shares(membership=member.membership),
            "excluded": my_excluded_postings(membership=member.membership),
            "excluded_bids": my_excluded_bids(membership=member.membership),
        },
    )


TRADES_CSV_HEADER = [
    "interval_start_utc", "interval_end_utc", "interval_state", "side", "counterpart", "source",
    "agreed_kwh", "confirmed_kwh", "curtailed_kwh", "price_per_kwh", "currency", "value",
    "network_charge", "settled", "curtailment_reason", "by_autopilot",
]  # fmt: skip


@login_required
@require_GET
def trades_csv(request: HttpRequest, slug: str) -> StreamingHttpResponse | HttpResponse:
    """All the member's trades as CSV, streamed (a long history is never held in memory)."""
    member = member_view(request, slug)
    if isinstance(member, HttpResponse):
        return member
    membership, currency = member.membership, member.community.currency

    def rows() -> Iterator[list[str]]:
        yield TRADES_CSV_HEADER
        trades: Iterator[Any] = my_trades_with_value(membership=membership).iterator(
            chunk_size=1000
        )
        for trade in trades:  # annotated with pseudonyms, value and settled
            bought = trade.buyer_id == membership.pk
            yield [
                trade.interval.start.isoformat(),
                trade.interval.end.isoformat(),
                trade.interval.state,
                "bought" if bought else "sold",
                (trade.seller_pseudonym if bought else trade.buyer_pseudonym) or "outside grid",
                trade.source,
                f"{trade.quantity_kwh:f}",
                "" if trade.confirmed_kwh is None else f"{trade.confirmed_kwh:f}",
                f"{trade.curtailed_kwh:f}",
                f"{trade.price_per_kwh if bought else trade.seller_price_per_kwh:f}",
                currency,
                f"{Decimal(trade.value).quantize(CENT):f}",
                f"{Decimal(trade.network_charge).quantize(CENT):f}",
                "yes" if trade.settled else "no",
                trade.curtailment_reason,
                "yes" if trade.by_autopilot else "no",
            ]

    writer = csv_writer(_Echo())
    name = f"trades-{slug}-{membership.pseudonym}.csv"
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in rows()), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class _Echo:
    """A file-like object whose write returns the line, for a streamed csv.writer."""

    def write(self, value: str) -> str:
        return value


HISTORY_DAYS = 30
HISTORY_MONTHS = 12


@login_required
@require_GET
def history(request: HttpRequest, slug: str) -> HttpResponse:
    """Prices, energy bought and sold, and savings per day (30 days) and per month (12)."""
    member = member_view(request, slug)
    if isinstance(member, HttpResponse):
        return member
    community, membership = member.community, member.membership
    today = local_now(community, timezone.now()).date()
    days = traded_per_period(
        membership=membership, first=today - timedelta(days=HISTORY_DAYS - 1), last=today
    )
    first_month = _months_back(today, HISTORY_MONTHS - 1)
    months = traded_per_period(membership=membership, first=first_month, last=today, per="month")
    currency = community.currency
    rules = current_rules(community)
    return render(
        request,
        "marketplace/history.html",
        {
            "member": member,
            "community": community,
            "membership": membership,
            "days": days,
            "months": months,
            "day_chart": daily_chart(
                days, currency=currency, label_format="%a %d %b", tick_format="%d"
            ),
            "month_chart": daily_chart(
                months, currency=currency, label_format="%B %Y", tick_format="%b"
            ),
            "price_chart": price_chart(
                days,
                currency=currency,
                retail_tariff=rules.retail_tariff,
                feed_in_tariff=rules.feed_in_tariff,
            ),
            "currency": currency,
            "excluded": my_excluded_postings(
                membership=membership, since=timezone.now() - timedelta(days=HISTORY_DAYS)
            ),
            "excluded_bids": my_excluded_bids(
                membership=membership, since=timezone.now() - timedelta(days=HISTORY_DAYS)
            ),
        },
    )


def _months_back(today: date, count: int) -> date:
    index = today.year * 12 + today.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)
