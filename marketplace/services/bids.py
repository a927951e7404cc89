"""Bidding on postings, and the poster accepting or rejecting bids.

Decision on bid prices: a bid that could never be accepted is refused when it is made, with the
posting's limit in the message (a buy bid on an offer must be at least the offer's limit price, a
sell bid on a request at most the request's limit). Acceptance checks it again, so an accepted
bid never makes a seller receive less, or a buyer pay more, than their posted limit.

Accepting locks the interval, then the posting, then the bid (see ``lock_objects``) and reads the
posting's allocation under the lock, so however many processes accept bids on one posting at
once, the total accepted never exceeds its quantity (the database constraint
``posting_never_over_allocated`` backs this up).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from django.db.models import Max
from django.utils import timezone

from accounts.models import Membership, MeterPoint
from config.errors import ApplicationError, ErrorCode
from config.transactions import action_transaction
from grid.models import GridModel
from marketplace.lock_objects import (
    lock_bid,
    lock_bids,
    lock_interval,
    lock_meter_points,
    lock_posting,
)
from marketplace.models import (
    Bid,
    BidStatus,
    Interval,
    MarketStructure,
    Posting,
    PostingStatus,
    Side,
    Trade,
    TradeSource,
)
from marketplace.services.board_checks import (
    check_bid_price_meets_posting,
    check_capacity,
    check_interval_open,
    check_member_may_trade,
    check_meter_point,
    check_meter_point_approved,
    check_placed,
    check_price_in_band,
    check_quantity_positive,
    check_same_community,
    fresh_membership,
    opposite,
    to_decimal,
)
from notifications.events import Event, announce
from units import KWH, PRICE


def next_trade_sequence(interval_id: int, source: str) -> int:
    """The next free sequence number; callers hold the interval's lock, so it stays free."""
    current = Trade.objects.filter(interval_id=interval_id, source=source).aggregate(
        m=Max("sequence")
    )["m"]
    return (current or 0) + 1


def bid_create(
    *,
    membership: Membership,
    meter_point: MeterPoint,
    posting: Posting,
    quantity_kwh: Decimal | str | int,
    price_per_kwh: Decimal | str | int,
    now: datetime | None = None,
) -> Bid:
    """Bid on someone else's open posting: buy from an offer or sell into a request.

    Refuses, with the field named: a member not approved or suspended, one's own posting, a
    posting not open or of another community, a closed gate, a pooled market (no board there),
    someone else's meter point, a quantity not above 0, above what the posting still has or beyond
    the meter point's capacity, a price outside floor and cap or one the posting cannot accept.
    """
    now = now or timezone.now()
    quantity = to_decimal(quantity_kwh, field="quantity_kwh", quantum=KWH)
    price = to_decimal(price_per_kwh, field="price_per_kwh", quantum=PRICE)
    check_quantity_positive(quantity)
    check_meter_point(membership, meter_point)
    with action_transaction():
        interval = lock_interval(posting.interval_id)
        (locked_meter_point,) = lock_meter_points([meter_point.pk])
        check_meter_point_approved(locked_meter_point)
        check_placed(
            locked_meter_point,
            community_has_grid=GridModel.objects.filter(
                community_id=interval.community_id
            ).exists(),
        )
        locked = lock_posting(posting.pk)
        member = fresh_membership(membership)
        check_member_may_trade(member)
        check_same_community(member, interval)
        if locked.membership_id == member.pk:
            raise ApplicationError(
                ErrorCode.OWN_POSTING, "You cannot bid on your own posting.", field="posting"
            )
        if interval.rules.market_structure == MarketStructure.POOL:
            raise ApplicationError(
                ErrorCode.BIDDING_NOT_ALLOWED,
                "This community clears all orders in one pooled auction; post an order "
                "instead of bidding.",
                field="posting",
            )
        check_interval_open(interval, now)
        if locked.status != PostingStatus.OPEN:
            raise ApplicationError(
                ErrorCode.INVALID_STATE, "This posting no longer takes bids.", field="posting"
            )
        if quantity > locked.remaining_kwh:
            raise ApplicationError(
                ErrorCode.OUT_OF_RANGE,
                f"The posting has only {locked.remaining_kwh} kWh left.",
                field="quantity_kwh",
            )
        check_price_in_band(price, interval.rules, field="price_per_kwh")
        check_bid_price_meets_posting(locked, price)
        check_capacity(
            meter_point=locked_meter_point,
            interval=interval,
            side=opposite(locked.side),
            quantity_kwh=quantity,
        )
        bid = Bid.objects.create(
            posting=locked,
            membership_id=member.pk,
            meter_point_id=meter_point.pk,
            quantity_kwh=quantity,
            price_per_kwh=price,
            submitted_at=now,
        )
        announce(Event.BID_RECEIVED, bid.pk)
        return bid


