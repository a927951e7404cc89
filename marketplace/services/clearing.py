"""Clearing one interval at gate closure: the market part of the pipeline's clearing step.

Per the rules version the interval opened under:

* bilateral: on every posting that asked for it, the best remaining bids are accepted
  (``marketplace.clearing.bilateral_accept``), each a bilateral trade at the bid price; all other
  pending bids expire; postings close (``filled`` if fully traded, else ``closed``).
* pool: every open posting is an order in the community's pool, cleared by the rules' mechanism:
  - a double auction (``uniform`` k-double auction, ``pay-as-bid``, ``discriminatory``, McAfee's
    ``trade-reduction`` or ``order-trade-reduction``): matches are saved with ``source=pool``;
    what is left is traded with the outside grid through the community (``grid_residual``):
    buyers at the retail tariff, sellers at the feed-in tariff, ``source=grid`` with the grid
    side null;
  - a community pricing rule over quantities (``mid-market-rate``, ``supply-demand-ratio``,
    ``bill-sharing``; ``marketplace.clearing.community_pricing``): limits are ignored, buyers pay
    the rule's buy price and sellers receive its sell price. The matched kWh are saved as
    ``source=community`` trades between members (buyer and seller paired in time priority, the
    spread between the two prices belonging to the community's grid account, which it funds)
    and each member's share of the community's net import or export as a ``source=grid`` trade
    at the member's rule price. Prices are rounded to the 0.0001 tick in the community's favour
    (buy price up, sell price down), so the grid account never runs short of the bill;
    bill sharing is trued up to the month's prices at its end
    (``marketplace.ledger.services.true_up``).
* composite: the bilateral step first; then each posting's remaining quantity goes to the pool,
  together with the bids still pending at gate closure at their own limits (an auction pool
  only: a community rule ignores limits and so could not keep a bid's). A bid's pool fill marks
  it ``pooled``; what of it the pool does not fill lapses, since the grid would not honour its
  limit; then the grid residual of the postings.

In pool and composite markets every posting ends ``filled``: whatever peers did not take, the
grid did. The community fee is not in trade prices; settlement books it per peer-traded kWh.

One bad order never blocks an interval: a posting or pending bid the clearing cannot take (its
meter point not approved, or more than its approved capacity x the interval's hours: posting
refuses both, so only a row written some other way gets here) is left out with its reason
(``exclusion_reason``): the posting or the bid ends ``excluded`` with ``exclusion_reason`` set
(the bids on an excluded posting expire, through no fault of their own), and the rest of the
book clears.

The pipeline calls ``interval_clear`` inside its own transaction after a compare-and-set on the
interval's state, so it runs once per interval; as a second guard it refuses to run if the
interval already has pool, community or grid trades (a unique constraint on trade sequences is
the third).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np
from django.db.models import Count, F, Max, Q
from django.utils import timezone

from accounts.models import MeterPoint, MeterPointStatus
from config.errors import ApplicationError, ErrorCode
from config.sql import insert_rows, update_rows
from marketplace.clearing import (
    COMMUNITY_RULES,
    K_MECHANISMS,
    KWH_PLACES,
    PRICE_PLACES,
    Order,
    OrderColumns,
    bilateral_accept,
    clear_columns,
    price_decimal,
    quantity_decimal,
)
from marketplace.clearing import Side as ClearingSide
from marketplace.lock_objects import (
    lock_interval,
    lock_open_postings_of_interval,
    lock_pending_bids_of_interval,
)
from marketplace.models import (
    Bid,
    BidStatus,
    Interval,
    IntervalState,
    MarketRules,
    MarketStructure,
    Posting,
    PostingStatus,
    PricingRule,
    Trade,
    TradeSource,
)
from marketplace.services.bids import next_trade_sequence
from units import KWH, PRICE

ZERO = Decimal("0")
_POSTING_FIELDS = (
    "pk", "membership_id", "meter_point_id", "side", "quantity_kwh", "allocated_kwh",
    "limit_price_per_kwh", "auto_accept_best_bids", "submitted_at", "flexible",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClearingSummary:
    """What clearing one interval did, for the pipeline's timings and the manager's pages."""

    interval_id: int
    market_structure: str
    mechanism: str | None  # None for a purely bilateral market
    postings: int  # open postings at gate closure
    bids_accepted: int  # accepted automatically at gate closure
    bids_expired: int
    bilateral_trades: int
    pool_trades: int
    grid_trades: int
    bilateral_kwh: Decimal
    pool_kwh: Decimal
    clearing_price: Decimal | None  # the pool's uniform price, if it has one
    grid_import_kwh: Decimal  # bought from the grid for members
    grid_export_kwh: Decimal  # members' energy sold to the grid
    surplus: Decimal  # budget surplus of trade reduction (buyers paid more than sellers got)
    seconds: float
    excluded_postings: int = 0  # left out with their reason (``Posting.exclusion_reason``)
    excluded_bids: int = 0  # likewise (``Bid.exclusion_reason``)

    @property
    def peer_kwh(self) -> Decimal:
        return self.bilateral_kwh + self.pool_kwh


def order_key(kind: str, pk: int) -> str:
    """An order's id in the clearing book: ``p`` for a posting, ``b`` for a bid, then its pk.

    Zero-padded, so ids sort as the rows were inserted: the core breaks exact ties in time
    priority by id, and unpadded "p10" < "p9" would let the same orders clear differently
    depending on how many rows the database already held.
    """
    return f"{kind}{pk:019d}"


class _Open:
    """An open posting as clearing sees it (plain attributes: thousands are built per run)."""

    __slots__ = (
        "allocated",
        "auto_accept",
        "flexible",
        "limit",
        "membership_id",
        "meter_point_id",
        "pk",
        "quantity",
        "side",
        "submitted_at",
    )

    def __init__(self, row: tuple[Any, ...]) -> None:
        (
            self.pk,
            self.membership_id,
            self.meter_point_id,
            self.side,
            self.quantity,
            self.allocated,
            self.limit,
            self.auto_accept,
            self.submitted_at,
            self.flexible,
        ) = row

    @property
    def remaining(self) -> Decimal:
        remaining: Decimal = self.quantity - self.allocated
        return remaining

    def order(self, quantity: Decimal) -> Order:
        return Order(
            order_key("p", self.pk),
            ClearingSide(self.side),
            quantity,
            self.limit,
            self.submitted_at,
        )


class NewTrade(NamedTuple):
    """A trade clearing decided, as the row it inserts (``Trade``'s attribute names): thousands
    are written per interval, and a model instance each would cost more than the insert."""

    interval_id: int
    source: str
    sequence: int
    buyer_id: int | None
    seller_id: int | None
    buyer_meter_point_id: int | None
    seller_meter_point_id: int | None
    posting_id: int | None
    bid_id: int | None
    buyer_flexible: bool
    quantity_kwh: Decimal
    price_per_kwh: Decimal
    seller_price_per_kwh: Decimal
    orders_submitted_at: datetime
    created_at: datetime


def _trade(
    *,
    interval: Interval,
    source: str,
    sequence: int,
    buyer: _Open | None,
    seller: _Open | None,
    quantity: Decimal,
    price: Decimal,
    seller_price: Decimal,
    now: datetime,
    submitted_at: datetime,
    bid: tuple[Any, ...] | None = None,
    posting_id: int | None = None,
) -> NewTrade:
    return NewTrade(
        interval.pk,
        source,
        sequence,
        buyer.membership_id if buyer else None,
        seller.membership_id if seller else None,
        buyer.meter_point_id if buyer else None,
        seller.meter_point_id if seller else None,
        posting_id,
        bid[0] if bid else None,
        # A bid is never a flexible purchase; a buy posting says whether it is.
        bool(buyer is not None and buyer.flexible),
        quantity,
        price,
        seller_price,
        submitted_at,
        now,
    )


class _BidSide(_Open):
    """A pending bid dressed as the counterparty of its posting, for building trades."""

    def __init__(self, membership_id: int, meter_point_id: int) -> None:
        self.membership_id = membership_id
        self.meter_point_id = meter_point_id
        self.flexible = False


class _PooledBid(_Open):
    """A bid still pending at gate closure, as an order of a composite market's pool."""

    def __init__(self, row: tuple[Any, ...], side: str) -> None:
        (self.pk, _, self.membership_id, self.meter_point_id, self.quantity, self.limit,
         self.submitted_at, _) = row  # fmt: skip
        self.side = side
        self.allocated = ZERO
        self.auto_accept = False
        # A bid is never a flexible purchase (only a buy posting can say it is).
        self.flexible = False

    def order(self, quantity: Decimal) -> Order:
        return Order(
            order_key("b", self.pk),
            ClearingSide(self.side),
            quantity,
            self.limit,
            self.submitted_at,
        )


def _bilateral_step(
    interval: Interval,
    postings: dict[int, _Open],
    bids_by_posting: dict[int, list[tuple[Any, ...]]],
    first_sequence: int,
    now: datetime,
) -> tuple[list[NewTrade], list[Bid]]:
    """Auto-accept the best pending bids on postings that asked for it."""
    trades: list[NewTrade] = []
    accepted: list[Bid] = []
    sequence = first_sequence
    for posting_id, rows in bids_by_posting.items():
        posting = postings.get(posting_id)
        if posting is None or not posting.auto_accept or posting.remaining <= 0:
            continue
        bid_side = ClearingSide.BUY if posting.side == ClearingSide.SELL else ClearingSide.SELL
        by_id = {order_key("b", row[0]): row for row in rows}
        orders = [Order(key, bid_side, row[4], row[5], row[6]) for key, row in by_id.items()]
        selling = posting.side == ClearingSide.SELL
        for match in bilateral_accept(
            posting.order(posting.quantity), orders, remaining=posting.remaining
        ):
            row = by_id[match.buyer if selling else match.seller]
            counterpart = _BidSide(row[2], row[3])
            trades.append(
                _trade(
                    interval=interval,
                    source=TradeSource.BILATERAL,
                    sequence=sequence,
                    buyer=counterpart if selling else posting,
                    seller=posting if selling else counterpart,
                    quantity=match.quantity,
                    price=match.price,
                    seller_price=match.seller_price,
                    now=now,
                    submitted_at=max(posting.submitted_at, row[6]),
                    bid=row,
                    posting_id=posting.pk,
                )
            )
            sequence += 1
            posting.allocated += match.quantity
            accepted.append(
                Bid(
                    pk=row[0],
                    accepted_kwh=match.quantity,
                    status=BidStatus.ACCEPTED,
                    decided_at=now,
                )
            )
    return trades, accepted


@dataclass(slots=True)
class _Book:
    """What clearing reads under the interval's lock: the rules, open postings and pending bids."""

    interval: Interval
    rules: MarketRules
    postings: dict[int, _Open]
    bids_by_posting: dict[int, list[tuple[Any, ...]]]
    bilateral_sequence: int  # the next free sequence number of a bilateral trade
    excluded: dict[int, str] = field(default_factory=dict)  # posting id -> why it was left out
    excluded_bids: dict[int, str] = field(default_factory=dict)  # bid id -> why it was left out


@dataclass(slots=True)
class _Outcome:
    """What clearing decided, before anything is written."""

    bilateral: list[NewTrade]
    accepted: list[Bid]
    pool: list[NewTrade] = field(default_factory=list)
    grid: list[NewTrade] = field(default_factory=list)
    mechanism: str | None = None
    price: Decimal | None = None
    surplus: Decimal = ZERO
    grid_import: Decimal = ZERO
    grid_export: Decimal = ZERO
    pooled: bool = False  # every open posting went to the pool (and is filled)
    pooled_bids: list[Bid] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Connection:
    """What clearing needs to know of a meter point: approved, and its approved capacities."""

    approved: bool
    import_capacity_kw: Decimal
    export_capacity_kw: Decimal


def exclusion_reason(
    *, side: str, quantity_kwh: Decimal, connection: Connection | None, hours: Decimal
) -> str:
    """Why clearing cannot take an order (a plain function of plain data), or "" if it can.

    ``side`` is the order's own side (a bid on an offer buys). Only what posting would have
    refused reaches here, so any row written around the services is kept out, never trusted.
    """
    if connection is None or not connection.approved:
        return "Its meter point is not approved by the community manager."
    capacity_kw = (
        connection.export_capacity_kw
        if side == ClearingSide.SELL
        else connection.import_capacity_kw
    )
    limit = (capacity_kw * hours).quantize(KWH)
    if quantity_kwh > limit:
        return (
            f"{quantity_kwh} kWh is beyond its meter point's approved capacity for the interval "
            f"({capacity_kw} kW = {limit} kWh)."
        )
    return ""


def _exclude(locked: Interval, book: _Book, connections: dict[int, Connection]) -> None:
    """Take out of the book every order clearing cannot take (see ``exclusion_reason``)."""
    hours = locked.hours
    for pk, posting in list(book.postings.items()):
        reason = exclusion_reason(
            side=posting.side,
            quantity_kwh=posting.quantity,
            connection=connections.get(posting.meter_point_id),
            hours=hours,
        )
        if reason:
            book.excluded[pk] = reason
            del book.postings[pk]
            book.bids_by_posting.pop(pk, None)  # its pending bids expire with the others
    for posting_id, rows in book.bids_by_posting.items():
        # row: pk, posting, membership, meter point, quantity, price, submitted, posting side
        kept = []
        for row in rows:
            reason = exclusion_reason(
                side=ClearingSide.BUY if row[7] == ClearingSide.SELL else ClearingSide.SELL,
                quantity_kwh=row[4],
                connection=connections.get(row[3]),
                hours=hours,
            )
            if reason:
                book.excluded_bids[row[0]] = reason
            else:
                kept.append(row)
        book.bids_by_posting[posting_id] = kept


def _fetch(interval: Interval) -> _Book:
    """Lock the interval and read its book; refuse an open gate or a second clearing."""
    locked = lock_interval(interval.pk)
    if locked.state == IntervalState.OPEN:
        raise ApplicationError(
            ErrorCode.INVALID_STATE, "Close the interval's gate before clearing.", field="interval"
        )
    if Trade.objects.filter(
        interval=locked, source__in=(TradeSource.POOL, TradeSource.COMMUNITY, TradeSource.GRID)
    ).exists():
        raise ApplicationError(
            ErrorCode.CONFLICT, "This interval has been cleared already.", field="interval"
        )
    postings = {
        row[0]: _Open(row)
        for row in lock_open_postings_of_interval(locked.pk).values_list(*_POSTING_FIELDS)
    }
    bids_by_posting: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    sequence = 0
    if locked.rules.market_structure in (MarketStructure.BILATERAL, MarketStructure.COMPOSITE):
        for row in lock_pending_bids_of_interval(locked.pk).values_list(
            "pk", "posting_id", "membership_id", "meter_point_id", "quantity_kwh",
            "price_per_kwh", "submitted_at", "posting__side",
        ):  # fmt: skip
            bids_by_posting[row[1]].append(row)
        sequence = next_trade_sequence(locked.pk, TradeSource.BILATERAL)
    book = _Book(locked, locked.rules, postings, bids_by_posting, sequence)
    _exclude(locked, book, _connections_many([locked.pk]))
    return book


def _clear(book: _Book, now: datetime) -> _Outcome:
    """Run the rules' market structure over the book; reads and writes nothing."""
    interval, rules, postings = book.interval, book.rules, book.postings
    structure = rules.market_structure
    outcome = _Outcome(bilateral=[], accepted=[])
    if structure in (MarketStructure.BILATERAL, MarketStructure.COMPOSITE):
        outcome.bilateral, outcome.accepted = _bilateral_step(
            interval, postings, book.bids_by_posting, book.bilateral_sequence, now
        )
    if structure not in (MarketStructure.POOL, MarketStructure.COMPOSITE):
        return outcome
    outcome.pooled = True
    mechanism = outcome.mechanism = rules.clearing_mechanism
    parties: dict[str, _Open] = {
        order_key("p", p.pk): p for p in postings.values() if p.remaining > 0
    }
    if mechanism in COMMUNITY_RULES:
        _community_step(book, parties, outcome, now)
        return outcome
    if structure == MarketStructure.COMPOSITE:
        parties.update(_pending_bids(book, outcome))
    k = (
        rules.pricing_k
        if rules.pricing_rule == PricingRule.K_PRICING and mechanism in K_MECHANISMS
        else None
    )
    members = list(parties.values())
    columns = _order_columns(members, list(parties))
    matched = clear_columns(mechanism, columns, k=k)
    outcome.price = matched.price_decimal
    outcome.surplus = Decimal(
        int((matched.quantity * (matched.price - matched.seller_price)).sum())
    ).scaleb(-(KWH_PLACES + PRICE_PLACES))
    # Decimals only for what is written: once per distinct quantity and price of the trades.
    kwh = {q: quantity_decimal(q) for q in set(matched.quantity.tolist())}
    price_of = {
        t: price_decimal(t) for t in {*matched.price.tolist(), *matched.seller_price.tolist()}
    }
    for sequence, (b, s, q, price, seller_price) in enumerate(
        zip(matched.buyer.tolist(), matched.seller.tolist(), matched.quantity.tolist(),
            matched.price.tolist(), matched.seller_price.tolist(), strict=True),
        start=1,
    ):  # fmt: skip
        buyer, seller = members[b], members[s]
        outcome.pool.append(
            _trade(
                interval=interval,
                source=TradeSource.POOL,
                sequence=sequence,
                buyer=buyer,
                seller=seller,
                quantity=kwh[q],
                price=price_of[price],
                seller_price=price_of[seller_price],
                now=now,
                submitted_at=max(buyer.submitted_at, seller.submitted_at),
            )
        )
    filled = matched.filled(len(members)).tolist()
    outcome.pooled_bids = [
        Bid(pk=m.pk, accepted_kwh=quantity_decimal(f), status=BidStatus.POOLED, decided_at=now)
        for m, f in sorted(
            ((m, f) for m, f in zip(members, filled, strict=True) if isinstance(m, _PooledBid)),
            key=lambda pair: pair[0].pk,
        )
        if f > 0
    ]
    # What peers did not take goes to the grid, in input order (``grid_residual``'s rule) and
    # only for postings: a bid's limit stands, so its unfilled rest lapses.
    sequence = 0
    for m, total, f in zip(members, columns.quantity.tolist(), filled, strict=True):
        if total > f and not isinstance(m, _PooledBid):
            sequence += 1
            buying = m.side == ClearingSide.BUY
            tariff = rules.retail_tariff if buying else rules.feed_in_tariff
            left = quantity_decimal(total - f)
            _grid_trade(outcome, interval, sequence, m, buying, left, tariff, now)
    return outcome


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _order_columns(members: list[_Open], keys: list[str]) -> OrderColumns:
    """The pool's book as integer columns, converted once: remaining kWh and limits are exact
    multiples of 0.001 and 0.0001 (the database columns' places), so scaling is exact.

    The tiebreak among equal submission times is the order of the keys (``order_key``: bids
    before postings, then by pk), as the Decimal API would break it by id.
    """
    n = len(members)
    remaining = [m.quantity - m.allocated for m in members]
    limits = [m.limit for m in members]
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(np.array(keys, dtype=str), kind="stable")] = np.arange(n, dtype=np.int64)
    return OrderColumns(
        is_buy=np.fromiter((m.side == ClearingSide.BUY for m in members), np.bool_, count=n),
        quantity=np.fromiter(map(int, map(Decimal.scaleb, remaining, repeat(KWH_PLACES))),
                             np.int64, count=n),
        price=np.fromiter(map(int, map(Decimal.scaleb, limits, repeat(PRICE_PLACES))),
                          np.int64, count=n),
        submitted_us=np.fromiter(((m.submitted_at - _EPOCH) // _MICROSECOND for m in members),
                                 np.int64, count=n),
        tiebreak=rank,
    )  # fmt: skip


def _grid_trade(
    outcome: _Outcome,
    interval: Interval,
    sequence: int,
    member: _Open,
    buying: bool,
    quantity: Decimal,
    price: Decimal,
    now: datetime,
) -> None:
    if buying:
        outcome.grid_import += quantity
    else:
        outcome.grid_export += quantity
    outcome.grid.append(
        _trade(
            interval=interval,
            source=TradeSource.GRID,
            sequence=sequence,
            buyer=member if buying else None,
            seller=None if buying else member,
            quantity=quantity,
            price=price,
            seller_price=price,
            now=now,
            submitted_at=member.submitted_at,
            posting_id=member.pk,
        )
    )


def _pending_bids(book: _Book, outcome: _Outcome) -> dict[str, _Open]:
    """The bids the bilateral step left pending, as pool orders on the other side of their
    postings (a composite market's pool takes them at their own limits)."""
    accepted = {bid.pk for bid in outcome.accepted}
    pending: dict[str, _Open] = {}
    for rows in book.bids_by_posting.values():
        for row in rows:
            if row[0] not in accepted:
                side = ClearingSide.BUY if row[7] == ClearingSide.SELL else ClearingSide.SELL
                pending[order_key("b", row[0])] = _PooledBid(row, side)
    return pending


def _tick(price: Decimal | None, rounding: str) -> Decimal:
    return (price or ZERO).quantize(PRICE, rounding=rounding)


def _community_step(
    book: _Book, parties: dict[str, _Open], outcome: _Outcome, now: datetime
) -> None:
    """Price the postings' quantities by the rules' community pricing rule (module docstring)."""
    interval, rules = book.interval, book.rules
    settlement = COMMUNITY_RULES[rules.clearing_mechanism](
        [(key, ClearingSide(p.side), p.remaining) for key, p in parties.items()],
        retail=rules.retail_tariff,
        feed_in=rules.feed_in_tariff,
    )
    # In the community's favour, so what members pay always covers the community's bill.
    buy_price = _tick(settlement.buy_price, ROUND_CEILING)
    sell_price = _tick(settlement.sell_price, ROUND_FLOOR)
    # The matched kWh pair buyers with sellers in time priority; only who is paired with whom
    # depends on it, never a price or a quantity.
    by_time = sorted(
        settlement.members, key=lambda m: (parties[m.member_id].submitted_at, m.member_id)
    )
    buyers = [m for m in by_time if m.side == ClearingSide.BUY and m.peer_quantity > 0]
    sellers = [m for m in by_time if m.side == ClearingSide.SELL and m.peer_quantity > 0]
    left_b = [m.peer_quantity for m in buyers]
    left_s = [m.peer_quantity for m in sellers]
    i = j = 0
    sequence = 1
    while i < len(buyers) and j < len(sellers):
        buyer, seller = parties[buyers[i].member_id], parties[sellers[j].member_id]
        quantity = min(left_b[i], left_s[j])
        outcome.pool.append(
            _trade(
                interval=interval,
                source=TradeSource.COMMUNITY,
                sequence=sequence,
                buyer=buyer,
                seller=seller,
                quantity=quantity,
                price=buy_price,
                seller_price=sell_price,
                now=now,
                submitted_at=max(buyer.submitted_at, seller.submitted_at),
            )
        )
        sequence += 1
        left_b[i] -= quantity
        left_s[j] -= quantity
        if left_b[i] == 0:
            i += 1
        if left_s[j] == 0:
            j += 1
    sequence = 1
    for m in settlement.members:
        if m.grid_quantity > 0:
            buying = m.side == ClearingSide.BUY
            price = buy_price if buying else sell_price
            _grid_trade(
                outcome,
                interval,
                sequence,
                parties[m.member_id],
                buying,
                m.grid_quantity,
                price,
                now,
            )
            sequence += 1


def _write(book: _Book, outcome: _Outcome, now: datetime) -> int:
    """Save the outcome: bids decided, postings closed, trades created. Returns bids expired."""
    return _write_many([(book, outcome)], now)[book.interval.pk]


def _write_many(cleared: list[tuple[_Book, _Outcome]], now: datetime) -> dict[int, int]:
    """Save the outcomes of several intervals, each as ``_write`` describes, in a fixed number
    of statements whatever their number. Returns interval id -> bids expired."""
    ids = [book.interval.pk for book, _ in cleared]
    excluded = [
        (pk, PostingStatus.EXCLUDED, reason[:300])
        for book, _ in cleared
        for pk, reason in book.excluded.items()
    ]
    if excluded:
        # First, so the updates of the open postings below leave them alone.
        update_rows(Posting, ["status", "exclusion_reason"], excluded)
    excluded_bids = [
        (pk, BidStatus.EXCLUDED, reason[:300], now)
        for book, _ in cleared
        for pk, reason in book.excluded_bids.items()
    ]
    if excluded_bids:
        # Before the pending ones lapse below: these are out for a reason of their own.
        update_rows(Bid, ["status", "exclusion_reason", "decided_at"], excluded_bids)
    decided = [bid for _, outcome in cleared for bid in outcome.accepted + outcome.pooled_bids]
    update_rows(
        Bid,
        ["accepted_kwh", "status", "decided_at"],
        [(bid.pk, bid.accepted_kwh, bid.status, bid.decided_at) for bid in decided],
    )
    # Anything still pending lapses at gate closure (in a pool market there are none; in a
    # composite one, the bids the pool filled are ``pooled`` by now).
    pending = Bid.objects.filter(posting__interval_id__in=ids, status=BidStatus.PENDING)
    expired = dict.fromkeys(ids, 0)
    if len(ids) == 1:
        expired[ids[0]] = pending.update(status=BidStatus.EXPIRED, decided_at=now)
    else:
        expired.update(
            pending.order_by()
            .values("posting__interval_id")
            .annotate(n=Count("pk"))
            .values_list("posting__interval_id", "n")
        )
        if any(expired.values()):
            pending.update(status=BidStatus.EXPIRED, decided_at=now)
    pooled = [book.interval.pk for book, outcome in cleared if outcome.pooled]
    if pooled:
        # Peers or the grid took every kWh of every posting.
        Posting.objects.filter(interval_id__in=pooled, status=PostingStatus.OPEN).update(
            allocated_kwh=F("quantity_kwh"), status=PostingStatus.FILLED
        )
    unpooled = [book for book, outcome in cleared if not outcome.pooled]
    if unpooled:
        changed = [
            (p.pk, p.allocated, PostingStatus.FILLED if p.remaining == 0 else PostingStatus.CLOSED)
            for book in unpooled
            for p in book.postings.values()
            if p.allocated or p.remaining == 0
        ]
        update_rows(Posting, ["allocated_kwh", "status"], changed)
        Posting.objects.filter(
            interval_id__in=[book.interval.pk for book in unpooled], status=PostingStatus.OPEN
        ).update(status=PostingStatus.CLOSED)
    insert_rows(
        Trade,
        NewTrade._fields,
        [t for _, o in cleared for trades in (o.bilateral, o.pool, o.grid) for t in trades],
    )
    return expired


def _summary(book: _Book, outcome: _Outcome, expired: int, seconds: float) -> ClearingSummary:
    return ClearingSummary(
        interval_id=book.interval.pk,
        market_structure=book.rules.market_structure,
        mechanism=outcome.mechanism,
        postings=len(book.postings),
        bids_accepted=len(outcome.accepted),
        bids_expired=expired,
        bilateral_trades=len(outcome.bilateral),
        pool_trades=len(outcome.pool),
        grid_trades=len(outcome.grid),
        bilateral_kwh=sum((t.quantity_kwh for t in outcome.bilateral), ZERO),
        pool_kwh=sum((t.quantity_kwh for t in outcome.pool), ZERO),
        clearing_price=outcome.price,
        grid_import_kwh=outcome.grid_import,
        grid_export_kwh=outcome.grid_export,
        surplus=outcome.surplus,
        seconds=seconds,
        excluded_postings=len(book.excluded),
        excluded_bids=len(book.excluded_bids),
    )


def _fetch_many(intervals: list[Interval]) -> tuple[list[_Book], list[int]]:
    """``_fetch`` for several intervals the caller has locked (rules read alongside): their
    books read in a fixed number of queries. Returns the books and the ids refused (an open
    gate, or cleared already), which ``interval_clear`` would refuse with its error."""
    refused = {i.pk for i in intervals if i.state == IntervalState.OPEN}
    refused |= set(
        Trade.objects.filter(
            interval_id__in=[i.pk for i in intervals],
            source__in=(TradeSource.POOL, TradeSource.COMMUNITY, TradeSource.GRID),
        )
        .order_by()
        .values_list("interval_id", flat=True)
        .distinct()
    )
    taken = [i for i in intervals if i.pk not in refused]
    ids = [i.pk for i in taken]
    postings_of: dict[int, dict[int, _Open]] = {pk: {} for pk in ids}
    for interval_id, *row in (
        Posting.objects.filter(interval_id__in=ids, status=PostingStatus.OPEN)
        .order_by("pk")
        .select_for_update(of=("self",))
        .values_list("interval_id", *_POSTING_FIELDS)
    ):
        postings_of[interval_id][row[0]] = _Open(tuple(row))
    with_bids = [
        i.pk
        for i in taken
        if i.rules.market_structure in (MarketStructure.BILATERAL, MarketStructure.COMPOSITE)
    ]
    bids_of: dict[int, dict[int, list[tuple[Any, ...]]]] = {pk: defaultdict(list) for pk in ids}
    sequences: dict[int, int] = dict.fromkeys(ids, 0)
    if with_bids:
        for interval_id, *row in (
            Bid.objects.filter(posting__interval_id__in=with_bids, status=BidStatus.PENDING)
            .order_by("pk")
            .select_for_update(of=("self",))
            .values_list(
                "posting__interval_id", "pk", "posting_id", "membership_id", "meter_point_id",
                "quantity_kwh", "price_per_kwh", "submitted_at", "posting__side",
            )
        ):  # fmt: skip
            bids_of[interval_id][row[1]].append(tuple(row))
        last = dict(
            Trade.objects.filter(interval_id__in=with_bids, source=TradeSource.BILATERAL)
            .order_by()
            .values("interval_id")
            .annotate(m=Max("sequence"))
            .values_list("interval_id", "m")
        )
        sequences.update({pk: (last.get(pk) or 0) + 1 for pk in with_bids})
    connections = _connections_many(ids)
    books = []
    for interval in taken:
        book = _Book(
            interval, interval.rules, postings_of[interval.pk], bids_of[interval.pk],
            sequences[interval.pk],
        )  # fmt: skip
        _exclude(interval, book, connections)
        books.append(book)
    return books, sorted(refused)


def _connections_many(interval_ids: list[int]) -> dict[int, Connection]:
    """The meter points of the intervals' open postings and pending bids: one query with
    subqueries, since a list of 10,000 ids as parameters costs the driver a second to send."""
    postings = Posting.objects.filter(interval_id__in=interval_ids, status=PostingStatus.OPEN)
    bids = Bid.objects.filter(posting__interval_id__in=interval_ids, status=BidStatus.PENDING)
    return {
        pk: Connection(status == MeterPointStatus.APPROVED, imported, exported)
        for pk, status, imported, exported in MeterPoint.objects.filter(
            Q(pk__in=postings.values("meter_point_id")) | Q(pk__in=bids.values("meter_point_id"))
        )
        .order_by()
        .values_list("pk", "status", "import_capacity_kw", "export_capacity_kw")
    }


def intervals_clear(
    *, intervals: list[Interval], now: datetime
) -> tuple[dict[int, ClearingSummary], list[int]]:
    """``interval_clear`` for several intervals at once, inside the caller's transaction.

    The caller has locked the intervals (by ascending id) with their rules read alongside. The
    books of all of them are read in a fixed number of queries, each is cleared on its own by
    the rules' mechanism exactly as ``interval_clear`` clears it (the mechanisms are plain
    functions), and all outcomes are written together: one COPY of every trade, one statement
    per kind of posting and bid update. Returns (interval id -> summary, ids refused: an open
    gate or cleared already; ``interval_clear`` gives each its error).
    """
    started = time.perf_counter()
    books, refused = _fetch_many(intervals)
    cleared = [(book, _clear(book, now)) for book in books]
    expired = _write_many(cleared, now)
    seconds = (time.perf_counter() - started) / max(len(cleared), 1)
    summaries = {
        book.interval.pk: _summary(book, outcome, expired[book.interval.pk], seconds)
        for book, outcome in cleared
    }
    return summaries, refused


def interval_clear(*, interval: Interval, now: datetime | None = None) -> ClearingSummary:
    """Clear ``interval`` per its rules and save the trades; run inside the caller's transaction.

    Three steps: fetch the book under the interval's lock, clear it (no database), write the
    outcome. Raises ``ApplicationError``: ``invalid_state`` while the interval's gate is still
    open, ``conflict`` if it already has pool or grid trades (it was cleared before).
    """
    started = time.perf_counter()
    now = now or timezone.now()
    book = _fetch(interval)
    outcome = _clear(book, now)
    expired = _write(book, outcome, now)
    return _summary(book, outcome, expired, time.perf_counter() - started)
