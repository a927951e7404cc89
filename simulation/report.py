"""A simulation's figures and its report: HTML with charts, the charts as PNG, and CSV files.

Definitions (per run, over every simulated interval):

- grid import / export: the community's net exchange with the outside grid, metered: per
  interval ``Σ members' imports - Σ exports``, positive part imported, negative part exported.
- exchange: import + export (what Elecbay's Table 3 calls the microgrid's exchange); peak: the
  largest ``|net exchange|`` in kW over the intervals.
- P2P: energy delivered in peer trades (bilateral and pool, confirmed kWh).
- self-sufficiency: P2P / members' metered imports; self-consumption: P2P / members' exports.
- curtailment: trade energy the grid check cut; losses: the power flow's losses x interval hours.
- bill: what the ledger took from a member over the run (minus its balance); baseline: what it
  would have paid with no trading at all, booked as the ledger books a member without trades
  (``selectors.member_baselines``): each interval's metered net import at the retail tariff or
  net export at the feed-in tariff, each rounded to the cent, plus its share of the network
  losses, which it pays whether it trades or not; savings = baseline - bill, so a member who
  never trades saves exactly 0 and the savings are what trading changed (peer prices against
  the tariffs, less the fee). The savings Gini counts a loss as no saving.
"""

from __future__ import annotations

import html
import io
import json
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt

from config.csv_export import csv_writer
from marketplace.services.rules import current_rules
from simulation.engine import SimulationOutcome, member_totals
from simulation.selectors import member_balances, member_baselines
from simulation.strategies import gini


@dataclass(frozen=True, slots=True)
class MemberLine:
    key: str
    kind: str  # household group label, or the plant's kind
    strategy: str
    import_kwh: float
    export_kwh: float
    bill: float
    baseline: float
    losses: float = 0.0  # of the baseline (and of the bill): its share of the network losses

    @property
    def savings(self) -> float:
        return round(self.baseline - self.bill, 2)


@dataclass(frozen=True, slots=True)
class Summary:
    name: str
    variant: str
    community: str
    mechanism: str
    structure: str
    flexible_control: str
    intervals: int
    households: int
    grid_import_kwh: float
    grid_export_kwh: float
    exchange_kwh: float
    peak_kw: float
    p2p_kwh: float
    self_sufficiency: float | None
    self_consumption: float | None
    curtailed_kwh: float
    losses_kwh: float
    bills: float
    baseline: float
    savings: float
    savings_gini: float
    ledger_total: float
    ledger_verified: bool
    errors: int
    # Intervals the grid check held for the manager: metered (the homes used the energy) but
    # not settled, so their energy is in the members' totals and not in the bills.
    held_intervals: int = 0
    held_import_kwh: float = 0.0
    held_export_kwh: float = 0.0


@dataclass(frozen=True, slots=True)
class Report:
    summary: Summary
    members: tuple[MemberLine, ...]
    times: tuple[str, ...]
    net_kw: tuple[float, ...]
    p2p_kwh: tuple[float, ...]
    grid_kwh: tuple[float, ...]
    prices: tuple[float | None, ...]
    # Member-intervals with no posting, by why (simulation.engine's NO_NEED and the others).
    unposted: tuple[tuple[str, int], ...] = ()
    # (interval start, the grid check's reason) of each interval held for the manager.
    held: tuple[tuple[str, str], ...] = ()


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole > 0 else None


