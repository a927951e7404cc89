"""Chart geometry for the pages' inline SVG: the order book depth and the daily figures.

The charts are drawn server-side as SVG (no chart library, nothing from the internet): this
module turns Decimal data into coordinates in a fixed viewBox; the templates draw them. A
viewBox scales with the page, so the same chart is readable on a phone and a desktop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils.safestring import SafeString

from config import formatting
from marketplace.oversight.charts import Series, line_chart
from marketplace.selectors.prosumer import PeriodFigures

# Small on purpose: on a 390 px phone the chart is drawn at about 0.9 of these units, so the
# 13-unit labels stay readable; on a desktop it is capped in height by the stylesheet.
WIDTH = 360
HEIGHT = 230
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 24, 36
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = HEIGHT - TOP - BOTTOM


@dataclass(frozen=True, slots=True)
class Tick:
    at: float  # position along the axis in viewBox units
    label: str


@dataclass
class DepthChart:
    supply_points: str = ""
    demand_points: str = ""
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    empty: bool = True
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: float = TOP + PLOT_H
    right: float = LEFT + PLOT_W


def _nice_step(span: float, count: int) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about ``count`` ticks."""
    raw = span / max(count, 1)
    if raw <= 0:
        return 1.0
    magnitude = 10 ** int(f"{raw:e}".split("e")[1])
    for multiple in (1, 2, 5, 10):
        if multiple * magnitude >= raw:
            return multiple * magnitude
    return 10 * magnitude


