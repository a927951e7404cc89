"""The autopilot's strategies on plain numbers: the forecast as the order, within the limits."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from marketplace.autopilot import (
    AutopilotLimits,
    AutopilotOrder,
    AutopilotStrategy,
    autopilot_order,
)

D = Decimal
LIMITS = AutopilotLimits(
    max_buy_kwh=D("2"), max_sell_kwh=D("1"), sell_floor_per_kwh=D("0.15"),
    buy_ceiling_per_kwh=D("0.25"),
)  # fmt: skip
QUARTER = D("0.25")


def order(kw: float, strategy: AutopilotStrategy, limits: AutopilotLimits = LIMITS):
    return autopilot_order(
        strategy=strategy, forecast_net_export_kw=kw, hours=QUARTER, limits=limits,
        retail_tariff=D("0.32"), feed_in_tariff=D("0.08"),
    )  # fmt: skip


def test_at_limits_by_hand() -> None:
    # 2 kW exported for a quarter-hour is 0.5 kWh, offered at the floor.
    assert order(2.0, AutopilotStrategy.AT_LIMITS) == AutopilotOrder("sell", D("0.5"), D("0.15"))
    # 12 kW imported would be 3 kWh; the limit is 2, asked at the ceiling.
    assert order(-12.0, AutopilotStrategy.AT_LIMITS) == AutopilotOrder("buy", D("2"), D("0.25"))


def test_between_tariffs_by_hand() -> None:
    # The midpoint of 0.08 and 0.32 is 0.20: above the floor for a sale, below the ceiling.
    assert order(2.0, AutopilotStrategy.BETWEEN_TARIFFS).limit_price_per_kwh == D("0.2")
    assert order(-2.0, AutopilotStrategy.BETWEEN_TARIFFS).limit_price_per_kwh == D("0.2")
    tight = AutopilotLimits(D("2"), D("1"), D("0.22"), D("0.22"))
    assert order(2.0, AutopilotStrategy.BETWEEN_TARIFFS, tight).limit_price_per_kwh == D("0.22")
    low = AutopilotLimits(D("2"), D("1"), D("0.10"), D("0.18"))
    assert order(-2.0, AutopilotStrategy.BETWEEN_TARIFFS, low).limit_price_per_kwh == D("0.18")


def test_nothing_to_post() -> None:
    assert order(0.0, AutopilotStrategy.AT_LIMITS) is None
    assert order(0.003, AutopilotStrategy.AT_LIMITS) is None  # under a watt-hour
    no_sales = AutopilotLimits(D("2"), D("0"), D("0.15"), D("0.25"))
    assert order(5.0, AutopilotStrategy.AT_LIMITS, no_sales) is None


prices = st.decimals(min_value=D("0"), max_value=D("0.5"), places=4)
kwh = st.decimals(min_value=D("0"), max_value=D("10"), places=3)


@given(
    kw=st.floats(min_value=-100, max_value=100, allow_nan=False),
    max_buy=kwh, max_sell=kwh, a=prices, b=prices, retail=prices, feed_in=prices,
    strategy=st.sampled_from(list(AutopilotStrategy)),
)  # fmt: skip
def test_never_beyond_the_limits_nor_the_forecast(
    kw: float, max_buy: Decimal, max_sell: Decimal, a: Decimal, b: Decimal,
    retail: Decimal, feed_in: Decimal, strategy: AutopilotStrategy,
) -> None:  # fmt: skip
    limits = AutopilotLimits(max_buy, max_sell, min(a, b), max(a, b))
    result = autopilot_order(
        strategy=strategy, forecast_net_export_kw=kw, hours=QUARTER, limits=limits,
        retail_tariff=retail, feed_in_tariff=feed_in,
    )  # fmt: skip
    if result is None:
        return
    assert result.quantity_kwh > 0
    assert result.quantity_kwh <= D(repr(abs(kw))) * QUARTER
    if result.side == "sell":
        assert kw > 0
        assert result.quantity_kwh <= max_sell
        assert limits.sell_floor_per_kwh <= result.limit_price_per_kwh <= D("0.5")
    else:
        assert kw < 0
        assert result.quantity_kwh <= max_buy
        assert D("0") <= result.limit_price_per_kwh <= limits.buy_ceiling_per_kwh
