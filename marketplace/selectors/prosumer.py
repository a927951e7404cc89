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

from django.db.models import (
    Case,
    Count,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    When,
)
from django.db.models.functions import Coalesce, TruncDate, TruncMonth

from accounts.models import Membership
from marketplace.ledger.models import EntryKind, LedgerEntry, Settlement
from marketplace.ledger.selectors import member_statement, member_statement_between
from marketplace.models import Bid, BidStatus, NetworkChargeRule, PostingStatus, Side, Trade
from marketplace.selectors.autopilot import trades_by_autopilot
from marketplace.selectors.board import my_trades
from units import CENT, KWH, PRICE

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


def _settled(membership: Membership) -> Exists:
    """Whether the member's side of a trade's interval is settled (the ledger has booked it)."""
    return Exists(
        Settlement.objects.filter(interval_id=OuterRef("interval_id"), membership=membership)
    )


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
class PeriodFigures:
    """One local day (or month) of the member's trading.

    Savings are money the member is better off than buying and selling only at the grid's
    tariffs. ``settled_savings`` is the statement's figure for the intervals settled in the
    period (metered energy, fees and imbalance included); ``provisional_savings`` estimates the
    peer trades of intervals not yet settled (agreed or confirmed kWh, before fees).
    """

    day: date  # the first day of the period
    bought_kwh: Decimal
    sold_kwh: Decimal
    settled_savings: Decimal
    provisional_savings: Decimal
    bought_value: Decimal = ZERO  # paid for peer purchases
    sold_value: Decimal = ZERO  # received for peer sales
    price_per_kwh: Decimal | None = None  # volume-weighted mean price of the peer trades

    @property
    def savings(self) -> Decimal:
        return self.settled_savings + self.provisional_savings


def _period_start(moment: date, per: str) -> date:
    return moment.replace(day=1) if per == "month" else moment


def _next_period(moment: date, per: str) -> date:
    if per == "month":
        return date(moment.year + (moment.month == 12), moment.month % 12 + 1, 1)
    return moment + timedelta(days=1)


def traded_per_period(
    *, membership: Membership, first: date, last: date, per: str = "day"
) -> list[PeriodFigures]:
    """Peer-traded energy, money and savings per local day or month from ``first`` to ``last``.

    Every period is present even without trades. Two queries for the trades and the ledger's
    statement of the whole range.
    """
    zone = zoneinfo.ZoneInfo(membership.community.timezone)
    first = _period_start(first, per)
    since = datetime.combine(first, time.min, tzinfo=zone)
    until = datetime.combine(_next_period(_period_start(last, per), per), time.min, tzinfo=zone)
    buying = Q(buyer=membership)
    selling = Q(seller=membership)
    unsettled = ~Q(_settled(membership))
    buy_saving = ExpressionWrapper(
        _DELIVERED_KWH * (F("interval__rules__retail_tariff") - F("price_per_kwh")),
        output_field=_MONEY,
    )
    sell_saving = ExpressionWrapper(
        _DELIVERED_KWH * (F("seller_price_per_kwh") - F("interval__rules__feed_in_tariff")),
        output_field=_MONEY,
    )
    truncate = TruncMonth if per == "month" else TruncDate
    rows = (
        _member_trades(membership)
        # Peer trades only: energy with the grid is at the tariff, so it saves nothing.
        .filter(
            buyer__isnull=False,
            seller__isnull=False,
            interval__start__gte=since,
            interval__start__lt=until,
        )
        .annotate(period=truncate("interval__start", tzinfo=zone))
        .values("period")
        .annotate(
            bought=Sum(_DELIVERED_KWH, filter=buying),
            sold=Sum(_DELIVERED_KWH, filter=selling),
            paid=Sum(_DELIVERED_KWH * F("price_per_kwh"), output_field=_MONEY, filter=buying),
            received=Sum(
                _DELIVERED_KWH * F("seller_price_per_kwh"), output_field=_MONEY, filter=selling
            ),
            saved_buying=Sum(buy_saving, filter=buying & unsettled),
            saved_selling=Sum(sell_saving, filter=selling & unsettled),
        )
        .order_by("period")
    )
    by_period: dict[date, dict[str, Any]] = {}
    for found in rows:
        period = found["period"]
        by_period[period.date() if isinstance(period, datetime) else period] = dict(found)
    settled: dict[date, Decimal] = defaultdict(Decimal)
    statement = member_statement_between(membership=membership, start=since, end=until)
    for statement_row in statement.rows:
        key = _period_start(statement_row.interval_start.astimezone(zone).date(), per)
        settled[key] += statement_row.total - statement_row.grid_only
    figures = []
    period = first
    while period <= last:
        row = by_period.get(period, {})
        provisional = (row.get("saved_buying") or ZERO) + (row.get("saved_selling") or ZERO)
        bought, sold = _kwh(row.get("bought")), _kwh(row.get("sold"))
        paid, received = Decimal(row.get("paid") or 0), Decimal(row.get("received") or 0)
        volume = bought + sold
        figures.append(
            PeriodFigures(
                day=period,
                bought_kwh=bought,
                sold_kwh=sold,
                settled_savings=settled.get(period, ZERO).quantize(CENT),
                # A figure to read, not a booking: rounded the way people round.
                provisional_savings=Decimal(provisional).quantize(CENT, rounding=ROUND_HALF_UP),
                bought_value=paid.quantize(CENT, rounding=ROUND_HALF_UP),
                sold_value=received.quantize(CENT, rounding=ROUND_HALF_UP),
                price_per_kwh=((paid + received) / volume).quantize(PRICE) if volume else None,
            )
        )
        period = _next_period(period, per)
    return figures


