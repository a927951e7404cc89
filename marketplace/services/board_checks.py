"""The rules every posting and bid obeys, shared by postings.py, bids.py and clearing.

``check_*`` functions only read and raise ``ApplicationError``; the services call them after
taking their locks, so what they check cannot change before the write commits.
"""

from __future__ import annotations

import functools
from datetime import datetime
from decimal import Context, Decimal

from django.db import connection

from accounts.models import Membership, MembershipStatus, MeterPoint, MeterPointStatus
from config import formatting
from config.errors import ApplicationError, ErrorCode
from marketplace.models import (
    Bid,
    BidStatus,
    Interval,
    MarketRules,
    Posting,
    PostingStatus,
    Side,
)
from marketplace.services.intervals import interval_is_open_for_orders
from units import KWH, UnitError, parse_decimal

ZERO = Decimal("0")


def opposite(side: str) -> Side:
    return Side.SELL if side == Side.BUY else Side.BUY


def to_decimal(value: object, *, field: str, quantum: Decimal) -> Decimal:
    """Parse a quantity or price with the one parser (``units``)."""
    try:
        return parse_decimal(value, step=quantum)
    except UnitError as exc:
        raise ApplicationError(ErrorCode(exc.code), exc.message, field=field) from None


def check_member_may_trade(membership: Membership, *, field: str = "membership") -> None:
    """Approved and not suspended; ``membership.status`` must be fresh (read in the transaction)."""
    if membership.status == MembershipStatus.SUSPENDED:
        raise ApplicationError(
            ErrorCode.SUSPENDED, "Your membership is suspended; you cannot trade.", field=field
        )
    if membership.status != MembershipStatus.APPROVED:
        raise ApplicationError(
            ErrorCode.NOT_APPROVED,
            "Your membership has not been approved yet; you cannot trade.",
            field=field,
        )


def fresh_membership(membership: Membership) -> Membership:
    """Re-read the status inside the transaction: a suspension may have happened meanwhile."""
    return Membership.objects.only("id", "status", "community_id", "pseudonym").get(
        pk=membership.pk
    )


def check_same_community(membership: Membership, interval: Interval) -> None:
    if membership.community_id != interval.community_id:
        raise ApplicationError(
            ErrorCode.PERMISSION_DENIED,
            "This interval belongs to another community.",
            field="interval",
        )


def check_meter_point(membership: Membership, meter_point: MeterPoint) -> None:
    if meter_point.membership_id != membership.pk:
        raise ApplicationError(
            ErrorCode.NOT_OWN_METER_POINT, "This meter point is not yours.", field="meter_point"
        )


def check_meter_point_approved(meter_point: MeterPoint) -> None:
    """Only a meter point its manager approved trades: the capacities a posting is held to are
    the approved ones, never a member's own declaration."""
    if meter_point.status != MeterPointStatus.APPROVED:
        state = (
            "was rejected by the community manager"
            if meter_point.status == MeterPointStatus.REJECTED
            else "awaits the community manager's approval"
        )
        raise ApplicationError(
            ErrorCode.METER_POINT_NOT_APPROVED,
            f"This meter point {state}; it cannot trade yet.",
            field="meter_point",
        )


def check_placed(meter_point: MeterPoint, *, community_has_grid: bool) -> None:
    """A community with a network checks every trade against it: a meter point without a place
    on it cannot trade there (its power could not be checked)."""
    if community_has_grid and meter_point.bus is None:
        raise ApplicationError(
            ErrorCode.UNKNOWN_BUS,
            "This meter point has no place on the community's network yet; the community "
            "manager assigns it to a bus before it can trade.",
            field="meter_point",
        )


_STAMP = "%Y-%m-%d %H:%M"


def check_interval_open(interval: Interval, now: datetime) -> None:
    if not interval_is_open_for_orders(interval, now):
        # In the community's zone, as the board shows it (a refusal is read, not parsed).
        closed = formatting.when(interval.gate_closure_at, interval.community, style=_STAMP)
        raise ApplicationError(
            ErrorCode.INTERVAL_CLOSED,
            f"The gate of this interval closed at {closed}.",
            field="interval",
        )


