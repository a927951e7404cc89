"""Reads for a prosumer's own pages: position per interval, energy and savings per day, bids on
the member's open postings, and the member's trades with delivery state.

Every function is scoped to one membership and aggregates in the database with a fixed number
of queries, whatever the number of trades or intervals.
"""

from __future__ import annotations

import zoneinfo
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Case, DecimalField, ExpressionWrapper, F, Q, QuerySet, Sum, When
from django.db.models.functions import Coalesce, TruncDate

from accounts.models import Membership
from marketplace.ledger.models import EntryKind, LedgerEntry
from marketplace.models import Bid, BidStatus, NetworkChargeRule, PostingStatus, Side, Trade
from marketplace.selectors.board import my_trades
from units import CENT, KWH

ZERO = Decimal("0")


def _kwh(value: Decimal | None) -> Decimal:
    # SQLite's SUM drops the column's scale; quantised, every backend shows 1.500, not 1.5.
    return Decimal(value or 0).quantize(KWH)


_ENERGY = DecimalField(max_digits=12, decimal_places=3)
_MONEY = DecimalField(max_digits=20, decimal_places=7)
_PRICE = DecimalField(max_digits=14, decimal_places=8)
# What is delivered once the grid check confirmed the trade, what was agreed before that.
_DELIVERED_KWH = Coalesce(F("confirmed_kwh"), F("quantity_kwh"), output_field=_ENERGY)


@dataclass(frozen=True, slots=True)
class IntervalPosition:
    """The member's energy in one interval, from their trades (kWh)."""

    interval_id: int
    start: datetime
    state: str
    bought_kwh: Decimal  # from peers and the pool
    sold_kwh: Decimal  # to peers and the pool
    from_grid_kwh: Decimal  # bought from the outside grid through the community
    to_grid_kwh: Decimal  # sold to the outside grid through the community

    @property
    def net_kwh(self) -> Decimal:
        """Positive when the member takes energy in, negative when they give it out."""
        return self.bought_kwh + self.from_grid_kwh - self.sold_kwh - self.to_grid_kwh


def _member_trades(membership: Membership) -> QuerySet[Trade]:
    return Trade.objects.filter(Q(buyer=membership) | Q(seller=membership))


