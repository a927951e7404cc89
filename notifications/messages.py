"""What each event tells whom: reads the market's rows and words the messages.

Every message has a key naming its event and recipient, so building the same event twice (a
retried task, a bid accepted by the poster and seen again at clearing) delivers it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, MembershipRole, MeterPoint, MeterPointStatus
from config import formatting
from marketplace.ledger.models import Settlement
from marketplace.ledger.selectors import member_statement
from marketplace.models import Bid, BidStatus, Community, Interval, Side, Trade
from notifications.events import Event
from notifications.models import Notification, NotificationKind

# Statements are announced from this day of the next month (the month's last settlements are in).
STATEMENT_DAY = 2


@dataclass(frozen=True, slots=True)
class Message:
    user_id: int
    kind: NotificationKind
    key: str
    title: str
    body: str
    url: str


def _span(interval: Interval, community: Community) -> str:
    return formatting.span(interval.start, interval.end, community)


def _bid_messages(event: Event, bid_id: int) -> Iterator[Message]:
    bid = (
        Bid.objects.select_related(
            "membership", "posting__membership", "posting__interval__community"
        )
        .filter(pk=bid_id)
        .first()
    )
    if bid is None:
        return
    posting, interval = bid.posting, bid.posting.interval
    community = interval.community
    when = _span(interval, community)
    what = "offer" if posting.side == Side.SELL else "request"
    board = reverse("marketplace:board", args=[community.slug]) + f"?interval={interval.pk}"
    price = f"{formatting.cents(bid.price_per_kwh, community)}"
    if event == Event.BID_RECEIVED and bid.status == BidStatus.PENDING:
        yield Message(
            posting.membership.user_id,
            NotificationKind.BID_RECEIVED,
            f"bid_received:{bid.pk}",
            f"New bid on your {what} for {when}",
            f"{bid.membership.pseudonym} bids {formatting.kwh(bid.quantity_kwh)} at {price}. "
            "Accept or reject it on the board before gate closure.",
            board + "#my-postings",
        )
    elif event in (Event.BID_ACCEPTED, Event.INTERVAL_CLEARED) and bid.status == BidStatus.ACCEPTED:
        trade = Trade.objects.filter(bid=bid).first()
        quantity = trade.quantity_kwh if trade else bid.quantity_kwh
        yield Message(
            bid.membership.user_id,
            NotificationKind.BID_ACCEPTED,
            f"bid_accepted:{bid.pk}",
            f"Your bid for {when} is accepted",
            f"A trade of {formatting.kwh(quantity)} at {price}. It is delivered once the grid "
            "check confirms it.",
            reverse("marketplace:trades", args=[community.slug]),
        )
    elif event == Event.BID_REJECTED and bid.status == BidStatus.REJECTED:
        yield Message(
            bid.membership.user_id,
            NotificationKind.BID_REJECTED,
            f"bid_rejected:{bid.pk}",
            f"Your bid for {when} was not accepted",
            f"The poster turned down your bid of {formatting.kwh(bid.quantity_kwh)} at {price}. "
            "Other postings may still be open.",
            board,
        )


def _cleared(interval_id: int) -> Iterator[Message]:
    accepted = Bid.objects.filter(
        posting__interval_id=interval_id, status=BidStatus.ACCEPTED
    ).values_list("pk", flat=True)
    for bid_id in accepted:
        yield from _bid_messages(Event.INTERVAL_CLEARED, bid_id)


def _curtailed(interval_id: int) -> Iterator[Message]:
    trades = (
        Trade.objects.filter(interval_id=interval_id, curtailed_kwh__gt=0)
        .select_related("interval__community", "buyer", "seller")
        .order_by("pk")
    )
    for trade in trades:
        community = trade.interval.community
        reason = formatting.curtailment_reason(trade.curtailment_reason)
        for who in (trade.buyer, trade.seller):
            if who is None:
                continue
            side = "purchase" if who == trade.buyer else "sale"
            delivered = formatting.kwh(trade.quantity_kwh - trade.curtailed_kwh)
            yield Message(
                who.user_id,
                NotificationKind.TRADE_CURTAILED,
                f"trade_curtailed:{trade.pk}:{who.pk}",
                f"Your {side} for {_span(trade.interval, community)} was curtailed",
                f"{formatting.kwh(trade.curtailed_kwh)} of {formatting.kwh(trade.quantity_kwh)} "
                f"called off; {delivered} will be delivered. {reason.plain}",
                reverse("marketplace:trades", args=[community.slug]) + f"#trade-{trade.pk}",
            )


def _settled(interval_id: int) -> Iterator[Message]:
    settlements = Settlement.objects.filter(
        interval_id=interval_id, membership__role=MembershipRole.PROSUMER
    ).select_related("interval__community", "membership")
    for settlement in settlements:
        community = settlement.interval.community
        imbalance = formatting.kwh(settlement.imbalance_kwh)
        yield Message(
            settlement.membership.user_id,
            NotificationKind.SETTLEMENT,
            f"settlement:{settlement.pk}",
            f"Settled: {_span(settlement.interval, community)}",
            f"Bought {formatting.kwh(settlement.confirmed_bought_kwh)}, sold "
            f"{formatting.kwh(settlement.confirmed_sold_kwh)}; your meter's imbalance was "
            f"{imbalance}. The money is on your statement.",
            reverse("ledger:statement_index", args=[community.slug]),
        )


def _previous_month(today: date) -> tuple[int, int]:
    first = today.replace(day=1) - timedelta(days=1)
    return first.year, first.month


def statements_due(now: datetime | None = None) -> Iterator[Message]:
    """Last month's statement of every member settled in it, once per member and month.

    From the 2nd of the month (local), when the month's last intervals have been settled too;
    members already told are skipped before their statement is read.
    """
    now = now or timezone.now()
    for community in Community.objects.all():
        zone = ZoneInfo(community.timezone)
        today = now.astimezone(zone).date()
        if today.day < STATEMENT_DAY:
            continue
        year, month = _previous_month(today)
        start = datetime(year, month, 1, tzinfo=zone)
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=zone)
        told = Notification.objects.filter(
            kind=NotificationKind.STATEMENT, key__endswith=f":{year:04d}-{month:02d}"
        ).values_list("user_id", flat=True)
        members = (
            Membership.objects.filter(
                community=community,
                settlements__interval__start__gte=start,
                settlements__interval__start__lt=end,
            )
            .exclude(user_id__in=told)
            .distinct()
            .select_related("community")
        )
        for membership in members:
            statement = member_statement(membership=membership, year=year, month=month)
            closing = formatting.money(statement.closing_balance, community)
            saved = formatting.money(statement.savings, community)
            yield Message(
                membership.user_id,
                NotificationKind.STATEMENT,
                f"statement:{membership.pk}:{year:04d}-{month:02d}",
                f"Your statement for {start:%B %Y} is ready",
                f"{community.name}: closing balance {closing}, saved {saved} against the grid.",
                reverse("ledger:statement", args=[community.slug, year, month]),
            )


def _approved(membership_id: int) -> Iterator[Message]:
    membership = Membership.objects.select_related("community").filter(Q(pk=membership_id)).first()
    if membership is None or membership.status != "approved":
        return
    community = membership.community
    yield Message(
        membership.user_id,
        NotificationKind.MEMBERSHIP_APPROVED,
        f"membership_approved:{membership.pk}:{membership.decided_at:%Y%m%d%H%M%S}",
        f"Welcome to {community.name}",
        f"Your membership is approved; on the board you are {membership.pseudonym}. "
        "Register a meter point, then post offers and requests.",
        reverse("marketplace:dashboard", args=[community.slug]),
    )


def _meter_point_approved(meter_point_id: int) -> Iterator[Message]:
    meter_point = (
        MeterPoint.objects.select_related("membership__community").filter(pk=meter_point_id).first()
    )
    if meter_point is None or meter_point.status != MeterPointStatus.APPROVED:
        return
    membership = meter_point.membership
    community = membership.community
    where = "" if meter_point.bus is None else f", on bus {meter_point.bus}"
    yield Message(
        membership.user_id,
        NotificationKind.METER_POINT_APPROVED,
        f"meter_point_approved:{meter_point.pk}:{meter_point.decided_at:%Y%m%d%H%M%S}",
        f"Meter point {meter_point.label} is approved",
        f"{community.name} approved it with {formatting.kw(meter_point.import_capacity_kw)} "
        f"import and {formatting.kw(meter_point.export_capacity_kw)} export{where}; "
        "it can post offers and requests now.",
        reverse("marketplace:dashboard", args=[community.slug]),
    )


def messages_for(event: Event, object_id: int) -> Iterable[Message]:
    if event == Event.MEMBERSHIP_APPROVED:
        return _approved(object_id)
    if event == Event.METER_POINT_APPROVED:
        return _meter_point_approved(object_id)
    if event in (Event.BID_RECEIVED, Event.BID_ACCEPTED, Event.BID_REJECTED):
        return _bid_messages(event, object_id)
    if event == Event.INTERVAL_CLEARED:
        return _cleared(object_id)
    if event == Event.INTERVAL_CONFIRMED:
        return _curtailed(object_id)
    if event == Event.INTERVAL_SETTLED:
        return _settled(object_id)
    return statements_due()