def report_build(outcome: SimulationOutcome, *, variant: str = "") -> Report:
    """The run's figures from its interval records and the community's ledger."""
    community = outcome.community
    rules = current_rules(community)
    hours = rules.interval_minutes / 60
    records = outcome.records
    net = [r.net_kw for r in records]
    grid_import = sum(max(v, 0.0) for v in net) * hours
    grid_export = sum(max(-v, 0.0) for v in net) * hours
    p2p = sum(r.p2p_kwh for r in records)
    totals = member_totals(outcome)
    balances = member_balances(community=community)
    baselines = member_baselines(community=community)
    lines = []
    for participant in outcome.participants:
        member = participant.membership.pk
        energy = totals.get(member, {"import": 0.0, "export": 0.0})
        agent = participant.agent
        kind = agent.spec.kind if participant.is_plant else agent.spec.label  # type: ignore[union-attr]
        lines.append(
            MemberLine(
                key=agent.key,
                kind=kind,
                strategy=getattr(agent.strategy, "name", ""),
                import_kwh=round(energy["import"], 3),
                export_kwh=round(energy["export"], 3),
                bill=float(-balances.get(member, Decimal("0"))),
                baseline=float(baselines[member].total) if member in baselines else 0.0,
                losses=float(baselines[member].losses) if member in baselines else 0.0,
            )
        )
    households = [
        line for line, p in zip(lines, outcome.participants, strict=True) if not p.is_plant
    ]
    imports = sum(line.import_kwh for line in lines)
    exports = sum(line.export_kwh for line in lines)
    held = [r for r in records if r.held_reason]
    summary = Summary(
        name=outcome.scenario.name,
        variant=variant,
        community=community.slug,
        mechanism=f"{rules.clearing_mechanism} ({rules.pricing_rule})",
        structure=rules.market_structure,
        flexible_control=outcome.scenario.flexible_control,
        intervals=len(records),
        households=len(households),
        grid_import_kwh=round(grid_import, 3),
        grid_export_kwh=round(grid_export, 3),
        exchange_kwh=round(grid_import + grid_export, 3),
        peak_kw=round(max((abs(v) for v in net), default=0.0), 3),
        p2p_kwh=round(p2p, 3),
        self_sufficiency=_ratio(p2p, imports),
        self_consumption=_ratio(p2p, exports),
        curtailed_kwh=round(sum(r.curtailed_kwh for r in records), 3),
        losses_kwh=round(sum((r.losses_kw or 0.0) for r in records) * hours, 3),
        bills=round(sum(line.bill for line in households), 2),
        baseline=round(sum(line.baseline for line in households), 2),
        savings=round(sum(line.savings for line in households), 2),
        savings_gini=round(gini([line.savings for line in households]), 4),
        ledger_total=float(-sum(balances.values(), Decimal("0"))),
        ledger_verified=not any("ledger" in e for e in outcome.errors),
        errors=len(outcome.errors),
        held_intervals=len(held),
        held_import_kwh=round(sum(sum(r.import_kwh.values()) for r in held), 3),
        held_export_kwh=round(sum(sum(r.export_kwh.values()) for r in held), 3),
    )
    return Report(
        summary=summary,
        members=tuple(lines),
        times=tuple(r.start.isoformat() for r in records),
        net_kw=tuple(round(v, 3) for v in net),
        p2p_kwh=tuple(round(r.p2p_kwh, 3) for r in records),
        grid_kwh=tuple(round(r.grid_bought_kwh + r.grid_sold_kwh, 3) for r in records),
        prices=tuple(r.mean_price for r in records),
        unposted=tuple(sorted(outcome.unposted.items())),
        held=tuple((r.start.isoformat(), r.held_reason) for r in held),
    )


# --- files ---------------------------------------------------------------------------------

SUMMARY_LABELS = {
    "grid_import_kwh": "From the grid (kWh)",
    "grid_export_kwh": "To the grid (kWh)",
    "exchange_kwh": "Exchange with the grid (kWh)",
    "peak_kw": "Peak exchange (kW)",
    "p2p_kwh": "Peer-to-peer (kWh)",
    "self_sufficiency": "Self-sufficiency",
    "self_consumption": "Self-consumption",
    "curtailed_kwh": "Curtailed (kWh)",
    "losses_kwh": "Network losses (kWh)",
    "bills": "Households' bills",
    "baseline": "Bills without trading",
    "savings": "Savings",
    "savings_gini": "Savings Gini",
    "held_intervals": "Intervals held for the manager (metered, not settled)",
}


