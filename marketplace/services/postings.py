"""Posting on the board: offers to sell and requests to buy energy in one interval; cancelling
and modifying them before gate closure."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from accounts.models import Membership, MeterPoint
from config.errors import ApplicationError, ErrorCode
from config.transactions import action_transaction
from marketplace.lock_objects import (
    lock_interval,
    lock_meter_point_with_membership,
    lock_posting,
    share_lock_interval,
)
from marketplace.models import Bid, BidStatus, Interval, Posting, PostingStatus, Side
from marketplace.services.board_checks import (
    check_capacity,
    check_interval_open,
    check_member_may_trade,
    check_meter_point,
    check_meter_point_approved,
    check_no_orders_yet,
    check_placed,
    check_price_in_band,
    check_quantity_positive,
    check_same_community,
    to_decimal,
)
from units import KWH, PRICE


def posting_create(
    *,
    membership: Membership,
    meter_point: MeterPoint,
    interval: Interval,
    side: str,
    quantity_kwh: Decimal | str | int,
    limit_price_per_kwh: Decimal | str | int,
    auto_accept_best_bids: bool = True,
    flexible: bool = False,
    autopilot: bool = False,
    now: datetime | None = None,
) -> Posting:
    """Post an offer (``side="sell"``) or a request (``side="buy"``) for one interval.

    Refuses, with the field named: a member not approved or suspended, an interval of another
    community or past its gate closure, someone else's meter point, an unknown side, a quantity
    not above 0 or beyond the meter point's capacity for the interval (counting its other
    commitments on that side), a limit price outside the community's floor and cap, an offer
    declared flexible (only a purchase can be: an export is always curtailable at the inverter).
    ``flexible`` on a request lets the grid check curtail it (battery, EV, heat pump).

    ``autopilot``: the member's autopilot posts (``marketplace.services.autopilot``). It is
    refused (``already_posted``) when the meter point has any posting or bid in the interval
    already, the member's own or the autopilot's: checked under the meter point's lock, which
    the member's own postings and bids take too, so the autopilot never posts twice for an
    interval nor next to what the member posted themselves.
    """
    now = now or timezone.now()
    if side not in Side.values:
        raise ApplicationError(ErrorCode.UNKNOWN_CHOICE, "Choose buy or sell.", field="side")
    quantity = to_decimal(quantity_kwh, field="quantity_kwh", quantum=KWH)
    price = to_decimal(limit_price_per_kwh, field="limit_price_per_kwh", quantum=PRICE)
    check_quantity_positive(quantity)
    check_meter_point(membership, meter_point)
    if flexible and side == Side.SELL:
        raise ApplicationError(
            ErrorCode.NOT_FLEXIBLE,
            "Only a request (buy) can be flexible; an offer can always be curtailed.",
            field="flexible",
        )
    with action_transaction():
        # Lock order: interval, then meter point. The interval lock orders us against the
        # pipeline's gate closure, so a posting is either in before the gate or refused; it is
        # shared, so one interval's postings do not queue behind each other. The meter point
        # lock serialises its own postings and bids, which the capacity check needs.
        locked_interval = share_lock_interval(interval.pk)
        locked_meter_point, member, has_grid = lock_meter_point_with_membership(meter_point.pk)
        # The membership read is the meter point's; it must still be the caller's.
        check_meter_point(membership, locked_meter_point)
        check_meter_point_approved(locked_meter_point)
        check_placed(locked_meter_point, community_has_grid=has_grid)
        check_member_may_trade(member)
        check_same_community(member, locked_interval)
        check_interval_open(locked_interval, now)
        check_price_in_band(price, locked_interval.rules, field="limit_price_per_kwh")
        if autopilot:
            check_no_orders_yet(meter_point_id=locked_meter_point.pk, interval=locked_interval)
        check_capacity(
            meter_point=locked_meter_point,
            interval=locked_interval,
            side=side,
            quantity_kwh=quantity,
        )
        return Posting.objects.create(
            interval=locked_interval,
            membership_id=member.pk,
            meter_point_id=meter_point.pk,
            side=side,
            quantity_kwh=quantity,
            limit_price_per_kwh=price,
            auto_accept_best_bids=auto_accept_best_bids,
            flexible=flexible,
            autopilot=autopilot,
            submitted_at=now,
        )


def posting_cancel(
    *, posting: Posting, by_membership: Membership, now: datetime | None = None
) -> Posting:
    """The poster withdraws an open posting before gate closure; its pending bids expire.

    What was already traded stays traded: trades from accepted bids are not undone.
    """
    now = now or timezone.now()
    with action_transaction():
        interval = lock_interval(posting.interval_id)
        locked = lock_posting(posting.pk)
        if locked.membership_id != by_membership.pk:
            raise ApplicationError(
                ErrorCode.PERMISSION_DENIED,
                "Only the poster can cancel a posting.",
                field="posting",
            )
        check_interval_open(interval, now)
        if locked.status != PostingStatus.OPEN:
            raise ApplicationError(
                ErrorCode.INVALID_STATE,
                f"The posting is {locked.get_status_display().lower()}; it cannot be cancelled.",
                field="posting",
            )
        locked.status = PostingStatus.CANCELLED
        locked.save(update_fields=["status"])
        # Every writer on this interval holds its lock, so this UPDATE's row locks cannot
        # interleave with another path's.
        Bid.objects.filter(posting=locked, status=BidStatus.PENDING).update(
            status=BidStatus.EXPIRED, decided_at=now
        )
        return locked


def posting_modify(
    *,
    posting: Posting,
    by_membership: Membership,
    quantity_kwh: Decimal | str | int | None = None,
    limit_price_per_kwh: Decimal | str | int | None = None,
    now: datetime | None = None,
) -> Posting:
    """The poster changes an open posting's quantity or limit price before gate closure.

    Time priority, as on exchanges (and Elecbay's place, cancel and modify): lowering only the
    quantity keeps the posting's place in the queue (its ``submitted_at``); any other change,
    a higher quantity or a new price, takes a new one (``submitted_at = now``), because it
    asks for more than the place was earned with. The quantity cannot go below what accepted
    bids already traded, nor beyond the meter point's capacity; the price stays within the
    community's floor and cap. Pending bids that a new price no longer admits expire. A call
    that changes nothing returns the posting untouched.
    """
    now = now or timezone.now()
    quantity = (
        None
        if quantity_kwh is None
        else to_decimal(quantity_kwh, field="quantity_kwh", quantum=KWH)
    )
    price = (
        None
        if limit_price_per_kwh is None
        else to_decimal(limit_price_per_kwh, field="limit_price_per_kwh", quantum=PRICE)
    )
    if quantity is not None:
        check_quantity_positive(quantity)
    with action_transaction():
        # Lock order: interval (exclusively, the book changes), meter point, posting.
        interval = lock_interval(posting.interval_id)
        meter_point, member, _ = lock_meter_point_with_membership(posting.meter_point_id)
        locked = lock_posting(posting.pk)
        if locked.membership_id != by_membership.pk:
            raise ApplicationError(
                ErrorCode.PERMISSION_DENIED,
                "Only the poster can modify a posting.",
                field="posting",
            )
        check_member_may_trade(member)
        check_interval_open(interval, now)
        if locked.status != PostingStatus.OPEN:
            raise ApplicationError(
                ErrorCode.INVALID_STATE,
                f"The posting is {locked.get_status_display().lower()}; it cannot be modified.",
                field="posting",
            )
        new_quantity = locked.quantity_kwh if quantity is None else quantity
        new_price = locked.limit_price_per_kwh if price is None else price
        if new_quantity == locked.quantity_kwh and new_price == locked.limit_price_per_kwh:
            return locked
        if new_quantity <= locked.allocated_kwh:
            raise ApplicationError(
                ErrorCode.OUT_OF_RANGE,
                f"{locked.allocated_kwh} kWh of this posting are traded already; the quantity "
                "must stay above that.",
                field="quantity_kwh",
            )
        if new_quantity > locked.quantity_kwh:
            check_meter_point_approved(meter_point)  # more needs an approved connection
            # Its current quantity is among the meter point's commitments already.
            check_capacity(
                meter_point=meter_point,
                interval=interval,
                side=locked.side,
                quantity_kwh=new_quantity - locked.quantity_kwh,
            )
        if new_price != locked.limit_price_per_kwh:
            check_price_in_band(new_price, interval.rules, field="limit_price_per_kwh")
        keeps_priority = new_quantity < locked.quantity_kwh and (
            new_price == locked.limit_price_per_kwh
        )
        locked.quantity_kwh = new_quantity
        locked.limit_price_per_kwh = new_price
        if not keeps_priority:
            locked.submitted_at = now
        locked.save(update_fields=["quantity_kwh", "limit_price_per_kwh", "submitted_at"])
        if price is not None:
            pending = Bid.objects.filter(posting=locked, status=BidStatus.PENDING)
            refused = (
                {"price_per_kwh__lt": new_price}
                if locked.side == Side.SELL
                else {"price_per_kwh__gt": new_price}
            )
            pending.filter(**refused).update(status=BidStatus.EXPIRED, decided_at=now)
        return locked
