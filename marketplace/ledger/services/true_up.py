"""Bill sharing's month-end true-up: the month's bill shared at the month's prices.

Bill sharing (C. Long, J. Wu, C. Zhang, L. Thomas, M. Cheng, N. Jenkins, "Peer-to-peer energy
trading in a community microgrid", IEEE PES General Meeting 2017, section III-A) shares the
community's bill with the outside grid over the billing period among its members: buyers pay the
period's import cost in proportion to what they consumed, sellers share its export revenue in
proportion to what they generated. Over the horizon T (here a calendar month in the community's
time zone), with D_t and G_t the community's confirmed purchases and sales in interval t and r_t,
f_t that interval's retail and feed-in tariffs:

    P_buy  = sum_t r_t * max(D_t - G_t, 0) / sum_t D_t
    P_sell = sum_t f_t * max(G_t - D_t, 0) / sum_t G_t

and member i, who bought d_i and sold g_i kWh over the month, pays P_buy * d_i and receives
P_sell * g_i. Each interval is first settled provisionally at that interval's own bill-sharing
prices (the same formulas over one interval, ``marketplace.clearing.bill_sharing``, at the tick
rounded in the community's favour). Once the month is over and every bill-sharing interval of it
is settled, ``bill_sharing_true_up`` books for each member the difference between the month's
amount and what its provisional entries booked, as one adjustment transaction against the
community's grid account. Across members the differences cancel up to rounding: the grid account
then holds exactly the month's import cost less its export revenue (to the cent), whatever
curtailment did to the scheduled quantities the provisional prices were computed from.
"""

from __future__ import annotations

import zoneinfo
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Q, Sum
from django.db.models.functions import TruncMonth

from accounts.models import Membership
from config.errors import ApplicationError, ErrorCode
from marketplace.ledger.lock_objects import lock_ledger_chain
from marketplace.ledger.models import (
    AccountKind,
    EntryKind,
    LedgerEntry,
    LedgerTransaction,
    TransactionKind,
)
from marketplace.ledger.services.ledger import (
    ZERO,
    LedgerLine,
    ledger_account_for_community,
    ledger_account_for_member,
    ledger_post,
)
from marketplace.models import (
    ClearingMechanism,
    Community,
    Interval,
    IntervalState,
    Trade,
    TradeSource,
)

_PROVISIONAL_KINDS = (
    EntryKind.PEER_PURCHASE,
    EntryKind.PEER_SALE,
    EntryKind.GRID_PURCHASE,
    EntryKind.GRID_SALE,
)
# The bill-sharing step writes community and grid trades; settlement's memo names the source.
_PROVISIONAL_MEMOS = Q(memo__startswith=f"{TradeSource.COMMUNITY} trade ") | Q(
    memo__startswith=f"{TradeSource.GRID} trade "
)


@dataclass(frozen=True)
class MonthPrices:
    """Long's per-horizon prices of one month, with the totals they come from."""

    consumed_kwh: Decimal  # sum_t D_t
    generated_kwh: Decimal  # sum_t G_t
    import_cost: Decimal  # sum_t r_t max(D_t - G_t, 0)
    export_revenue: Decimal  # sum_t f_t max(G_t - D_t, 0)

    @property
    def buy_price(self) -> Decimal:
        return self.import_cost / self.consumed_kwh if self.consumed_kwh else ZERO

    @property
    def sell_price(self) -> Decimal:
        return self.export_revenue / self.generated_kwh if self.generated_kwh else ZERO


def true_up_key(community: Community, month: date) -> str:
    return f"true-up:{community.pk}:{month:%Y-%m}"


