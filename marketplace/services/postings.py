"""Posting on the board: offers to sell and requests to buy energy in one interval; cancelling
and modifying them before gate closure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from accounts.models import Membership, MeterPoint, User
from config.errors import ApplicationError, ErrorCode, ObjectNotFoundError
from config.sql import insert_rows
from config.transactions import action_transaction
from marketplace.lock_objects import (
    lock_interval,
    lock_meter_point_with_membership,
    lock_meter_points_with_membership,
    lock_posting,
    share_lock_interval,
)
from marketplace.models import Bid, BidStatus, Interval, Posting, PostingStatus, Side
from marketplace.services.board_checks import (
    ZERO,
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
    committed_kwh_of_interval,
    to_decimal,
)
from units import KWH, PRICE

# ``Side.values`` builds a new list on each access (once per posting of a batch): read it once.
_SIDES = tuple(Side.values)  # a tuple: an unhashable input is refused, not a TypeError


def _parse_posting(
    *,
    side: str,
    quantity_kwh: Decimal | str | int,
    limit_price_per_kwh: Decimal | str | int,
    flexible: bool,
) -> tuple[Decimal, Decimal]:
    """The checks a posting passes before any lock: its side, quantity, price and flexibility."""
    if side not in _SIDES:
        raise ApplicationError(ErrorCode.UNKNOWN_CHOICE, "Choose buy or sell.", field="side")
    quantity = to_decimal(quantity_kwh, field="quantity_kwh", quantum=KWH)
    price = to_decimal(limit_price_per_kwh, field="limit_price_per_kwh", quantum=PRICE)
    check_quantity_positive(quantity)
    if flexible and side == Side.SELL:
        raise ApplicationError(
            ErrorCode.NOT_FLEXIBLE,
            "Only a request (buy) can be flexible; an offer can always be curtailed.",
            field="flexible",
        )
    return quantity, price


def _check_locked(
    *,
    membership: Membership,
    meter_point: MeterPoint,
    member: Membership,
    has_grid: bool,
    interval: Interval,
    price: Decimal,
    now: datetime,
) -> None:
    """The checks a posting passes under the interval's and its meter point's locks (all but
    the capacity, which needs what the meter point already committed)."""
    # The membership read is the meter point's; it must still be the caller's.
    check_meter_point(membership, meter_point)
    check_meter_point_approved(meter_point)
    check_placed(meter_point, community_has_grid=has_grid)
    check_member_may_trade(member)
    check_same_community(member, interval)
    check_interval_open(interval, now)
    check_price_in_band(price, interval.rules, field="limit_price_per_kwh")


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
    quantity, price = _parse_posting(
        side=side,
        quantity_kwh=quantity_kwh,
        limit_price_per_kwh=limit_price_per_kwh,
        flexible=flexible,
    )
    check_meter_point(membership, meter_point)
    return _posting_insert(
        membership=membership,
        owner_id=None,
        meter_point_id=meter_point.pk,
        interval_id=interval.pk,
        side=side,
        quantity=quantity,
        price=price,
        auto_accept_best_bids=auto_accept_best_bids,
        flexible=flexible,
        autopilot=autopilot,
        now=now,
    )


def posting_create_by_owner(
    *,
    owner: User,
    meter_point_id: int,
    interval_id: int,
    side: str,
    quantity_kwh: Decimal | str | int,
    limit_price_per_kwh: Decimal | str | int,
    auto_accept_best_bids: bool = True,
    flexible: bool = False,
    now: datetime | None = None,
) -> Posting:
    """``posting_create`` for a caller who names the meter point and the interval by id (the
    API): the same checks under the same locks, and the meter point must be ``owner``'s, which
    the statement that locks it checks, so nothing is read twice. Someone else's meter point is
    refused exactly as a missing one (404, "You have no meter point with this id."); a missing
    interval raises ``Interval.DoesNotExist``.
    """
    now = now or timezone.now()
    quantity, price = _parse_posting(
        side=side,
        quantity_kwh=quantity_kwh,
        limit_price_per_kwh=limit_price_per_kwh,
        flexible=flexible,
    )
    return _posting_insert(
        membership=None,
        owner_id=owner.pk,
        meter_point_id=meter_point_id,
        interval_id=interval_id,
        side=side,
        quantity=quantity,
        price=price,
        auto_accept_best_bids=auto_accept_best_bids,
        flexible=flexible,
        autopilot=False,
        now=now,
    )


def _posting_insert(
    *,
    membership: Membership | None,
    owner_id: int | None,
    meter_point_id: int,
    interval_id: int,
    side: str,
    quantity: Decimal,
    price: Decimal,
    auto_accept_best_bids: bool,
    flexible: bool,
    autopilot: bool,
    now: datetime,
) -> Posting:
    """The locked part of a posting: ``membership`` is the caller's, or None when ``owner_id``
    names the user whose meter point it must be (then its membership is the caller's)."""
    with action_transaction():
        # Lock order: interval, then meter point. The interval lock orders us against the
        # pipeline's gate closure, so a posting is either in before the gate or refused; it is
        # shared, so one interval's postings do not queue behind each other. The meter point
        # lock serialises its own postings and bids, which the capacity check needs.
        locked_interval = share_lock_interval(interval_id)
        try:
            locked_meter_point, member, has_grid = lock_meter_point_with_membership(
                meter_point_id, user_id=owner_id
            )
        except MeterPoint.DoesNotExist:
            if owner_id is None:
                raise
            raise ObjectNotFoundError(
                "You have no meter point with this id.", field="meter_point"
            ) from None
        _check_locked(
            membership=member if membership is None else membership,
            meter_point=locked_meter_point,
            member=member,
            has_grid=has_grid,
            interval=locked_interval,
            price=price,
            now=now,
        )
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
            meter_point_id=meter_point_id,
            side=side,
            quantity_kwh=quantity,
            limit_price_per_kwh=price,
            auto_accept_best_bids=auto_accept_best_bids,
            flexible=flexible,
            autopilot=autopilot,
            submitted_at=now,
        )


