"""Reads of the board: the anonymised postings, the order book depth, a member's own activity.

Equal access: ``board_postings`` and ``order_book_depth`` return exactly the same data to every
member of a community (pseudonyms only, never who is behind them). Each selector runs a fixed
number of queries however many rows there are.

Decision on depth: the order book depth is the book of postings' *remaining* quantities by side
and limit price. Pending bids are not added: a bid is an answer to one posting and can only trade
against it, so counting both would show the same energy twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, DecimalField, ExpressionWrapper, F, Max, Min, Q, QuerySet, Sum

from accounts.models import Membership, MembershipStatus
from config.errors import ApplicationError, ErrorCode
from marketplace.models import (
    Bid,
    BidStatus,
    Community,
    Interval,
    IntervalState,
    Posting,
    PostingStatus,
    Side,
    Trade,
)

_REMAINING = ExpressionWrapper(
    F("quantity_kwh") - F("allocated_kwh"),
    output_field=DecimalField(max_digits=12, decimal_places=3),
)


@dataclass(frozen=True, slots=True)
class BoardPosting:
    """One posting as every member sees it."""

    id: int
    interval_id: int
    interval_start: datetime
    gate_closure_at: datetime
    side: str
    pseudonym: str
    quantity_kwh: Decimal
    remaining_kwh: Decimal
    limit_price_per_kwh: Decimal
    submitted_at: datetime
    pending_bids: int
    # The highest buy bid on an offer, the lowest sell bid on a request.
    best_bid_price_per_kwh: Decimal | None


_BOARD_FIELDS = (
    "id", "interval_id", "interval__start", "interval__gate_closure_at", "side",
    "membership__pseudonym", "quantity_kwh", "allocated_kwh", "limit_price_per_kwh",
    "submitted_at", "pending_bids", "best_buy_bid", "best_sell_bid",
)  # fmt: skip


def _check_viewer(community: Community, viewer: Membership) -> None:
    if viewer.community_id != community.pk or viewer.status != MembershipStatus.APPROVED:
        raise ApplicationError(
            ErrorCode.PERMISSION_DENIED,
            "Only approved members of this community can see its board.",
            field="community",
        )


def board_postings(
    *,
    community: Community,
    viewer: Membership,
    interval: Interval | None = None,
    side: str | None = None,
) -> list[BoardPosting]:
    """Open postings of the community's open intervals, best price first within each interval.

    One query. Raises ``permission_denied`` for a viewer who is not an approved member.
    """
    _check_viewer(community, viewer)
    pending = Q(bids__status=BidStatus.PENDING)
    postings = Posting.objects.filter(
        interval__community=community,
        interval__state=IntervalState.OPEN,
        status=PostingStatus.OPEN,
    )
    if interval is not None:
        postings = postings.filter(interval=interval)
    if side is not None:
        postings = postings.filter(side=side)
    rows = (
        postings.annotate(
            pending_bids=Count("bids", filter=pending),
            best_buy_bid=Max("bids__price_per_kwh", filter=pending),
            best_sell_bid=Min("bids__price_per_kwh", filter=pending),
        )
        .order_by("interval__start", "side", "limit_price_per_kwh", "submitted_at", "pk")
        .values(*_BOARD_FIELDS)
    )
    return [
        BoardPosting(
            id=row["id"],
            interval_id=row["interval_id"],
            interval_start=row["interval__start"],
            gate_closure_at=row["interval__gate_closure_at"],
            side=row["side"],
            pseudonym=row["membership__pseudonym"],
            quantity_kwh=row["quantity_kwh"],
            remaining_kwh=row["quantity_kwh"] - row["allocated_kwh"],
            limit_price_per_kwh=row["limit_price_per_kwh"],
            submitted_at=row["submitted_at"],
            pending_bids=row["pending_bids"],
            # Bidders on an offer are buyers (higher is better), on a request sellers.
            best_bid_price_per_kwh=(
                row["best_buy_bid"] if row["side"] == Side.SELL else row["best_sell_bid"]
            ),
        )
        for row in rows
    ]


def order_book_depth(*, interval: Interval) -> dict[str, list[tuple[Decimal, Decimal]]]:
    """The aggregate curves of the interval's open postings: ``(price, cumulative kWh)``.

    ``supply`` ascends in price (sellers willing to sell at that price or less), ``demand``
    descends (buyers willing to pay that price or more). Anonymous by construction. One query.
    """
    levels = (
        Posting.objects.filter(interval=interval, status=PostingStatus.OPEN)
        .values("side", "limit_price_per_kwh")
        .annotate(kwh=Sum(_REMAINING))
        .order_by()
    )
    by_side: dict[str, list[tuple[Decimal, Decimal]]] = {Side.SELL: [], Side.BUY: []}
    for level in levels:
        if level["kwh"] and level["kwh"] > 0:
            by_side[level["side"]].append((level["limit_price_per_kwh"], level["kwh"]))
    curves: dict[str, list[tuple[Decimal, Decimal]]] = {}
    for name, side, descending in (("supply", Side.SELL, False), ("demand", Side.BUY, True)):
        total = Decimal("0")
        curve = []
        for price, kwh in sorted(by_side[side], reverse=descending):
            total += kwh
            curve.append((price, total))
        curves[name] = curve
    return curves


def my_postings(*, membership: Membership, interval: Interval | None = None) -> QuerySet[Posting]:
    """The member's own postings, newest interval first, with their pending bid counts."""
    postings = Posting.objects.filter(membership=membership)
    if interval is not None:
        postings = postings.filter(interval=interval)
    return (
        postings.select_related("interval", "meter_point")
        .annotate(pending_bids=Count("bids", filter=Q(bids__status=BidStatus.PENDING)))
        .order_by("-interval__start", "-submitted_at", "-pk")
    )


