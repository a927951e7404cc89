"""Community pricing rules in the pipeline's clearing step, composite pools with pending bids,
and bill sharing's month-end true-up, with hand-worked numbers."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import F

from config.errors import ErrorCode
from marketplace.ledger.models import AccountKind, LedgerAccount, LedgerEntry, TransactionKind
from marketplace.ledger.selectors import account_balance, member_balance
from marketplace.ledger.services import interval_settle
from marketplace.ledger.services.true_up import bill_sharing_true_up, bill_sharing_true_ups_due
from marketplace.models import BidStatus, Interval, IntervalState, Trade, TradeSource
from marketplace.services.clearing import interval_clear
from marketplace.tests.factories import T0, member, new_community, open_interval
from marketplace.tests.fixtures import bid, post, refused

D = Decimal
AFTER_GATE = T0 + timedelta(minutes=11)
TIMES = [T0 + timedelta(seconds=s) for s in range(4)]


def close_gate(interval: Interval) -> Interval:
    Interval.objects.filter(pk=interval.pk).update(state=IntervalState.GATE_CLOSED)
    interval.refresh_from_db()
    return interval


def quantity_book(mechanism: str):
    """Sellers A 2 kWh, B 1 kWh; buyers C 4 kWh, D 2 kWh (limits are ignored by the rules).

    D = 6, G = 3: the community imports 3 kWh. Tariffs r = 0.32, f = 0.08.
    """
    community = new_community(market_structure="pool", clearing_mechanism=mechanism)
    interval = open_interval(community)
    a, b, c, d = (member(community) for _ in range(4))
    post(a, interval, "sell", "2", "0.30", now=TIMES[0])
    post(b, interval, "sell", "1", "0.30", now=TIMES[1])
    post(c, interval, "buy", "4", "0.01", now=TIMES[2])
    post(d, interval, "buy", "2", "0.01", now=TIMES[3])
    return community, close_gate(interval), tuple(m.membership.pk for m in (a, b, c, d))


def rows(source: str) -> list[tuple]:
    return list(
        Trade.objects.filter(source=source)
        .order_by("sequence")
        .values_list("buyer_id", "seller_id", "quantity_kwh", "price_per_kwh",
                     "seller_price_per_kwh")
    )  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mechanism", "buy", "sell"),
    [
        # MMR (Long et al.): P_mid = (0.32 + 0.08)/2 = 0.20; G < D, so sellers get P_mid and
        # buyers share G P_mid + (D - G) r = 0.60 + 0.96 = 1.56 over 6 kWh: 0.26.
        ("mid-market-rate", "0.26", "0.20"),
        # SDR (Liu et al.): SDR = 0.5, P_s = r f / ((r - f) SDR + f) = 0.0256 / 0.20 = 0.128,
        # P_b = P_s SDR + r (1 - SDR) = 0.064 + 0.16 = 0.224.
        ("supply-demand-ratio", "0.224", "0.128"),
        # Bill sharing: buyers share the import cost (D - G) r = 0.96 over 6 kWh: 0.16; a net
        # importer exports nothing, so sellers share nothing.
        ("bill-sharing", "0.16", "0"),
    ],
)
def test_community_rules_price_every_member_by_the_rule(mechanism, buy, sell):
    _, interval, (a, b, c, d) = quantity_book(mechanism)
    summary = interval_clear(interval=interval, now=AFTER_GATE)
    # Matched kWh pair buyers with sellers in time priority: C-A 2, D-B 1.
    assert rows(TradeSource.COMMUNITY) == [
        (c, a, D("2"), D(buy), D(sell)),
        (d, b, D("1"), D(buy), D(sell)),
    ]
    # The 3 kWh imported are split over the buyers by consumption (4 : 2), at their rule price.
    assert sorted(rows(TradeSource.GRID)) == [(c, None, D("2"), D(buy), D(buy)),
                                              (d, None, D("1"), D(buy), D(buy))]  # fmt: skip
    assert (summary.mechanism, summary.grid_import_kwh, summary.grid_export_kwh) == (
        mechanism, D("3"), D("0"),
    )  # fmt: skip
    # Members pay the community's grid bill, 3 kWh at retail, and not a cent more.
    paid = sum(
        (t.quantity_kwh * t.price_per_kwh for t in Trade.objects.filter(buyer__isnull=False)), D(0)
    )
    received = sum(
        (
            t.quantity_kwh * t.seller_price_per_kwh
            for t in Trade.objects.filter(seller__isnull=False)
        ),
        D(0),
    )
    assert paid - received == D("3") * D("0.32")


@pytest.mark.django_db
def test_community_rule_prices_round_in_the_communitys_favour():
    # MMR, a seller of 1 kWh and a buyer of 4.9 kWh: the buyer pays (1 * 0.20 + 3.9 * 0.32)
    # / 4.9 = 1.448 / 4.9 = 0.295510.. per kWh, rounded up to 0.2956.
    community = new_community(market_structure="pool", clearing_mechanism="mid-market-rate")
    interval = open_interval(community)
    seller, buyer = member(community), member(community)
    post(seller, interval, "sell", "1", "0.10")
    post(buyer, interval, "buy", "4.9", "0.10", now=TIMES[1])
    interval_clear(interval=close_gate(interval), now=AFTER_GATE)
    assert {t.price_per_kwh for t in Trade.objects.all()} == {D("0.2956")}
    paid = sum((t.quantity_kwh * t.price_per_kwh for t in Trade.objects.all()), D(0))
    assert paid - D("0.20") >= D("3.9") * D("0.32")


@pytest.mark.django_db
def test_composite_pool_takes_the_bids_still_pending_at_gate_closure():
    # The case: a buyer bids 0.30 on an offer whose poster never accepts, while two
    # sellers would otherwise export at feed-in 0.08.
    community = new_community(market_structure="composite")
    interval = open_interval(community)
    a, b, x = member(community), member(community), member(community)
    offer = post(a, interval, "sell", "2", "0.10", auto_accept_best_bids=False, now=TIMES[0])
    post(b, interval, "sell", "1", "0.12", auto_accept_best_bids=False, now=TIMES[1])
    pending = bid(x, offer, "2", "0.30", now=TIMES[2])
    summary = interval_clear(interval=close_gate(interval), now=AFTER_GATE)
    # Pool: X's bid 2 @ 0.30 against A 2 @ 0.10 and B 1 @ 0.12. m = 2 kWh; nothing is left on
    # the buy side, B's 0.12 is the best excluded ask: [0.10, min(0.30, 0.12)], midpoint 0.11.
    xa = (x.membership.pk, a.membership.pk, D("2"), D("0.11"), D("0.11"))
    assert rows(TradeSource.POOL) == [xa]
    assert rows(TradeSource.GRID) == [(None, b.membership.pk, D("1"), D("0.08"), D("0.08"))]
    pending.refresh_from_db()
    assert (pending.status, pending.accepted_kwh) == (BidStatus.POOLED, D("2"))
    assert summary.bids_expired == 0


@pytest.mark.django_db
def test_a_pooled_bids_unfilled_rest_lapses_instead_of_going_to_the_grid():
    community = new_community(market_structure="composite")
    interval = open_interval(community)
    a, x, y = member(community), member(community), member(community)
    offer = post(a, interval, "sell", "2", "0.10", auto_accept_best_bids=False)
    pending = bid(x, offer, "2", "0.30", now=TIMES[1])
    post(y, interval, "buy", "1", "0.40", now=TIMES[2])
    interval_clear(interval=close_gate(interval), now=AFTER_GATE)
    # Y's 0.40 goes first, X gets A's other kWh.
    assert [(r[0], r[2]) for r in rows(TradeSource.POOL)] == [
        (y.membership.pk, D("1")),
        (x.membership.pk, D("1")),
    ]
    assert rows(TradeSource.GRID) == []  # X asked for 2 kWh at 0.30 at most, not at retail
    pending.refresh_from_db()
    assert (pending.status, pending.accepted_kwh) == (BidStatus.POOLED, D("1"))


def settle(interval: Interval, at: datetime) -> None:
    """Confirm every trade as scheduled and settle on the schedule (no readings: estimated)."""
    Trade.objects.filter(interval=interval).update(confirmed_kwh=F("quantity_kwh"))
    Interval.objects.filter(pk=interval.pk).update(state=IntervalState.CONFIRMED)
    assert interval_settle(interval=interval, now=at).settled
    Interval.objects.filter(pk=interval.pk).update(state=IntervalState.SETTLED)


@pytest.mark.django_db
def test_a_month_of_bill_sharing_is_trued_up_to_longs_per_horizon_prices():
    community = new_community(
        market_structure="pool", clearing_mechanism="bill-sharing", fee_per_kwh=D("0")
    )
    open_interval(community)
    first, second, third = Interval.objects.filter(community=community).order_by("start")[:3]
    a, b, c = (member(community) for _ in range(3))
    # t1: A sells 3, C buys 1 -> export 2 (at 0.08).  t2: B sells 1, C buys 4 -> import 3.
    # t3: A sells 1, B buys 1 -> balanced.
    book = [
        (first, [(a, "sell", "3"), (c, "buy", "1")]),
        (second, [(b, "sell", "1"), (c, "buy", "4")]),
        (third, [(a, "sell", "1"), (b, "buy", "1")]),
    ]
    for interval, orders in book:
        for n, (who, side, kwh) in enumerate(orders):
            post(who, interval, side, kwh, "0.20", now=T0 + timedelta(seconds=n))
        interval_clear(interval=close_gate(interval), now=AFTER_GATE)
    after_window = third.end + timedelta(hours=3)
    for interval, _ in book:
        settle(interval, after_window)
    # The rest of the month's intervals had no trades; settled, they hold nothing to share.
    Interval.objects.filter(community=community).exclude(
        pk__in=[first.pk, second.pk, third.pk]
    ).update(state=IntervalState.SETTLED)
    month = date(2026, 3, 1)
    with refused(ErrorCode.INVALID_STATE, "month"):
        bill_sharing_true_up(community=community, month=month, now=after_window)

    posted = bill_sharing_true_up(
        community=community, month=month, now=datetime(2026, 4, 1, 12, tzinfo=T0.tzinfo)
    )
    assert posted is not None
    assert posted.kind == TransactionKind.ADJUSTMENT
    # Long's per-horizon prices: consumption 1 + 4 + 1 = 6 kWh, import cost 3 * 0.32 = 0.96:
    # P_buy = 0.16. Generation 3 + 1 + 1 = 5 kWh, export revenue 2 * 0.08 = 0.16: P_sell = 0.032.
    # A sold 4: +0.128; B sold 1, bought 1: +0.032 - 0.16; C bought 5: -0.80.
    assert member_balance(membership=a.membership) == D("0.13")
    assert member_balance(membership=b.membership) == D("-0.13")
    assert member_balance(membership=c.membership) == D("-0.80")
    grid = LedgerAccount.objects.get(community=community, kind=AccountKind.GRID)
    # The community's grid account holds the month's bill: 0.96 to pay, 0.16 to receive.
    assert account_balance(account=grid) == D("0.80")
    assert sum(LedgerEntry.objects.values_list("amount", flat=True)) == 0
    # Once only: the periodic task finds the month done.
    assert bill_sharing_true_ups_due(now=datetime(2026, 4, 2, tzinfo=T0.tzinfo)) == []
    assert (
        bill_sharing_true_up(
            community=community, month=month, now=after_window + timedelta(days=40)
        )
        == posted
    )