def _check_poster(posting: Posting, by_membership: Membership, action: str) -> None:
    if posting.membership_id != by_membership.pk:
        raise ApplicationError(
            ErrorCode.PERMISSION_DENIED,
            f"Only the poster can {action} bids on a posting.",
            field="bid",
        )


def _check_pending(bid: Bid, posting: Posting) -> None:
    if bid.posting_id != posting.pk:
        raise ApplicationError(
            ErrorCode.WRONG_POSTING, "This bid is on another posting.", field="bid"
        )
    if bid.status != BidStatus.PENDING:
        raise ApplicationError(
            ErrorCode.INVALID_STATE,
            f"The bid is {bid.get_status_display().lower()} already.",
            field="bid",
        )


def _accept_locked(
    *,
    interval: Interval,
    posting: Posting,
    bid: Bid,
    quantity: Decimal,
    sequence: int,
    now: datetime,
) -> Trade:
    """Book one accepted bid on locked rows; the caller checked everything already."""
    posting.allocated_kwh += quantity
    if posting.allocated_kwh == posting.quantity_kwh:
        posting.status = PostingStatus.FILLED
    posting.save(update_fields=["allocated_kwh", "status"])
    bid.accepted_kwh = quantity
    bid.status = BidStatus.ACCEPTED
    bid.decided_at = now
    bid.save(update_fields=["accepted_kwh", "status", "decided_at"])
    announce(Event.BID_ACCEPTED, bid.pk)
    selling = posting.side == Side.SELL
    return Trade.objects.create(
        interval=interval,
        source=TradeSource.BILATERAL,
        sequence=sequence,
        buyer_id=bid.membership_id if selling else posting.membership_id,
        seller_id=posting.membership_id if selling else bid.membership_id,
        buyer_meter_point_id=bid.meter_point_id if selling else posting.meter_point_id,
        seller_meter_point_id=posting.meter_point_id if selling else bid.meter_point_id,
        posting=posting,
        bid=bid,
        buyer_flexible=not selling and posting.flexible,
        quantity_kwh=quantity,
        price_per_kwh=bid.price_per_kwh,
        seller_price_per_kwh=bid.price_per_kwh,
        orders_submitted_at=max(posting.submitted_at, bid.submitted_at),
        created_at=now,
    )


def _expire_rest_if_filled(posting: Posting, now: datetime) -> None:
    # A filled posting can take nothing more; releasing its bids frees the bidders' capacity.
    if posting.status == PostingStatus.FILLED:
        Bid.objects.filter(posting=posting, status=BidStatus.PENDING).update(
            status=BidStatus.EXPIRED, decided_at=now
        )


def _check_poster_may_decide(
    interval: Interval, posting: Posting, by_membership: Membership, action: str, now: datetime
) -> None:
    _check_poster(posting, by_membership, action)
    check_member_may_trade(fresh_membership(by_membership))
    check_interval_open(interval, now)
    if posting.status != PostingStatus.OPEN:
        raise ApplicationError(
            ErrorCode.INVALID_STATE,
            f"The posting is {posting.get_status_display().lower()}.",
            field="posting",
        )


