"""Reads of network charges: what a member can expect to pay for using the network."""

from __future__ import annotations

from decimal import Decimal

from grid.models import GridModel
from grid.network_use import NetworkUse
from grid.studies import grid_model_network_use
from marketplace.models import (
    Community,
    MarketRules,
    NetworkChargeRule,
    Posting,
    Side,
    TradeSource,
)
from marketplace.services.network_charges import network_charge_per_kwh, side_uses
from units import PRICE


def _network_use(community: Community) -> NetworkUse | None:
    grid_model = GridModel.objects.filter(community=community).first()
    return grid_model_network_use(grid_model) if grid_model is not None else None


def expected_network_charges(
    *, community: Community, own_bus: int | None, posting_ids: list[int]
) -> dict[int, Decimal]:
    """Posting id -> what a bid on it from a meter point on ``own_bus`` pays per kWh for the
    network.

    The same rule settlement applies (``marketplace.services.network_charges``): the community
    fee under the flat rule; under the by-use rule the bidder's half of the pair's use times the
    tariff of the rules the posting's interval was opened under. The use factors are fixed per
    network version, so this is the charge a confirmed trade is booked with.
    """
    if not posting_ids:
        return {}
    rows = list(
        Posting.objects.filter(pk__in=posting_ids, interval__community=community).values_list(
            "pk",
            "side",
            "meter_point__bus",
            "interval__rules__network_charge_rule",
            "interval__rules__network_tariff_per_kwh",
            "interval__rules__fee_per_kwh",
        )
    )
    use = None
    if any(row[3] == NetworkChargeRule.BY_USE for row in rows):
        use = _network_use(community)
    charges: dict[int, Decimal] = {}
    for pk, side, bus, rule, tariff, fee in rows:
        mine = None
        if use is not None:
            bidder = (True, own_bus if own_bus in use.position else None)
            poster = (True, bus if bus in use.position else None)
            # A bid on an offer buys from it; a bid on a request sells into it.
            buys = side == Side.SELL
            buyer_use, seller_use = side_uses(
                use,
                source=TradeSource.BILATERAL,
                buyer=bidder if buys else poster,
                seller=poster if buys else bidder,
            )
            mine = buyer_use if buys else seller_use
        rules = MarketRules(
            network_charge_rule=rule, network_tariff_per_kwh=tariff, fee_per_kwh=fee
        )
        charges[pk] = network_charge_per_kwh(rules, mine).quantize(PRICE)
    return charges


def pool_network_charge(
    *, community: Community, rules: MarketRules, own_bus: int | None
) -> Decimal:
    """What a meter point on ``own_bus`` pays per kWh for the network on a pool trade."""
    use = None
    if rules.network_charge_rule == NetworkChargeRule.BY_USE and own_bus is not None:
        network = _network_use(community)
        if network is not None and own_bus in network.position:
            use = Decimal(repr(network.head_use(own_bus))).quantize(PRICE)
    return network_charge_per_kwh(rules, use).quantize(PRICE)