@dataclass(frozen=True)
class PostingRequest:
    """One posting of a batch: the arguments ``posting_create`` takes for it."""

    membership: Membership
    meter_point: MeterPoint
    side: str
    quantity_kwh: Decimal | str | int
    limit_price_per_kwh: Decimal | str | int
    auto_accept_best_bids: bool = True
    flexible: bool = False


@dataclass(frozen=True)
class PostingOutcome:
    """What became of one request: its posting, or the error ``posting_create`` would raise."""

    request: PostingRequest
    posting: Posting | None = None
    error: ApplicationError | None = None


def postings_create_batch(
    *,
    interval: Interval,
    requests: Sequence[PostingRequest],
    now: datetime | None = None,
) -> list[PostingOutcome]:
    """Many postings into one interval in one transaction, by ``posting_create``'s rules.

    For a program that posts for many meter points at once (the simulation's households):
    each request passes exactly the checks ``posting_create`` makes, in the same order and under
    the same locks (the interval shared, then every meter point of the batch by ascending id),
    and is refused on its own with the error ``posting_create`` would raise; the others are
    kept. Requests for the same meter point count against its capacity in turn, as separate
    calls would. The postings go in with one bulk insert, submitted at ``now``, in the order of
    ``requests``. An autopilot does not post through here: it posts one meter point at a time,
    with its own check (``posting_create(autopilot=True)``).
    """
    now = now or timezone.now()
    outcomes: list[PostingOutcome | None] = [None] * len(requests)
    parsed: dict[int, tuple[Decimal, Decimal]] = {}
    for index, request in enumerate(requests):
        try:
            parsed[index] = _parse_posting(
                side=request.side,
                quantity_kwh=request.quantity_kwh,
                limit_price_per_kwh=request.limit_price_per_kwh,
                flexible=request.flexible,
            )
            check_meter_point(request.membership, request.meter_point)
        except ApplicationError as exc:
            outcomes[index] = PostingOutcome(request, error=exc)
    with action_transaction():
        locked_interval = share_lock_interval(interval.pk)
        locked = lock_meter_points_with_membership(
            {requests[index].meter_point.pk for index in parsed}
        )
        committed = committed_kwh_of_interval(
            meter_point_ids=list(locked), interval_id=locked_interval.pk
        )
        new: list[tuple[int, Posting]] = []
        for index, (quantity, price) in parsed.items():
            request = requests[index]
            try:
                if request.meter_point.pk not in locked:
                    raise ApplicationError(
                        ErrorCode.NOT_FOUND, "Unknown meter point.", field="meter_point"
                    )
                locked_meter_point, member, has_grid = locked[request.meter_point.pk]
                _check_locked(
                    membership=request.membership,
                    meter_point=locked_meter_point,
                    member=member,
                    has_grid=has_grid,
                    interval=locked_interval,
                    price=price,
                    now=now,
                )
                key = (locked_meter_point.pk, request.side)
                used = committed.get(key, ZERO)
                check_capacity(
                    meter_point=locked_meter_point,
                    interval=locked_interval,
                    side=request.side,
                    quantity_kwh=quantity,
                    used_kwh=used,
                )
            except ApplicationError as exc:
                outcomes[index] = PostingOutcome(request, error=exc)
                continue
            committed[key] = used + quantity
            new.append(
                (
                    index,
                    Posting(
                        interval=locked_interval,
                        membership_id=member.pk,
                        meter_point_id=locked_meter_point.pk,
                        side=request.side,
                        quantity_kwh=quantity,
                        limit_price_per_kwh=price,
                        auto_accept_best_bids=request.auto_accept_best_bids,
                        flexible=request.flexible,
                        autopilot=False,
                        submitted_at=now,
                    ),
                )
            )
        _insert_postings([posting for _, posting in new], interval_id=locked_interval.pk)
        for index, posting in new:
            outcomes[index] = PostingOutcome(requests[index], posting=posting)
    return [outcome for outcome in outcomes if outcome is not None]


_POSTING_COLUMNS = (
    "interval_id",
    "membership_id",
    "meter_point_id",
    "side",
    "quantity_kwh",
    "limit_price_per_kwh",
    "auto_accept_best_bids",
    "flexible",
    "autopilot",
    "submitted_at",
)


def _insert_postings(postings: list[Posting], *, interval_id: int) -> None:
    """Insert new postings in one statement (``config.sql.insert_rows``) and give them their ids.

    The instances' own fields are written; every other column gets its default, as a save
    would give it. The ids are read back as the interval's newest postings of these meter
    points: the caller holds every one of their locks, so no one else can have posted for them
    since, and the inserted rows draw their ids in order.
    """
    if not postings:
        return
    insert_rows(
        Posting,
        _POSTING_COLUMNS,
        [[getattr(posting, name) for name in _POSTING_COLUMNS] for posting in postings],
    )
    ids = list(
        Posting.objects.filter(
            interval_id=interval_id,
            meter_point_id__in={posting.meter_point_id for posting in postings},
        )
        .order_by("-pk")
        .values_list("pk", flat=True)[: len(postings)]
    )
    for posting, pk in zip(postings, reversed(ids), strict=True):
        posting.pk = pk
        posting.exclusion_reason = ""  # the column's database default
        posting._state.adding = False


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