def bid_accept(
    *,
    bid: Bid,
    by_membership: Membership,
    quantity_kwh: Decimal | str | int | None = None,
    now: datetime | None = None,
) -> Trade:
    """The poster accepts a bid, fully or in part, before gate closure: a bilateral trade at the
    bid price. Without ``quantity_kwh`` as much as both the bid and the posting allow."""
    now = now or timezone.now()
    wanted = None
    if quantity_kwh is not None:
        wanted = to_decimal(quantity_kwh, field="quantity_kwh", quantum=KWH)
        check_quantity_positive(wanted)
    with action_transaction():
        interval = lock_interval(bid.posting.interval_id)
        posting = lock_posting(bid.posting_id)
        locked = lock_bid(bid.pk)
        _check_poster_may_decide(interval, posting, by_membership, "accept", now)
        _check_pending(locked, posting)
        # Both sides' meter points must still be approved: a member who changed a capacity
        # since waits for the manager again, and a trade would settle on it.
        for party in MeterPoint.objects.filter(
            pk__in=[posting.meter_point_id, locked.meter_point_id]
        ).order_by("pk"):
            check_meter_point_approved(party)
        check_bid_price_meets_posting(posting, locked.price_per_kwh)
        remaining = posting.remaining_kwh
        quantity = wanted if wanted is not None else min(locked.quantity_kwh, remaining)
        if quantity > locked.quantity_kwh:
            raise ApplicationError(
                ErrorCode.OUT_OF_RANGE,
                f"The bid is for {locked.quantity_kwh} kWh only.",
                field="quantity_kwh",
            )
        if quantity > remaining or quantity <= 0:
            raise ApplicationError(
                ErrorCode.OVER_ALLOCATED,
                f"The posting has only {remaining} kWh left.",
                field="quantity_kwh",
            )
        trade = _accept_locked(
            interval=interval,
            posting=posting,
            bid=locked,
            quantity=quantity,
            sequence=next_trade_sequence(interval.pk, TradeSource.BILATERAL),
            now=now,
        )
        _expire_rest_if_filled(posting, now)
        return trade


def bids_accept_many(
    *,
    posting: Posting,
    bids: Sequence[Bid],
    by_membership: Membership,
    now: datetime | None = None,
) -> list[Trade]:
    """Accept several bids in full at once, in the order given; all or nothing.

    Refused (nothing written) if together they ask for more than the posting has left: the
    poster then accepts the last one in part with ``bid_accept(quantity_kwh=...)``.
    """
    now = now or timezone.now()
    with action_transaction():
        interval = lock_interval(posting.interval_id)
        locked_posting = lock_posting(posting.pk)
        locked_bids = {b.pk: b for b in lock_bids(b.pk for b in bids)}
        _check_poster_may_decide(interval, locked_posting, by_membership, "accept", now)
        ordered = [locked_bids[b.pk] for b in bids]
        if len({b.pk for b in ordered}) != len(ordered):
            raise ApplicationError(ErrorCode.DUPLICATE, "A bid is listed twice.", field="bids")
        for locked in ordered:
            _check_pending(locked, locked_posting)
            check_bid_price_meets_posting(locked_posting, locked.price_per_kwh)
        total = sum((b.quantity_kwh for b in ordered), Decimal(0))
        if total > locked_posting.remaining_kwh:
            raise ApplicationError(
                ErrorCode.OVER_ALLOCATED,
                f"These bids ask for {total} kWh; the posting has only "
                f"{locked_posting.remaining_kwh} kWh left.",
                field="bids",
            )
        first = next_trade_sequence(interval.pk, TradeSource.BILATERAL)
        trades = [
            _accept_locked(
                interval=interval,
                posting=locked_posting,
                bid=locked,
                quantity=locked.quantity_kwh,
                sequence=first + i,
                now=now,
            )
            for i, locked in enumerate(ordered)
        ]
        _expire_rest_if_filled(locked_posting, now)
        return trades


def bid_reject(*, bid: Bid, by_membership: Membership, now: datetime | None = None) -> Bid:
    """The poster turns a pending bid down before gate closure."""
    now = now or timezone.now()
    with action_transaction():
        interval = lock_interval(bid.posting.interval_id)
        posting = lock_posting(bid.posting_id)
        locked = lock_bid(bid.pk)
        _check_poster(posting, by_membership, "reject")
        check_interval_open(interval, now)
        _check_pending(locked, posting)
        locked.status = BidStatus.REJECTED
        locked.decided_at = now
        locked.save(update_fields=["status", "decided_at"])
        announce(Event.BID_REJECTED, locked.pk)
        return locked