def _fmt(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def depth_chart(
    curves: dict[str, list[tuple[Decimal, Decimal]]], *, price_floor: Decimal, price_cap: Decimal
) -> DepthChart:
    """Step curves of cumulative kWh (x) against the limit price (y), floor to cap.

    Supply climbs from the cheapest offer, demand falls from the dearest request; where they
    cross is where a pooled auction would clear.
    """
    supply, demand = curves.get("supply", []), curves.get("demand", [])
    chart = DepthChart(empty=not supply and not demand)
    max_kwh = float(max([kwh for _, kwh in supply + demand], default=Decimal(1)))
    low, high = float(price_floor), float(price_cap)
    if high <= low:
        high = low + 1

    def x(kwh: float) -> float:
        return round(LEFT + PLOT_W * kwh / max_kwh, 1)

    def y(price: float) -> float:
        clamped = min(max(price, low), high)
        return round(TOP + PLOT_H * (1 - (clamped - low) / (high - low)), 1)

    def steps(curve: list[tuple[Decimal, Decimal]], end_price: float) -> str:
        points: list[str] = []
        previous = 0.0
        for price, cumulative in curve:
            points += [
                f"{x(previous)},{y(float(price))}",
                f"{x(float(cumulative))},{y(float(price))}",
            ]
            previous = float(cumulative)
        if points:
            # Past the last order the curve goes vertical: no more energy at any price.
            points.append(f"{x(previous)},{y(end_price)}")
        return " ".join(points)

    chart.supply_points = steps(supply, high)
    chart.demand_points = steps(demand, low)
    step = _nice_step(high - low, 4)
    value = low
    while value <= high + 1e-9:
        chart.y_ticks.append(Tick(y(value), f"{value:.2f}"))
        value += step
    kwh_step = _nice_step(max_kwh, 4)
    kwh = 0.0
    while kwh <= max_kwh + 1e-9:
        chart.x_ticks.append(Tick(x(kwh), _fmt(kwh)))
        kwh += kwh_step
    return chart


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    height: float
    width: float
    title: str
    negative: bool = False


@dataclass
class DailyChart:
    bought: list[Bar] = field(default_factory=list)
    sold: list[Bar] = field(default_factory=list)
    savings: list[Bar] = field(default_factory=list)
    labels: list[Tick] = field(default_factory=list)
    kwh_ticks: list[Tick] = field(default_factory=list)
    zero_y: float = TOP + PLOT_H
    savings_max: str = "0"
    savings_min: str = "0"
    money_ticks: list[Tick] = field(default_factory=list)
    empty: bool = True
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: float = TOP + PLOT_H
    right: float = LEFT + PLOT_W


def daily_chart(
    days: Sequence[PeriodFigures],
    *,
    currency: str,
    label_format: str = "%a %d %b",
    tick_format: str = "%a",
) -> DailyChart:
    """Bars of kWh bought and sold per period, and a strip of savings per period under them.

    kWh and money never share an axis: the energy bars have a kWh scale, the savings strip its
    own scale in the currency.

    The upper two thirds of the plot hold the energy bars, the lower third the savings (above
    its zero line when saved, below it when the member paid more than the grid would cost).
    """
    chart = DailyChart(empty=not any(d.bought_kwh or d.sold_kwh for d in days))
    if not days:
        return chart
    energy_h = PLOT_H * 0.62
    savings_top = TOP + energy_h + 14
    savings_h = PLOT_H - energy_h - 14
    max_kwh = float(max([max(d.bought_kwh, d.sold_kwh) for d in days] + [Decimal("0.001")]))
    savings_abs = float(max([abs(d.savings) for d in days] + [Decimal("0.01")]))
    slot = PLOT_W / len(days)
    bar_w = round(slot * 0.34, 1)
    energy_bottom = TOP + energy_h
    chart.zero_y = round(savings_top + savings_h / 2, 1)
    for i, d in enumerate(days):
        left = LEFT + slot * i + slot * 0.14
        for bars, day_kwh, offset, what in (
            (chart.bought, d.bought_kwh, 0.0, "bought"),
            (chart.sold, d.sold_kwh, bar_w, "sold"),
        ):
            height = round(energy_h * float(day_kwh) / max_kwh, 1)
            bars.append(
                Bar(
                    round(left + offset, 1),
                    round(energy_bottom - height, 1),
                    height,
                    bar_w,
                    f"{d.day:{label_format}}: {what} {formatting.kwh(day_kwh)}",
                )
            )
        height = round((savings_h / 2) * abs(float(d.savings)) / savings_abs, 1)
        negative = d.savings < 0
        chart.savings.append(
            Bar(
                round(left, 1),
                chart.zero_y if negative else round(chart.zero_y - height, 1),
                height,
                round(bar_w * 2, 1),
                f"{d.day:{label_format}}: saved {formatting.money(d.settled_savings, currency)}"
                f" settled, {formatting.money(d.provisional_savings, currency)} provisional",
                negative,
            )
        )
        chart.labels.append(Tick(round(LEFT + slot * (i + 0.5), 1), f"{d.day:{tick_format}}"))
    step = _nice_step(max_kwh, 3)
    kwh = 0.0
    while kwh <= max_kwh + 1e-9:
        chart.kwh_ticks.append(Tick(round(energy_bottom - energy_h * kwh / max_kwh, 1), _fmt(kwh)))
        kwh += step
    chart.savings_max = formatting.money(savings_abs, currency)
    chart.savings_min = formatting.money(-savings_abs, currency)
    # The money strip has its own axis: its top and bottom are plus and minus the largest saving.
    # The zero line carries the currency as the strip's axis title.
    chart.money_ticks = [
        Tick(round(chart.zero_y - savings_h / 2, 1), formatting.number(savings_abs, 2)),
        Tick(round(chart.zero_y + savings_h / 2, 1), formatting.number(-savings_abs, 2)),
    ]
    return chart


def _per_kwh(value: Decimal, energy: Decimal) -> float | None:
    return float(value / energy) if energy else None


def price_chart(
    days: Sequence[PeriodFigures],
    *,
    currency: str,
    retail_tariff: Decimal | None = None,
    feed_in_tariff: Decimal | None = None,
) -> SafeString:
    """The member's mean peer price per day, paid and received, against the grid's tariffs."""
    series = [
        Series("paid per kWh (bought)", [_per_kwh(d.bought_value, d.bought_kwh) for d in days]),
        Series("received per kWh (sold)", [_per_kwh(d.sold_value, d.sold_kwh) for d in days]),
    ]
    if retail_tariff is not None:
        series.append(Series("retail tariff", [float(retail_tariff)] * len(days), "#b3261e", True))
    if feed_in_tariff is not None:
        series.append(
            Series("feed-in tariff", [float(feed_in_tariff)] * len(days), "#3b6fd1", True)
        )
    return line_chart(
        "My peer prices per day", [d.day for d in days], series, y_label=f"{currency}/kWh"
    )
