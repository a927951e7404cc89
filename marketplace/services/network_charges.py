"""Network charges that follow the network: each trade side's units of use, set at the grid check.

Who is charged for which use (the community's "by use" rule; ``grid.network_use`` says what a
unit of use is):

* a bilateral trade between two members: the pair's use, half on each side;
* a trade with the outside grid: the member's use from the feeder head, all on the member;
* a pool or community-rule trade: the pool is every member trading with the community at the
  feeder head, so each side carries its own use from the feeder head.

A side whose meter point has no place on the network carries none (``None``); a bilateral
counterpart of such a side carries half of its own use from the feeder head. The money is booked
at settlement (``marketplace.ledger.services.settlement``), on the confirmed kWh.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from config.sql import update_rows
from grid.models import GridModel
from grid.network_use import NetworkUse
from grid.services import GRID_MODEL_HEAVY_FIELDS
from grid.studies import grid_model_network_use
from marketplace.models import Interval, MarketRules, NetworkChargeRule, Trade, TradeSource

USE_STEP = Decimal("0.0001")
_HALF = 0.5


def _use(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(USE_STEP, rounding=ROUND_HALF_EVEN)


Side = tuple[bool, int | None]  # (is a member, bus on the network or None)


def side_uses(
    use: NetworkUse, *, source: str, buyer: Side, seller: Side
) -> tuple[Decimal | None, Decimal | None]:
    """(buyer's use, seller's use) of one trade (see the module docstring)."""
    return side_uses_many(use, [(source, buyer, seller)])[0]


def side_uses_many(
    use: NetworkUse, trades: Sequence[tuple[str, Side, Side]]
) -> list[tuple[Decimal | None, Decimal | None]]:
    """``side_uses`` of many trades, the pairs' uses in one array operation."""
    pairs: list[tuple[int | None, int | None]] = []
    paired: list[int] = []
    result: list[tuple[Decimal | None, Decimal | None]] = []

    def head(bus: int | None, share: float = 1.0) -> Decimal | None:
        return None if bus is None else _use(use.head_use(bus) * share)

    for n, (source, (buyer_member, buyer_bus), (seller_member, seller_bus)) in enumerate(trades):
        if source in (TradeSource.POOL, TradeSource.COMMUNITY) or not (
            buyer_member and seller_member
        ):
            result.append(
                (
                    head(buyer_bus) if buyer_member else None,
                    head(seller_bus) if seller_member else None,
                )
            )
        elif buyer_bus is None or seller_bus is None:
            result.append((head(buyer_bus, _HALF), head(seller_bus, _HALF)))
        else:
            result.append((None, None))  # filled from the pairs' uses below
            pairs.append((seller_bus, buyer_bus))
            paired.append(n)
    for n, pair_use in zip(paired, use.pair_uses(pairs), strict=True):
        half = _use(float(pair_use) * _HALF)
        result[n] = (half, half)
    return result


TradeSides = tuple[str, int | None, int | None, int | None, int | None]


def trade_sides_uses(
    use: NetworkUse, trades: Sequence[TradeSides]
) -> list[tuple[Decimal | None, Decimal | None]]:
    """(buyer's use, seller's use) of trades given as (source, buyer membership, seller
    membership, buyer's meter point's bus, seller's meter point's bus); a bus not on the
    network counts as no place on it."""

    def bus(value: int | None) -> int | None:
        return value if value in use.position else None

    return side_uses_many(
        use,
        [
            (source, (buyer is not None, bus(buyer_bus)), (seller is not None, bus(seller_bus)))
            for source, buyer, seller, buyer_bus, seller_bus in trades
        ],
    )


def trade_network_uses_set(*, interval: Interval) -> int:
    """Set ``buyer_network_use``/``seller_network_use`` on the interval's trades; returns how
    many trades have a use. Does nothing without a grid model. Runs in the caller's transaction
    (the pipeline's grid step)."""
    grid_model = (
        GridModel.objects.filter(community_id=interval.community_id)
        .defer(*GRID_MODEL_HEAVY_FIELDS)
        .first()
    )
    if grid_model is None:
        return 0
    use = grid_model_network_use(grid_model)
    # Plain rows with the meter points' buses joined in: no model instance per trade and no
    # list of meter point ids sent back as parameters.
    trades = list(
        Trade.objects.filter(interval=interval)
        .order_by()
        .values_list(
            "pk", "source", "buyer_id", "seller_id", "buyer_meter_point__bus",
            "seller_meter_point__bus",
        )
    )  # fmt: skip
    uses = trade_sides_uses(use, [row[1:] for row in trades])
    update_rows(
        Trade,
        ["buyer_network_use", "seller_network_use"],
        [(row[0], *pair) for row, pair in zip(trades, uses, strict=True)],
    )
    return sum(1 for buyer_use, seller_use in uses if buyer_use is not None or seller_use)


def network_charge_per_kwh(rules: MarketRules, use: Decimal | None) -> Decimal:
    """What one side pays per kWh under ``rules`` for ``use`` units of use (the flat fee under
    the flat rule, whatever the use)."""
    if rules.network_charge_rule == NetworkChargeRule.BY_USE:
        return rules.network_tariff_per_kwh * (use or Decimal(0))
    return rules.fee_per_kwh