def bid_withdraw(*, bid: Bid, by_membership: Membership, now: datetime | None = None) -> Bid:
    """The bidder takes a pending bid back before gate closure."""
    now = now or timezone.now()
    with action_transaction():
        interval = lock_interval(bid.posting.interval_id)
        posting = lock_posting(bid.posting_id)
        locked = lock_bid(bid.pk)
        if locked.membership_id != by_membership.pk:
            raise ApplicationError(
                ErrorCode.PERMISSION_DENIED, "Only the bidder can withdraw a bid.", field="bid"
            )
        check_interval_open(interval, now)
        _check_pending(locked, posting)
        locked.status = BidStatus.WITHDRAWN
        locked.decided_at = now
        locked.save(update_fields=["status", "decided_at"])
        return locked


def bid_modify(
    *,
    bid: Bid,
    by_membership: Membership,
    quantity_kwh: Decimal | str | int | None = None,
    price_per_kwh: Decimal | str | int | None = None,
    now: datetime | None = None,
) -> Bid:
    """The bidder changes a pending bid's quantity or price before gate closure.

    Time priority as for postings (``posting_modify``): lowering only the quantity keeps the
    bid's place among the posting's bids (its ``submitted_at``); any other change, a higher
    quantity or a new price, takes a new one (``submitted_at = now``). The same checks as a new
    bid hold: the quantity above 0, within what the posting still has and the meter point's
    capacity; the price within floor and cap and one the posting can accept. A call that
    changes nothing returns the bid untouched.
    """
    now = now or timezone.now()
    quantity = (
        None
        if quantity_kwh is None
        else to_decimal(quantity_kwh, field="quantity_kwh", quantum=KWH)
    )
    price = (
        None if price_per_kwh is None else to_decimal(price_per_kwh, field="price_per_kwh",
                                                      quantum=PRICE)
    )  # fmt: skip
    if quantity is not None:
        check_quantity_positive(quantity)
    with action_transaction():
        # Lock order: interval, meter point, posting, bid.
        interval = lock_interval(bid.posting.interval_id)
        (meter_point,) = lock_meter_points([bid.meter_point_id])
        posting = lock_posting(bid.posting_id)
        locked = lock_bid(bid.pk)
        if locked.membership_id != by_membership.pk:
            raise ApplicationError(
                ErrorCode.PERMISSION_DENIED, "Only the bidder can modify a bid.", field="bid"
            )
        check_member_may_trade(fresh_membership(by_membership))
        check_interval_open(interval, now)
        _check_pending(locked, posting)
        new_quantity = locked.quantity_kwh if quantity is None else quantity
        new_price = locked.price_per_kwh if price is None else price
        if new_quantity == locked.quantity_kwh and new_price == locked.price_per_kwh:
            return locked
        if new_quantity > posting.remaining_kwh:
            raise ApplicationError(
                ErrorCode.OUT_OF_RANGE,
                f"The posting has only {posting.remaining_kwh} kWh left.",
                field="quantity_kwh",
            )
        if new_quantity > locked.quantity_kwh:
            # Its current quantity is among the meter point's commitments already.
            check_capacity(
                meter_point=meter_point,
                interval=interval,
                side=opposite(posting.side),
                quantity_kwh=new_quantity - locked.quantity_kwh,
            )
        if new_price != locked.price_per_kwh:
            check_price_in_band(new_price, interval.rules, field="price_per_kwh")
            check_bid_price_meets_posting(posting, new_price)
        keeps_priority = new_quantity < locked.quantity_kwh and new_price == locked.price_per_kwh
        locked.quantity_kwh = new_quantity
        locked.price_per_kwh = new_price
        if not keeps_priority:
            locked.submitted_at = now
        locked.save(update_fields=["quantity_kwh", "price_per_kwh", "submitted_at"])
        return locked