def check_quantity_positive(quantity_kwh: Decimal) -> None:
    if quantity_kwh <= 0:
        raise ApplicationError(
            ErrorCode.OUT_OF_RANGE, "The quantity must be more than 0 kWh.", field="quantity_kwh"
        )


def check_price_in_band(price: Decimal, rules: MarketRules, *, field: str) -> None:
    if not rules.price_floor <= price <= rules.price_cap:
        raise ApplicationError(
            ErrorCode.OUT_OF_RANGE,
            f"The price must be between the floor {rules.price_floor} and the cap "
            f"{rules.price_cap} per kWh.",
            field=field,
        )


def committed_kwh(*, meter_point_id: int, interval_id: int, side: str) -> Decimal:
    """Energy the meter point is already committed to on ``side`` in the interval.

    Counts open and filled postings in full, the traded part of cancelled postings, pending
    bids in full and the accepted part of decided bids: everything that could still flow or
    already will. One statement for both sums (it runs on every posting and bid, under the
    meter point's lock); the ORM's two aggregates cost a round trip and a compilation more.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            _committed_sql(),
            {
                "interval": interval_id,
                "meter_point": meter_point_id,
                "side": side,
                "opposite": opposite(side).value,
                "cancelled": PostingStatus.CANCELLED.value,
                "pending": BidStatus.PENDING.value,
            },
        )
        postings, bids = cursor.fetchone()
    return _energy(postings) + _energy(bids)


def _energy(value: Decimal | float | int | None) -> Decimal:
    """A sum as the ORM would give it: PostgreSQL returns numeric as Decimal; SQLite stores
    decimals as REAL, so its sum is a float, rounded to 15 digits and then to the 3 places of
    an energy field (as Django's SQLite converter does)."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value
    return _SQLITE_DECIMALS.create_decimal_from_float(value).quantize(KWH)


_SQLITE_DECIMALS = Context(prec=15)


@functools.cache
def _committed_sql() -> str:
    quote = connection.ops.quote_name
    posting, bid = quote(Posting._meta.db_table), quote(Bid._meta.db_table)
    # Only the models' own table names are formatted in; every value is a parameter.
    return (
        "SELECT"  # noqa: S608
        " (SELECT SUM(CASE WHEN p.status = %(cancelled)s THEN p.allocated_kwh"
        "   ELSE p.quantity_kwh END)"
        f"  FROM {posting} p"
        "  WHERE p.interval_id = %(interval)s AND p.meter_point_id = %(meter_point)s"
        "   AND p.side = %(side)s),"
        " (SELECT SUM(CASE WHEN b.status = %(pending)s THEN b.quantity_kwh"
        "   ELSE b.accepted_kwh END)"
        f"  FROM {bid} b JOIN {posting} bp ON bp.id = b.posting_id"
        "  WHERE bp.interval_id = %(interval)s AND bp.side = %(opposite)s"
        "   AND b.meter_point_id = %(meter_point)s)"
    )


def committed_kwh_of_interval(
    *, meter_point_ids: list[int], interval_id: int
) -> dict[tuple[int, str], Decimal]:
    """``committed_kwh`` of many meter points at once: (meter point id, side) -> energy.

    The same sums as ``committed_kwh`` (the same statuses, in full or in part), grouped, in one
    statement for a batch of postings; a meter point and side with nothing committed is absent.
    """
    totals: dict[tuple[int, str], Decimal] = {}
    for start in range(0, len(meter_point_ids), _COMMITTED_CHUNK):
        chunk = meter_point_ids[start : start + _COMMITTED_CHUNK]
        for key, energy in _committed_of(chunk, interval_id):
            totals[key] = totals.get(key, ZERO) + energy
    return totals


_COMMITTED_CHUNK = 5_000  # ids per statement: twice that many parameters, far below SQLite's limit


def _committed_of(
    meter_point_ids: list[int], interval_id: int
) -> list[tuple[tuple[int, str], Decimal]]:
    quote = connection.ops.quote_name
    posting, bid = quote(Posting._meta.db_table), quote(Bid._meta.db_table)
    marks = ", ".join(["%s"] * len(meter_point_ids))
    # Only the models' own table names and placeholders are formatted in; values are parameters.
    sql = (
        "SELECT p.meter_point_id, p.side, SUM(CASE WHEN p.status = %s"  # noqa: S608
        " THEN p.allocated_kwh ELSE p.quantity_kwh END)"
        f" FROM {posting} p WHERE p.interval_id = %s AND p.meter_point_id IN ({marks})"
        " GROUP BY p.meter_point_id, p.side"
        " UNION ALL"
        " SELECT b.meter_point_id, CASE WHEN bp.side = %s THEN %s ELSE %s END,"
        " SUM(CASE WHEN b.status = %s THEN b.quantity_kwh ELSE b.accepted_kwh END)"
        f" FROM {bid} b JOIN {posting} bp ON bp.id = b.posting_id"
        f" WHERE bp.interval_id = %s AND b.meter_point_id IN ({marks})"
        " GROUP BY b.meter_point_id, bp.side"
    )
    # A bid on an offer is a purchase, on a request a sale: it counts on the opposite side.
    params: list[int | str] = [
        PostingStatus.CANCELLED.value,
        interval_id,
        *meter_point_ids,
        Side.SELL.value,
        Side.BUY.value,
        Side.SELL.value,
        BidStatus.PENDING.value,
        interval_id,
        *meter_point_ids,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [((int(mp), str(side)), _energy(energy)) for mp, side, energy in rows]


def check_capacity(
    *,
    meter_point: MeterPoint,
    interval: Interval,
    side: str,
    quantity_kwh: Decimal,
    used_kwh: Decimal | None = None,
) -> None:
    """Network security: a meter point cannot sell more than its export capacity over the
    interval, nor buy more than its import capacity, counting what it already committed
    (``used_kwh`` when the caller read it already, under the same lock)."""
    capacity_kw = (
        meter_point.export_capacity_kw if side == Side.SELL else meter_point.import_capacity_kw
    )
    limit = (capacity_kw * interval.hours).quantize(KWH)
    used = (
        committed_kwh(meter_point_id=meter_point.pk, interval_id=interval.pk, side=side)
        if used_kwh is None
        else used_kwh
    )
    if used + quantity_kwh > limit:
        direction = "export" if side == Side.SELL else "import"
        raise ApplicationError(
            ErrorCode.OVER_CAPACITY,
            f"This meter point can {direction} at most {limit} kWh in this interval "
            f"({capacity_kw} kW); {used} kWh is already committed.",
            field="quantity_kwh",
        )


def check_no_orders_yet(*, meter_point_id: int, interval: Interval) -> None:
    """For the autopilot: the meter point has no posting (in any state) and no bid in the
    interval. A member who posted, bid or cancelled there decided for themselves."""
    postings = Posting.objects.filter(interval=interval, meter_point_id=meter_point_id)
    bids = Bid.objects.filter(posting__interval=interval, meter_point_id=meter_point_id)
    if postings.exists() or bids.exists():
        raise ApplicationError(
            ErrorCode.ALREADY_POSTED,
            "This meter point has postings or bids in the interval already.",
            field="interval",
        )


def check_bid_price_meets_posting(posting: Posting, price: Decimal) -> None:
    """A bid must be acceptable to the posting: buyers bid at least a sell posting's limit,
    sellers at most a buy posting's limit. Refused at bid time (see bids.py)."""
    if posting.side == Side.SELL and price < posting.limit_price_per_kwh:
        raise ApplicationError(
            ErrorCode.OUT_OF_RANGE,
            f"A bid on this offer must be at least {posting.limit_price_per_kwh} per kWh.",
            field="price_per_kwh",
        )
    if posting.side == Side.BUY and price > posting.limit_price_per_kwh:
        raise ApplicationError(
            ErrorCode.OUT_OF_RANGE,
            f"A bid on this request must be at most {posting.limit_price_per_kwh} per kWh.",
            field="price_per_kwh",
        )