def positions_per_interval(
    *, membership: Membership, since: datetime, until: datetime
) -> list[IntervalPosition]:
    """The member's position in each interval starting in ``[since, until)`` that has a trade.

    One query. A trade with no counterpart member (null buyer or seller) is with the grid.
    """
    mine_buying = Q(buyer=membership)
    mine_selling = Q(seller=membership)
    rows = (
        _member_trades(membership)
        .filter(interval__start__gte=since, interval__start__lt=until)
        .values("interval_id", "interval__start", "interval__state")
        .annotate(
            bought=Sum(_DELIVERED_KWH, filter=mine_buying & Q(seller__isnull=False)),
            sold=Sum(_DELIVERED_KWH, filter=mine_selling & Q(buyer__isnull=False)),
            from_grid=Sum(_DELIVERED_KWH, filter=mine_buying & Q(seller__isnull=True)),
            to_grid=Sum(_DELIVERED_KWH, filter=mine_selling & Q(buyer__isnull=True)),
        )
        .order_by("interval__start")
    )
    return [
        IntervalPosition(
            interval_id=row["interval_id"],
            start=row["interval__start"],
            state=row["interval__state"],
            bought_kwh=_kwh(row["bought"]),
            sold_kwh=_kwh(row["sold"]),
            from_grid_kwh=_kwh(row["from_grid"]),
            to_grid_kwh=_kwh(row["to_grid"]),
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class DayFigures:
    """One local day of the member's peer trading."""

    day: date
    bought_kwh: Decimal
    sold_kwh: Decimal
    # Money saved against the grid: buying below the retail tariff, selling above feed-in.
    savings: Decimal


def traded_per_day(*, membership: Membership, today: date, days: int = 7) -> list[DayFigures]:
    """Peer-traded energy and savings against the grid tariffs, per day of the community's zone.

    ``days`` days ending with ``today`` (local), every day present even without trades. Savings
    compare each peer trade's price with the tariffs of the rules its interval ran under, before
    fees. One query.
    """
    zone = zoneinfo.ZoneInfo(membership.community.timezone)
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=zone)
    until = datetime.combine(today + timedelta(days=1), time.min, tzinfo=zone)
    buying = Q(buyer=membership)
    selling = Q(seller=membership)
    buy_saving = ExpressionWrapper(
        _DELIVERED_KWH * (F("interval__rules__retail_tariff") - F("price_per_kwh")),
        output_field=_MONEY,
    )
    sell_saving = ExpressionWrapper(
        _DELIVERED_KWH * (F("seller_price_per_kwh") - F("interval__rules__feed_in_tariff")),
        output_field=_MONEY,
    )
    rows = (
        _member_trades(membership)
        # Peer trades only: energy with the grid is at the tariff, so it saves nothing.
        .filter(
            buyer__isnull=False,
            seller__isnull=False,
            interval__start__gte=since,
            interval__start__lt=until,
        )
        .annotate(day=TruncDate("interval__start", tzinfo=zone))
        .values("day")
        .annotate(
            bought=Sum(_DELIVERED_KWH, filter=buying),
            sold=Sum(_DELIVERED_KWH, filter=selling),
            saved_buying=Sum(buy_saving, filter=buying),
            saved_selling=Sum(sell_saving, filter=selling),
        )
        .order_by("day")
    )
    by_day = {row["day"]: row for row in rows}
    figures = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row: dict[str, Any] = dict(by_day.get(day, {}))
        saved = (row.get("saved_buying") or ZERO) + (row.get("saved_selling") or ZERO)
        figures.append(
            DayFigures(
                day=day,
                bought_kwh=_kwh(row.get("bought")),
                sold_kwh=_kwh(row.get("sold")),
                # A figure to read, not a booking: rounded the way people round.
                savings=Decimal(saved).quantize(CENT, rounding=ROUND_HALF_UP),
            )
        )
    return figures


def bids_on_my_open_postings(
    *, membership: Membership, posting_ids: Iterable[int]
) -> dict[int, list[Bid]]:
    """Pending bids on the member's own open postings, best first, with bidder pseudonyms only.

    One query for all postings (the board shows them together); postings of other members are
    ignored, so a caller cannot read bids on someone else's posting through this.
    """
    bids = (
        Bid.objects.filter(
            posting_id__in=list(posting_ids),
            posting__membership=membership,
            posting__status=PostingStatus.OPEN,
            status=BidStatus.PENDING,
        )
        .select_related("posting")
        .annotate(pseudonym=F("membership__pseudonym"))
        .order_by("posting_id", "submitted_at", "pk")
    )
    grouped: dict[int, list[Bid]] = defaultdict(list)
    for bid in bids:
        grouped[bid.posting_id].append(bid)
    for posting_bids in grouped.values():
        # Best price first: the highest buy bid on an offer, the lowest sell bid on a request;
        # ties stay in submission order (the sort is stable).
        selling = posting_bids[0].posting.side == Side.SELL
        posting_bids.sort(key=lambda b: b.price_per_kwh, reverse=selling)
    return dict(grouped)


def my_trades_with_value(*, membership: Membership) -> QuerySet[Trade]:
    """``my_trades`` with ``value``: what the member pays for a purchase or receives for a sale
    (agreed kWh times their side's price), and ``network_charge``: what the member's side pays
    for the network on the confirmed kWh (the agreed kWh until confirmed) under the rules of the
    trade's interval, as settlement books it; computed in the database."""
    my_use = Case(
        When(buyer=membership, then=F("buyer_network_use")),
        default=F("seller_network_use"),
        output_field=_PRICE,
    )
    charge_per_kwh = Case(
        When(
            interval__rules__network_charge_rule=NetworkChargeRule.BY_USE,
            then=F("interval__rules__network_tariff_per_kwh") * Coalesce(my_use, ZERO),
        ),
        default=F("interval__rules__fee_per_kwh"),
        output_field=_PRICE,
    )
    return my_trades(membership=membership).annotate(
        value=Case(
            When(buyer=membership, then=F("quantity_kwh") * F("price_per_kwh")),
            default=F("quantity_kwh") * F("seller_price_per_kwh"),
            output_field=_MONEY,
        ),
        network_charge=ExpressionWrapper(
            Coalesce(F("confirmed_kwh"), F("quantity_kwh")) * charge_per_kwh, output_field=_MONEY
        ),
    )


@dataclass(frozen=True, slots=True)
class LossShare:
    interval_start: datetime
    kwh: Decimal
    amount: Decimal  # < 0: the member paid; > 0: credited (the member relieved the network)


def my_loss_shares(*, membership: Membership, limit: int = 20) -> list[LossShare]:
    """The member's settled shares of the network losses, latest interval first."""
    rows = (
        LedgerEntry.objects.filter(account__membership=membership, kind=EntryKind.LOSSES)
        .values("interval__start")
        .annotate(kwh=Sum("energy_kwh"), amount=Sum("amount"))
        .order_by("-interval__start")[:limit]
    )
    return [
        LossShare(row["interval__start"], _kwh(row["kwh"]), (row["amount"] or ZERO).quantize(CENT))
        for row in rows
    ]