def my_excluded_postings(
    *, membership: Membership, since: datetime | None = None, limit: int = 50
) -> list[Posting]:
    """The member's own postings clearing left out (``excluded``, with the reason), newest
    interval first; from intervals starting at ``since`` or later when given."""
    postings = Posting.objects.filter(membership=membership, status=PostingStatus.EXCLUDED)
    if since is not None:
        postings = postings.filter(interval__start__gte=since)
    return list(
        postings.select_related("interval", "meter_point").order_by(
            "-interval__start", "-submitted_at", "-pk"
        )[:limit]
    )


def my_excluded_bids(
    *, membership: Membership, since: datetime | None = None, limit: int = 50
) -> list[Bid]:
    """The member's own bids clearing left out (``excluded``, with the reason), newest interval
    first; from intervals starting at ``since`` or later when given."""
    bids = Bid.objects.filter(membership=membership, status=BidStatus.EXCLUDED)
    if since is not None:
        bids = bids.filter(posting__interval__start__gte=since)
    return list(
        bids.select_related("posting", "posting__interval", "meter_point").order_by(
            "-posting__interval__start", "-submitted_at", "-pk"
        )[:limit]
    )


def bids_on_my_posting(*, membership: Membership, posting: Posting) -> QuerySet[Bid]:
    """The bids on one of the member's postings, best first, with the bidders' pseudonyms."""
    if posting.membership_id != membership.pk:
        raise ApplicationError(
            ErrorCode.PERMISSION_DENIED, "This is not your posting.", field="posting"
        )
    order = "-price_per_kwh" if posting.side == Side.SELL else "price_per_kwh"
    return (
        Bid.objects.filter(posting=posting)
        .annotate(pseudonym=F("membership__pseudonym"))
        .order_by(order, "submitted_at", "pk")
    )


def my_bids(*, membership: Membership, interval: Interval | None = None) -> QuerySet[Bid]:
    """The member's own bids with their postings and intervals."""
    bids = Bid.objects.filter(membership=membership)
    if interval is not None:
        bids = bids.filter(posting__interval=interval)
    return bids.select_related("posting", "posting__interval", "meter_point").order_by(
        "-posting__interval__start", "-submitted_at", "-pk"
    )


def my_trades(*, membership: Membership, interval: Interval | None = None) -> QuerySet[Trade]:
    """Trades where the member buys or sells, with the counterpart's pseudonym only."""
    trades = Trade.objects.filter(Q(buyer=membership) | Q(seller=membership))
    if interval is not None:
        trades = trades.filter(interval=interval)
    return (
        trades.select_related("interval")
        .annotate(
            buyer_pseudonym=F("buyer__pseudonym"),
            seller_pseudonym=F("seller__pseudonym"),
        )
        .order_by("-interval__start", "source", "sequence")
    )


def intervals_upcoming(*, community: Community, now: datetime) -> QuerySet[Interval]:
    """Intervals not yet over, soonest first, with open posting counts and open kWh per side."""
    open_posting = Q(postings__status=PostingStatus.OPEN)
    return (
        Interval.objects.filter(community=community, end__gt=now)
        .select_related("rules")
        .annotate(
            open_postings=Count("postings", filter=open_posting),
            offered_kwh=Sum(
                F("postings__quantity_kwh") - F("postings__allocated_kwh"),
                filter=open_posting & Q(postings__side=Side.SELL),
            ),
            requested_kwh=Sum(
                F("postings__quantity_kwh") - F("postings__allocated_kwh"),
                filter=open_posting & Q(postings__side=Side.BUY),
            ),
        )
        .order_by("start")
    )
