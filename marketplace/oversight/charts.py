"""Charts drawn on the server as inline SVG: no JavaScript, no CDN, readable in a screenshot.

Two shapes cover the dashboards: a line chart over time (a series may have gaps) and a bar chart
over categories (grouped bars). Everything is escaped; the caller marks nothing safe itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from html import escape
from typing import Any

from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 44
PALETTE = ("#0a7d5a", "#f0a500", "#5b6575", "#b3261e", "#3b6fd1", "#8a4fbf")
MAX_X_LABELS = 8


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float | Decimal | int | None]
    color: str | None = None
    dashed: bool = False


def _label(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%d %b %H:%M")
    if isinstance(value, date):
        return value.strftime("%d %b")
    return str(value)


def _number(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.0f}"
    if magnitude >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def _nice_step(span: float) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about four steps."""
    raw = span / 4
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _nice_range(values: list[float], zero: bool) -> tuple[float, float, float]:
    """Axis bounds on whole tick steps around the values, and the step."""
    low, high = min(values), max(values)
    if zero:
        low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        high, low = high + 1, low - (0 if zero and low == 0 else 1)
    step = _nice_step(high - low)
    # Rounded before floor/ceil: 0.95 / 0.025 is 37.99999... in binary floating point.
    return (
        math.floor(round(low / step, 6)) * step,
        math.ceil(round(high / step, 6)) * step,
        step,
    )


def _tick(value: float, step: float) -> str:
    if step >= 1000:
        return f"{value:,.0f}"
    places = max(0, -math.floor(math.log10(step)))
    if round(step / 10 ** math.floor(math.log10(step)), 3) == 2.5:
        places += 1  # 2.5, 0.25, 0.025 need one more digit than their power of ten
    return f"{value:.{places}f}"


def _frame(title: str, y_label: str) -> list[str]:
    return [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="12" y="{TOP + (HEIGHT - TOP - BOTTOM) / 2}" class="axis-title" '
        f'transform="rotate(-90 12 {TOP + (HEIGHT - TOP - BOTTOM) / 2})" '
        f'text-anchor="middle">{escape(y_label)}</text>',
    ]


def _y_axis(low: float, high: float, step: float) -> tuple[list[str], Any]:
    plot_h = HEIGHT - TOP - BOTTOM

    def y(value: float) -> float:
        return TOP + plot_h * (1 - (value - low) / (high - low))

    parts = []
    for i in range(round((high - low) / step) + 1):
        value = low + i * step
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'class="grid"/><text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" '
            f'class="tick">{_tick(value, step)}</text>'
        )
    return parts, y


def _legend(series: Sequence[Series]) -> list[str]:
    parts, x = [], LEFT
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        parts.append(
            f'<rect x="{x}" y="{HEIGHT - 14}" width="12" height="4" fill="{color}"/>'
            f'<text x="{x + 16}" y="{HEIGHT - 9}" class="legend">{escape(s.name)}</text>'
        )
        x += 28 + 7 * len(s.name)
    return parts


def _empty(title: str) -> SafeString:
    return mark_safe(  # noqa: S308 - the title is escaped
        f'<svg class="chart" viewBox="0 0 {WIDTH} 80" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><text x="{WIDTH / 2}" y="44" text-anchor="middle" '
        f'class="empty">No data in this range</text></svg>'
    )


def line_chart(
    title: str, x: Sequence[Any], series: Sequence[Series], *, y_label: str, zero: bool = True
) -> SafeString:
    """Lines over time; ``None`` values leave a gap. Drawn as polylines, one per series."""
    numbers = [float(v) for s in series for v in s.values if v is not None]
    if not x or not numbers:
        return _empty(title)
    low, high, step = _nice_range(numbers, zero)
    parts = _frame(title, y_label)
    grid, y = _y_axis(low, high, step)
    parts += grid
    plot_w = WIDTH - LEFT - RIGHT
    step = plot_w / max(len(x) - 1, 1)

    def px(i: int) -> float:
        return LEFT + (i * step if len(x) > 1 else plot_w / 2)

    every = max(1, -(-len(x) // MAX_X_LABELS))
    for i in range(0, len(x), every):
        # The outermost labels are anchored inwards so they are not cut off at the edges.
        anchor = "start" if i == 0 and len(x) > 1 else "middle"
        if i == len(x) - 1 and len(x) > 1:
            anchor = "end"
        parts.append(
            f'<text x="{px(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="{anchor}" '
            f'class="tick">{escape(_label(x[i]))}</text>'
        )
    for n, s in enumerate(series):
        color = s.color or PALETTE[n % len(PALETTE)]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        runs: list[list[str]] = [[]]
        for i, value in enumerate(s.values):
            if value is None:
                runs.append([])
            else:
                runs[-1].append(f"{px(i):.1f},{y(float(value)):.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
            elif run:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{color}" '
                    f'stroke-width="2"{dash}/>'
                )
    parts += _legend(series)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def bar_chart(
    title: str, categories: Sequence[Any], series: Sequence[Series], *, y_label: str
) -> SafeString:
    """Grouped bars, one group per category; bars start at zero."""
    numbers = [float(v) for s in series for v in s.values if v is not None]
    if not categories or not numbers:
        return _empty(title)
    low, high, step = _nice_range(numbers, zero=True)
    parts = _frame(title, y_label)
    grid, y = _y_axis(low, high, step)
    parts += grid
    plot_w = WIDTH - LEFT - RIGHT
    slot = plot_w / len(categories)
    bar = slot * 0.8 / max(len(series), 1)
    every = max(1, -(-len(categories) // MAX_X_LABELS))
    for i, category in enumerate(categories):
        x0 = LEFT + i * slot + slot * 0.1
        for n, s in enumerate(series):
            value = s.values[i]
            if value is None:
                continue
            top, base = y(max(float(value), 0.0)), y(min(float(value), 0.0))
            color = s.color or PALETTE[n % len(PALETTE)]
            parts.append(
                f'<rect x="{x0 + n * bar:.1f}" y="{top:.1f}" width="{max(bar - 1, 1):.1f}" '
                f'height="{max(base - top, 0.5):.1f}" fill="{color}">'
                f"<title>{escape(_label(category))}: {escape(_number(float(value)))}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text x="{LEFT + (i + 0.5) * slot:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                f'text-anchor="middle" class="tick">{escape(_label(category))}</text>'
            )
    parts += _legend(series)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped
