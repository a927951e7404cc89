"""The autopilot's strategies: plain functions from a forecast, the tariffs and a member's limits
to the one order it posts for them in an interval (or none).

Both strategies post the member's forecast net power for the interval: an export forecast is an
offer, an import forecast a request. They need no model of the member's assets, only their
metered history. They differ in the price:

* ``at-limits``: the member's own limits are the price: an offer at their selling floor, a
  request at their buying ceiling. What the member said they accept is what is posted.
* ``between-tariffs``: the midpoint of the feed-in and retail tariffs, kept within the member's
  limits (an offer never below the floor, a request never above the ceiling). Against the
  outside grid a sale earns the feed-in tariff and a purchase costs retail, so any price in
  between leaves both sides better off than trading with the grid.

Whatever the strategy, the order never exceeds the member's maximum kWh for its side, and a
side whose maximum is 0 is never posted.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum

from units import KWH, PRICE

BUY = "buy"
SELL = "sell"


class AutopilotStrategy(StrEnum):
    AT_LIMITS = "at-limits"
    BETWEEN_TARIFFS = "between-tariffs"


STRATEGY_LABELS: dict[AutopilotStrategy, str] = {
    AutopilotStrategy.AT_LIMITS: (
        "Post my forecast at my own limits (offers at my floor, requests at my ceiling)"
    ),
    AutopilotStrategy.BETWEEN_TARIFFS: (
        "Post my forecast halfway between the feed-in and retail tariffs, within my limits"
    ),
}


@dataclass(frozen=True, slots=True)
class AutopilotLimits:
    """What a member allows their autopilot, per interval and per kWh."""

    max_buy_kwh: Decimal
    max_sell_kwh: Decimal
    sell_floor_per_kwh: Decimal
    buy_ceiling_per_kwh: Decimal


@dataclass(frozen=True, slots=True)
class AutopilotOrder:
    side: str
    quantity_kwh: Decimal
    limit_price_per_kwh: Decimal


def autopilot_order(
    *,
    strategy: AutopilotStrategy,
    forecast_net_export_kw: float,
    hours: Decimal,
    limits: AutopilotLimits,
    retail_tariff: Decimal,
    feed_in_tariff: Decimal,
) -> AutopilotOrder | None:
    """The order for one interval of ``hours``; None when there is nothing to post.

    The forecast's energy is rounded down to the watt-hour, so rounding never takes the order
    beyond the forecast or the limit.
    """
    side = SELL if forecast_net_export_kw > 0 else BUY
    maximum = limits.max_sell_kwh if side == SELL else limits.max_buy_kwh
    energy = (Decimal(repr(abs(forecast_net_export_kw))) * hours).quantize(KWH, ROUND_DOWN)
    quantity = min(energy, maximum)
    if quantity <= 0:
        return None
    if strategy == AutopilotStrategy.AT_LIMITS:
        price = limits.sell_floor_per_kwh if side == SELL else limits.buy_ceiling_per_kwh
    else:
        midpoint = ((retail_tariff + feed_in_tariff) / 2).quantize(PRICE, ROUND_DOWN)
        price = (
            max(midpoint, limits.sell_floor_per_kwh)
            if side == SELL
            else min(midpoint, limits.buy_ceiling_per_kwh)
        )
    return AutopilotOrder(side, quantity, price.quantize(PRICE))