def month_bounds(community: Community, month: date) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's, in the community's time zone."""
    zone = zoneinfo.ZoneInfo(community.timezone)
    start = datetime(month.year, month.month, 1, tzinfo=zone)
    after = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=zone)
    return start, after


def bill_sharing_intervals(community: Community, month: date) -> list[Interval]:
    start, after = month_bounds(community, month)
    return list(
        Interval.objects.select_related("rules").filter(
            community=community,
            start__gte=start,
            start__lt=after,
            rules__clearing_mechanism=ClearingMechanism.BILL_SHARING,
        )
    )


def bill_sharing_true_up(
    *, community: Community, month: date, now: datetime
) -> LedgerTransaction | None:
    """True up ``month``'s bill sharing (module docstring); None if the month had none.

    Idempotent: a month already trued up returns its transaction. Raises ``ApplicationError``
    ``invalid_state`` while the month is not over or one of its bill-sharing intervals is not
    settled yet.
    """
    if now < month_bounds(community, month)[1]:
        raise ApplicationError(ErrorCode.INVALID_STATE, "The month is not over yet.", field="month")
    intervals = bill_sharing_intervals(community, month)
    if not intervals:
        return None
    if any(i.state != IntervalState.SETTLED for i in intervals):
        raise ApplicationError(
            ErrorCode.INVALID_STATE,
            "Every bill-sharing interval of the month must be settled first.",
            field="month",
        )
    key = true_up_key(community, month)
    with transaction.atomic():
        lock_ledger_chain()
        existing = LedgerTransaction.objects.filter(key=key).first()
        if existing is not None:
            return existing
        rules_of = {i.pk: i.rules for i in intervals}
        bought: dict[int, Decimal] = defaultdict(lambda: ZERO)
        sold: dict[int, Decimal] = defaultdict(lambda: ZERO)
        demand: dict[int, Decimal] = defaultdict(lambda: ZERO)
        supply: dict[int, Decimal] = defaultdict(lambda: ZERO)
        for interval_id, buyer, seller, kwh in Trade.objects.filter(
            interval_id__in=rules_of,
            source__in=(TradeSource.COMMUNITY, TradeSource.GRID),
            confirmed_kwh__gt=0,
        ).values_list("interval_id", "buyer_id", "seller_id", "confirmed_kwh"):
            if buyer is not None:
                bought[buyer] += kwh
                demand[interval_id] += kwh
            if seller is not None:
                sold[seller] += kwh
                supply[interval_id] += kwh
        prices = MonthPrices(
            consumed_kwh=sum(demand.values(), ZERO),
            generated_kwh=sum(supply.values(), ZERO),
            import_cost=sum(
                (rules_of[t].retail_tariff * max(demand[t] - supply[t], ZERO) for t in rules_of),
                ZERO,
            ),
            export_revenue=sum(
                (rules_of[t].feed_in_tariff * max(supply[t] - demand[t], ZERO) for t in rules_of),
                ZERO,
            ),
        )
        booked: dict[tuple[int, bool], Decimal] = defaultdict(lambda: ZERO)
        for membership_id, kind, total in (
            LedgerEntry.objects.filter(
                _PROVISIONAL_MEMOS,
                account__membership__isnull=False,
                interval_id__in=rules_of,
                kind__in=_PROVISIONAL_KINDS,
            )
            .values("account__membership_id", "kind")
            .annotate(total=Sum("amount"))
            .order_by()
            .values_list("account__membership_id", "kind", "total")
        ):
            buying = kind in (EntryKind.PEER_PURCHASE, EntryKind.GRID_PURCHASE)
            booked[membership_id, buying] += total
        grid = ledger_account_for_community(community=community, kind=AccountKind.GRID)
        members = Membership.objects.in_bulk(sorted(bought.keys() | sold.keys()))
        memo = "bill sharing true-up"
        lines: list[LedgerLine] = []
        for pk, membership in sorted(members.items()):
            account = ledger_account_for_member(membership=membership)
            for buying, kind, target, kwh, price in (
                (True, EntryKind.PEER_PURCHASE, -prices.buy_price * bought[pk], bought[pk],
                 prices.buy_price),
                (False, EntryKind.PEER_SALE, prices.sell_price * sold[pk], sold[pk],
                 prices.sell_price),
            ):  # fmt: skip
                delta = target - booked[pk, buying]
                if delta:
                    lines.append(LedgerLine(account, delta, kind, kwh, price, memo))
                    lines.append(LedgerLine(grid, -delta, kind, kwh, price, memo))
        return ledger_post(
            community=community,
            key=key,
            kind=TransactionKind.ADJUSTMENT,
            lines=lines,
            memo=(
                f"bill sharing true-up {month:%Y-%m}: buy {prices.buy_price:.6f}, "
                f"sell {prices.sell_price:.6f} per kWh"
            ),
            now=now,
        )


def bill_sharing_true_ups_due(*, now: datetime) -> list[LedgerTransaction]:
    """True up every finished month with bill sharing whose intervals are all settled."""
    done: list[LedgerTransaction] = []
    months: set[tuple[int, date]] = set()
    communities = Community.objects.filter(
        rules__clearing_mechanism=ClearingMechanism.BILL_SHARING
    ).distinct()
    communities_by_pk = {c.pk: c for c in communities}
    for community in communities:
        zone = zoneinfo.ZoneInfo(community.timezone)
        for month_start in (
            Interval.objects.filter(
                community=community,
                rules__clearing_mechanism=ClearingMechanism.BILL_SHARING,
                start__lt=now,
            )
            .annotate(month=TruncMonth("start", tzinfo=zone))
            .values_list("month", flat=True)
            .distinct()
            .order_by()
        ):
            months.add((community.pk, month_start.date()))
    for community_id, month in sorted(months):
        community = communities_by_pk[community_id]
        if now < month_bounds(community, month)[1]:
            continue
        if LedgerTransaction.objects.filter(key=true_up_key(community, month)).exists():
            continue
        try:
            posted = bill_sharing_true_up(community=community, month=month, now=now)
        except ApplicationError:
            continue  # not all settled yet: the next run tries again
        if posted is not None:
            done.append(posted)
    return done
