"""The community's network as an SVG drawing for the manager's grid page.

Takes ``grid.networks.network_geometry`` output and the last grid check's bus voltages and line
loadings; colours buses by how close their voltage is to the band's edge and lines by loading, and
marks the buses that have meter points. Pure: strings in, string out (the admin marks it safe).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

WIDTH, HEIGHT, MARGIN = 960, 560, 28
GREEN, AMBER, ORANGE, RED, GREY = "#0a7d5a", "#e0b000", "#f07800", "#b3261e", "#9aa3ad"
# (upper bound of loading %, colour): a line is coloured by the first bound it stays under.
LOADING_SCALE: tuple[tuple[float, str], ...] = ((50, GREEN), (80, AMBER), (100, ORANGE))
LEGEND_LOADING = (("< 50 %", GREEN), ("50-80 %", AMBER), ("80-100 %", ORANGE), ("> 100 %", RED))
LEGEND_VOLTAGE = (
    ("inside the band", GREEN),
    ("within 25 % of an edge", AMBER),
    ("outside the band", RED),
    ("not computed", GREY),
)


@dataclass(frozen=True, slots=True)
class VoltageBand:
    low_pu: float
    high_pu: float


# Up to this many buses the drawing names each one (beyond, the labels would overlap).
LABELLED_BUSES = 60


def loading_colour(percent: float | None) -> str:
    if percent is None:
        return GREY
    for bound, colour in LOADING_SCALE:
        if percent < bound:
            return colour
    return RED


def voltage_colour(vm_pu: float | None, band: VoltageBand) -> str:
    """Green well inside the band, amber in the outer quarter of either half, red outside."""
    if vm_pu is None:
        return GREY
    if not band.low_pu <= vm_pu <= band.high_pu:
        return RED
    margin = (band.high_pu - band.low_pu) / 2 * 0.25
    if vm_pu < band.low_pu + margin or vm_pu > band.high_pu - margin:
        return AMBER
    return GREEN


def network_svg(
    geometry: Mapping[str, Any],
    *,
    bus_vm_pu: Mapping[str, float],
    line_loading_percent: Mapping[str, float],
    meter_points: Mapping[int, Sequence[str]],
    band: VoltageBand,
    max_trafo_loading_percent: float | None = None,
) -> str:
    """The drawing: lines and transformers first, buses over them, meter points as squares."""
    buses = geometry["buses"]
    if not buses:
        return '<p class="empty">The network has no buses.</p>'
    xs = [float(b["x"]) for b in buses]
    ys = [float(b["y"]) for b in buses]
    span_x = (max(xs) - min(xs)) or 1.0
    span_y = (max(ys) - min(ys)) or 1.0
    scale = min((WIDTH - 2 * MARGIN) / span_x, (HEIGHT - 2 * MARGIN) / span_y)
    # Geodata has y growing northwards, SVG downwards; a computed tree layout grows downwards.
    flip = geometry.get("source") == "geodata"

    # Centre the drawing on the axis it does not fill.
    offset_x = (WIDTH - 2 * MARGIN - span_x * scale) / 2
    offset_y = (HEIGHT - 2 * MARGIN - span_y * scale) / 2

    def point(bus: Mapping[str, Any]) -> tuple[float, float]:
        x = MARGIN + offset_x + (float(bus["x"]) - min(xs)) * scale
        y_offset = (max(ys) - float(bus["y"])) if flip else (float(bus["y"]) - min(ys))
        return x, MARGIN + offset_y + y_offset * scale

    at = {int(b["bus"]): point(b) for b in buses}
    parts = [
        f'<svg class="network" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-label="Network drawing" xmlns="http://www.w3.org/2000/svg">'
    ]
    for line in geometry["lines"]:
        a, b = at.get(int(line["from_bus"])), at.get(int(line["to_bus"]))
        if a is None or b is None:
            continue
        loading = line_loading_percent.get(str(line["line"]))
        shown = "not computed" if loading is None else f"{loading:.1f} %"
        parts.append(
            f'<line class="branch" x1="{a[0]:.1f}" y1="{a[1]:.1f}" x2="{b[0]:.1f}" '
            f'y2="{b[1]:.1f}" stroke="{loading_colour(loading)}"><title>line {line["line"]}: '
            f"{escape(shown)}</title></line>"
        )
    trafo_colour = loading_colour(max_trafo_loading_percent)
    for trafo in geometry["trafos"]:
        a, b = at.get(int(trafo["hv_bus"])), at.get(int(trafo["lv_bus"]))
        if a is None or b is None:
            continue
        parts.append(
            f'<line class="trafo" x1="{a[0]:.1f}" y1="{a[1]:.1f}" x2="{b[0]:.1f}" '
            f'y2="{b[1]:.1f}" stroke="{trafo_colour}"><title>transformer {trafo["trafo"]}'
            "</title></line>"
        )
    radius = 5.0 if len(buses) <= 80 else 3.0
    for bus in buses:
        index = int(bus["bus"])
        x, y = at[index]
        vm = bus_vm_pu.get(str(index))
        shown = "not computed" if vm is None else f"{vm:.4f} p.u."
        parts.append(
            f'<circle class="bus" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" '
            f'fill="{voltage_colour(vm, band)}"><title>{escape(str(bus["label"]))}: '
            f"{escape(shown)}</title></circle>"
        )
        if len(buses) <= LABELLED_BUSES:
            # Small networks name every bus on the drawing, as the bus picker names them.
            parts.append(
                f'<text class="bus-label" x="{x:.1f}" y="{y + radius + 9:.1f}" '
                f'text-anchor="middle">{escape(str(bus["label"]))}</text>'
            )
        labels = meter_points.get(index)
        if labels:
            names = ", ".join(labels)
            parts.append(
                f'<rect class="meter" x="{x + radius + 1:.1f}" y="{y - radius - 7:.1f}" '
                f'width="7" height="7"><title>bus {index}: {escape(names)}</title></rect>'
                f'<text x="{x + radius + 10:.1f}" y="{y - radius - 1:.1f}">{len(labels)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def hosting_bars_svg(rows: Sequence[tuple[str, float, float]]) -> str:
    """Horizontal bars of the export each bus can host, with the export installed there.

    ``rows``: (bus label, hostable export kW, installed export kW). A bus whose installed export
    is above what it can host is drawn red; the marker shows the installed export.
    """
    if not rows:
        return ""
    bar_h, gap, label_w, width = 16, 6, 120, 720
    plot_w = width - label_w - 90
    top = max(max(h, i) for _, h, i in rows) or 1.0
    height = len(rows) * (bar_h + gap) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="hosting-bars" viewBox="0 0 {width} '
        f'{height}" role="img" aria-label="Export each bus can host against the export '
        'installed there">'
    ]
    for n, (label, hostable, installed) in enumerate(rows):
        y = 10 + n * (bar_h + gap)
        w = plot_w * hostable / top
        colour = RED if installed > hostable else GREEN
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar_h - 4}" text-anchor="end" font-size="12">'
            f"{escape(label)}</text>"
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}" '
            f'opacity="0.8"><title>{escape(label)}: hosts {hostable:,.0f} kW</title></rect>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 4}" font-size="11">'
            f"{hostable:,.0f} kW</text>"
        )
        if installed > 0:
            x = label_w + plot_w * installed / top
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 2}" y2="{y + bar_h + 2}" '
                f'stroke="#1d2430" stroke-width="3"><title>installed export {installed:,.1f} kW'
                "</title></line>"
            )
    parts.append("</svg>")
    return "".join(parts)
