"""Each trade side's use of the network (the by-use network charge), and the board's forecast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.services import meter_point_assign_bus
from grid.network_use import network_use
from grid.networks import reference_network
from marketplace.models import IntervalState, NetworkChargeRule, Trade, TradeSource
from marketplace.selectors.network import expected_network_charges, pool_network_charge
from marketplace.services.network_charges import side_uses, trade_network_uses_set
from marketplace.services.postings import posting_create
from marketplace.tests.pipeline.helpers import community_with_homes, interval_at, trade

NOON = datetime(2026, 6, 21, 11, 0, tzinfo=UTC)


def _f(use: Decimal | None) -> float:
    assert use is not None
    return float(use)


@pytest.fixture(scope="module")
def use():
    return network_use(reference_network("cigre_lv"))


def test_a_bilateral_trade_splits_the_pairs_use(use):
    buyer, seller = side_uses(use, source=TradeSource.BILATERAL, buyer=(True, 19), seller=(True, 2))
    assert buyer == seller
    assert _f(buyer) * 2 == pytest.approx(use.pair_use(2, 19), abs=2e-4)


def test_one_bus_uses_nothing_and_the_grid_side_pays_nothing(use):
    assert side_uses(use, source=TradeSource.BILATERAL, buyer=(True, 19), seller=(True, 19)) == (
        Decimal(0),
        Decimal(0),
    )
    buyer, seller = side_uses(use, source=TradeSource.GRID, buyer=(True, 19), seller=(False, None))
    assert seller is None
    assert _f(buyer) == pytest.approx(use.head_use(19), abs=1e-4)


def test_pool_sides_carry_their_own_use_from_the_feeder_head(use):
    buyer, seller = side_uses(use, source=TradeSource.POOL, buyer=(True, 19), seller=(True, 41))
    assert _f(buyer) == pytest.approx(use.head_use(19), abs=1e-4)
    assert _f(seller) == pytest.approx(use.head_use(41), abs=1e-4)


def test_a_side_off_the_network_carries_none(use):
    buyer, seller = side_uses(
        use, source=TradeSource.BILATERAL, buyer=(True, None), seller=(True, 19)
    )
    assert buyer is None
    assert _f(seller) == pytest.approx(use.head_use(19) / 2, abs=1e-4)


@pytest.mark.django_db
def test_uses_are_set_on_the_intervals_trades_and_the_board_forecasts_the_charge():
    community, homes = community_with_homes(
        homes=3, network_charge_rule=NetworkChargeRule.BY_USE, network_tariff_per_kwh="0.0300"
    )
    for home, bus in zip(homes, [19, 19, 41], strict=True):
        home.meter_point = meter_point_assign_bus(
            meter_point=home.meter_point, bus=bus, assigned_by=None
        )
    interval = interval_at(community, NOON)
    offer = posting_create(
        membership=homes[2].membership,
        meter_point=homes[2].meter_point,
        interval=interval,
        side="sell",
        quantity_kwh="1.000",
        limit_price_per_kwh="0.2000",
        now=interval.gate_closure_at - timedelta(minutes=30),
    )
    near = expected_network_charges(community=community, own_bus=41, posting_ids=[offer.pk])
    far = expected_network_charges(community=community, own_bus=19, posting_ids=[offer.pk])
    assert near[offer.pk] == 0
    assert far[offer.pk] > 0

    interval.state = IntervalState.CLEARED
    interval.save()
    same_bus = trade(interval, seller=homes[0], buyer=homes[1], kwh="1.000", sequence=1)
    across = trade(interval, seller=homes[2], buyer=homes[0], kwh="1.000", sequence=2)
    grid = trade(interval, seller=None, buyer=homes[1], kwh="1.000", sequence=3)
    assert trade_network_uses_set(interval=interval) == 3
    uses = {t.pk: (t.buyer_network_use, t.seller_network_use) for t in Trade.objects.all()}
    assert uses[same_bus.pk] == (Decimal("0.0000"), Decimal("0.0000"))
    across_use = uses[across.pk][0]
    assert across_use is not None
    assert across_use == uses[across.pk][1]
    assert across_use > 0
    assert uses[grid.pk][1] is None
    # What the board showed the far bidder is what the trade is charged per kWh.
    assert far[offer.pk] == (Decimal("0.0300") * across_use).quantize(Decimal("0.0001"))
    rules = interval.rules
    assert pool_network_charge(community=community, rules=rules, own_bus=41) > 0
    assert pool_network_charge(community=community, rules=rules, own_bus=None) == 0


def test_the_uses_of_plain_trade_sides_are_side_uses_with_buses_off_the_network_as_none(use):
    from marketplace.services.network_charges import trade_sides_uses

    off = max(use.position) + 1000  # a bus the network does not have
    trades = [
        (TradeSource.BILATERAL, 1, 2, 19, 2),
        (TradeSource.POOL, 1, 2, 19, off),
        (TradeSource.GRID, None, 2, None, 41),
        (TradeSource.BILATERAL, 1, 2, off, 19),
    ]
    assert trade_sides_uses(use, trades) == [
        side_uses(use, source=TradeSource.BILATERAL, buyer=(True, 19), seller=(True, 2)),
        side_uses(use, source=TradeSource.POOL, buyer=(True, 19), seller=(True, None)),
        side_uses(use, source=TradeSource.GRID, buyer=(False, None), seller=(True, 41)),
        side_uses(use, source=TradeSource.BILATERAL, buyer=(True, None), seller=(True, 19)),
    ]