def _figure_files(fig: plt.Figure, directory: Path, name: str) -> str:
    """Save the figure as PNG beside the report and return it as inline SVG."""
    fig.savefig(directory / f"{name}.png", dpi=110, bbox_inches="tight")
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def _charts(report: Report, directory: Path) -> list[tuple[str, str]]:
    hours = list(range(len(report.times)))
    ticks = hours[:: max(1, len(hours) // 8)]
    labels = [report.times[i][5:16].replace("T", " ") for i in ticks]
    charts = []
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(hours, report.net_kw, color="#1f6f8b", lw=1.2)
    ax.axhline(0, color="#888", lw=0.6)
    ax.set_ylabel("kW (+ import)")
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_title("Net exchange with the grid")
    charts.append(("Net exchange with the grid", _figure_files(fig, directory, "exchange")))
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(hours, report.p2p_kwh, color="#2a9d8f", label="peer-to-peer")
    ax.bar(hours, report.grid_kwh, bottom=report.p2p_kwh, color="#e9c46a", label="with the grid")
    ax.set_ylabel("kWh traded")
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.legend(fontsize=7)
    ax.set_title("Energy traded per interval")
    charts.append(("Energy traded per interval", _figure_files(fig, directory, "trades")))
    households = sorted(report.members, key=lambda m: m.savings)
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(range(len(households)), [m.savings for m in households], color="#264653")
    ax.axhline(0, color="#888", lw=0.6)
    ax.set_ylabel("savings against no trading")
    ax.set_xlabel("members, by savings")
    ax.set_title("Each member's savings")
    charts.append(("Each member's savings", _figure_files(fig, directory, "savings")))
    return charts


def _csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv_writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _value(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    return str(value)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 70rem;
       padding: 0 1rem; color: #1d2a33; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border-bottom: 1px solid #d6dde2; padding: .25rem .6rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
figure {{ margin: 1.5rem 0; }} figure svg {{ max-width: 100%; height: auto; }}
.note {{ color: #55656f; font-size: 13px; }}
</style></head><body>
<h1>{title}</h1>
<p class="note">{subtitle}</p>
{body}
<p class="note">Files beside this page: summary.json, intervals.csv, members.csv and each chart
as PNG. Definitions: see simulation/report.py.</p>
</body></html>
"""


def report_write(report: Report, directory: Path) -> Path:
    """Write report.html, summary.json, intervals.csv, members.csv and the PNG charts."""
    directory.mkdir(parents=True, exist_ok=True)
    summary = report.summary
    (directory / "summary.json").write_text(json.dumps(asdict(summary), indent=2), encoding="utf-8")
    _csv(
        directory / "intervals.csv",
        ["interval_start", "net_exchange_kw", "p2p_kwh", "grid_kwh", "mean_p2p_price"],
        [list(row) for row in zip(report.times, report.net_kw, report.p2p_kwh, report.grid_kwh,
                                  report.prices, strict=True)],
    )  # fmt: skip
    _csv(
        directory / "members.csv",
        ["member", "kind", "strategy", "import_kwh", "export_kwh", "bill", "baseline",
         "baseline_losses", "savings"],
        [[m.key, m.kind, m.strategy, m.import_kwh, m.export_kwh, m.bill, m.baseline, m.losses,
          m.savings] for m in report.members],
    )  # fmt: skip
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{_value(getattr(summary, key))}</td></tr>"
        for key, label in SUMMARY_LABELS.items()
    )
    figures = "".join(
        f"<figure>{svg}<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, svg in _charts(report, directory)
    )
    member_rows = "".join(
        f"<tr><td>{html.escape(m.key)}</td><td>{html.escape(m.kind)}</td>"
        f"<td>{html.escape(m.strategy)}</td><td>{m.import_kwh:.3f}</td><td>{m.export_kwh:.3f}</td>"
        f"<td>{m.bill:.2f}</td><td>{m.baseline:.2f}</td><td>{m.losses:.2f}</td>"
        f"<td>{m.savings:.2f}</td></tr>"
        for m in report.members
    )
    unposted = "".join(
        f"<tr><td>{html.escape(reason)}</td><td>{count}</td></tr>"
        for reason, count in report.unposted
    )
    if unposted:
        unposted = (
            "<h2>Intervals a member posted nothing</h2><table><tr><th>why</th><th>member-"
            f"intervals</th></tr>{unposted}</table>"
        )
    held = "".join(
        f"<tr><td>{html.escape(start)}</td><td>{html.escape(reason)}</td></tr>"
        for start, reason in report.held
    )
    if held:
        held = (
            "<h2>Intervals held by the grid check</h2><p>Metered, since the homes used the "
            "energy, but not settled until the community's manager acts: their energy is in the "
            f"members' totals and not in their bills.</p><table><tr><th>interval</th><th>why</th>"
            f"</tr>{held}</table>"
        )
    body = (
        f"<table>{rows}</table>{figures}{held}{unposted}<h2>Members</h2><table><tr><th>member</th><th>kind</th>"
        "<th>strategy</th><th>import kWh</th><th>export kWh</th><th>bill</th>"
        "<th>without trading</th><th>of it losses</th><th>savings</th></tr>"
        f"{member_rows}</table>"
    )
    subtitle = (
        f"{summary.intervals} intervals, {summary.households} households, {summary.structure} "
        f"market, {summary.mechanism}, flexible loads by {summary.flexible_control}; community "
        f"{summary.community}; ledger verified: {'yes' if summary.ledger_verified else 'NO'}."
    )
    title = f"Simulation: {summary.name}" + (f" ({summary.variant})" if summary.variant else "")
    page = PAGE.format(title=html.escape(title), subtitle=html.escape(subtitle), body=body)
    path = directory / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def comparison_write(reports: list[Report], directory: Path, *, title: str) -> Path:
    """Side by side: one column per variant, the same figures; a grouped chart; CSV and PNG."""
    directory.mkdir(parents=True, exist_ok=True)
    variants = [r.summary.variant or r.summary.name for r in reports]
    _csv(
        directory / "comparison.csv",
        ["figure", *variants],
        [
            [label, *[getattr(r.summary, key) for r in reports]]
            for key, label in SUMMARY_LABELS.items()
        ],
    )
    header = "".join(f"<th>{html.escape(v)}</th>" for v in variants)
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th>"
        + "".join(f"<td>{_value(getattr(r.summary, key))}</td>" for r in reports)
        + "</tr>"
        for key, label in SUMMARY_LABELS.items()
    )
    fig, axes = plt.subplots(1, 3, figsize=(10, 3))
    for ax, (key, label) in zip(
        axes,
        (("exchange_kwh", "exchange (kWh)"), ("peak_kw", "peak (kW)"), ("savings", "savings")),
        strict=True,
    ):
        ax.bar(variants, [getattr(r.summary, key) for r in reports], color="#1f6f8b")
        ax.set_title(label, fontsize=9)
        ax.tick_params(axis="x", labelsize=7, rotation=20)
    svg = _figure_files(fig, directory, "comparison")
    links = "".join(
        f'<li><a href="{html.escape(v)}/report.html">{html.escape(v)}</a></li>' for v in variants
    )
    body = f"<table><tr><th></th>{header}</tr>{rows}</table><figure>{svg}</figure><ul>{links}</ul>"
    page = PAGE.format(
        title=html.escape(title),
        subtitle=html.escape("The same population and seed under each variant."),
        body=body,
    )
    path = directory / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