def traded_per_day(*, membership: Membership, today: date, days: int = 7) -> list[PeriodFigures]:
    """``days`` local days ending with ``today``: the dashboard's chart."""
    return traded_per_period(
        membership=membership, first=today - timedelta(days=days - 1), last=today
    )


@dataclass(frozen=True, slots=True)
class MoneySummary:
    """The member's money in one place, for the dashboard and My trades alike.

    ``month_*`` are the current month's statement (settled intervals only); ``provisional_*``
    are the member's trades in intervals not settled yet, valued at their delivered (or, before
    the grid check, agreed) kWh: what will move at settlement if the meters agree.
    """

    year: int
    month: int
    month_total: Decimal
    month_savings: Decimal
    provisional_trades: int
    provisional_net: Decimal  # received minus paid
    provisional_savings: Decimal  # peer trades only, before fees


def money_summary(*, membership: Membership, today: date) -> MoneySummary:
    statement = member_statement(membership=membership, year=today.year, month=today.month)
    buying, selling = Q(buyer=membership), Q(seller=membership)
    peer = Q(buyer__isnull=False, seller__isnull=False)
    row = (
        _member_trades(membership)
        .exclude(_settled(membership))
        .aggregate(
            trades=Count("pk"),
            paid=Sum(_DELIVERED_KWH * F("price_per_kwh"), output_field=_MONEY, filter=buying),
            received=Sum(
                _DELIVERED_KWH * F("seller_price_per_kwh"), output_field=_MONEY, filter=selling
            ),
            saved_buying=Sum(
                _DELIVERED_KWH * (F("interval__rules__retail_tariff") - F("price_per_kwh")),
                output_field=_MONEY,
                filter=buying & peer,
            ),
            saved_selling=Sum(
                _DELIVERED_KWH * (F("seller_price_per_kwh") - F("interval__rules__feed_in_tariff")),
                output_field=_MONEY,
                filter=selling & peer,
            ),
        )
    )
    net = Decimal(row["received"] or 0) - Decimal(row["paid"] or 0)
    saved = Decimal(row["saved_buying"] or 0) + Decimal(row["saved_selling"] or 0)
    return MoneySummary(
        year=today.year,
        month=today.month,
        month_total=statement.total,
        month_savings=statement.savings,
        provisional_trades=row["trades"],
        provisional_net=net.quantize(CENT, rounding=ROUND_HALF_UP),
        provisional_savings=saved.quantize(CENT, rounding=ROUND_HALF_UP),
    )


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
    """``my_trades`` with ``value``: what the member pays for a purchase or receives for a sale,
    computed in the database: the delivered kWh (agreed kWh before the grid check) times their
    side's price, so a trade curtailed to 0 kWh is worth nothing; ``settled`` whether the
    member's side of its interval is settled; and ``network_charge``: what the member's side pays
    for the network on the confirmed kWh (the agreed kWh until confirmed) under the rules of the
    trade's interval, as settlement books it; ``by_autopilot`` whether the member's side came
    from their autopilot's posting."""
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
        settled=_settled(membership),
        by_autopilot=trades_by_autopilot(membership=membership),
        value=Case(
            When(buyer=membership, then=_DELIVERED_KWH * F("price_per_kwh")),
            default=_DELIVERED_KWH * F("seller_price_per_kwh"),
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
