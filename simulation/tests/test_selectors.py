"""The simulation's reads of an interval's trades: each meter point's fill and the totals."""

from __future__ import annotations

from decimal import Decimal

from marketplace.ledger.tests.conftest import confirmed_intervals, make_trade, member_before
from marketplace.models import Trade
from marketplace.tests.factories import CommunityFactory
from simulation.selectors import PEER_SOURCES, interval_fills, interval_summary


def test_fills_and_summary_add_up_the_trades_in_their_order(db):
    community = CommunityFactory()
    interval = confirmed_intervals(community)[0]  # type: ignore[arg-type]
    alice, bob, carol = (member_before(community) for _ in range(3))  # type: ignore[arg-type]
    make_trade(
        interval, buyer=bob, seller=alice, kwh="1.333", price="0.1517", seller_price="0.1411"
    )
    make_trade(interval, buyer=carol, seller=alice, kwh="0.7", price="0.1333", confirmed_kwh="0.5")
    make_trade(interval, buyer=bob, seller=None, kwh="2.001", price="0.3000")
    make_trade(interval, buyer=None, seller=carol, kwh="0.101", price="0.0800", confirmed_kwh="0")
    # The same sums, one Decimal at a time through float, in the trades' order.
    bought: dict[int, dict[str, float]] = {}
    value: dict[int, float] = {}
    p2p = peer_value = grid_bought = grid_sold = curtailed = 0.0
    for trade in Trade.objects.filter(interval=interval):
        delivered = float(trade.confirmed_kwh)
        curtailed += float(trade.quantity_kwh) - delivered
        if trade.buyer_meter_point_id is not None:
            kwh = bought.setdefault(trade.buyer_meter_point_id, {})
            kwh[trade.source] = kwh.get(trade.source, 0.0) + delivered
        if trade.source in PEER_SOURCES:
            p2p += delivered
            peer_value += delivered * float(trade.price_per_kwh)
            mp = trade.seller_meter_point_id or 0
            value[mp] = value.get(mp, 0.0) + delivered * float(trade.seller_price_per_kwh)
        elif trade.seller_id is None:
            grid_bought += delivered
        else:
            grid_sold += delivered
    fills = interval_fills(interval=interval)
    assert {mp: fill.bought_kwh for mp, fill in fills.items() if fill.bought_kwh} == bought
    assert {mp: fill.sold_value for mp, fill in fills.items() if fill.sold_value} == value
    assert fills[carol.meter_point.pk].curtailed_buy_kwh == float(Decimal("0.7")) - 0.5
    assert fills[carol.meter_point.pk].curtailed_sell_kwh == float(Decimal("0.101"))
    assert fills[alice.meter_point.pk].peer_kwh("sell") == 1.333 + 0.5
    summary = interval_summary(interval=interval)
    assert (summary.p2p_kwh, summary.grid_bought_kwh, summary.grid_sold_kwh) == (
        p2p,
        grid_bought,
        grid_sold,
    )
    assert summary.curtailed_kwh == curtailed
    assert summary.mean_price == peer_value / p2p
