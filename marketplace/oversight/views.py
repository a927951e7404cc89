"""The regulators' dashboards: thin views that parse the filter, call selectors, draw and export.

Regulators and operators (superusers) only. Every page shows charts first, the numbers behind each
chart in a table under it, and a CSV link per chart that exports the same selector output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any

from django import forms
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import SafeString

from accounts import permissions
from config.csv_export import csv_writer
from marketplace.oversight import selectors
from marketplace.oversight.charts import Series, bar_chart, line_chart
from marketplace.oversight.selectors import Scope, Table
from marketplace.selectors.communities import communities_by_name

# A longer range is allowed (daily figures stay cheap) but a decade is a typo, not a question.
MAX_RANGE = timedelta(days=3 * 366)

View = Callable[..., HttpResponse]


def regulator_required(view: View) -> View:
    """Anonymous users go to sign in; anyone but a regulator or an operator gets a 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not permissions.can_read_dashboards(request.user):
            raise PermissionDenied("The dashboards are for regulators.")
        return view(request, *args, **kwargs)

    return wrapped


class ScopeForm(forms.Form):
    community = forms.ModelChoiceField(
        queryset=communities_by_name(),
        required=False,
        empty_label="All communities",
        to_field_name="slug",
    )
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("date_from"), data.get("date_to")
        if first and last:
            if first > last:
                raise forms.ValidationError("The range must start before it ends.")
            if last - first > MAX_RANGE:
                raise forms.ValidationError("Choose a range of at most three years.")
        return data

    def scope(self) -> Scope:
        """The scope asked for; the default (last seven local days) fills what is missing."""
        data = self.cleaned_data if self.is_valid() else {}
        community = data.get("community")
        default = selectors.default_scope(community)
        first, last = data.get("date_from"), data.get("date_to")
        if first and not last:
            last = max(first, default.last_day)
        if last and not first:
            first = last - (default.last_day - default.first_day)
        return Scope(community, first or default.first_day, last or default.last_day, default.tz)


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    title: str
    svg: SafeString
    table: Table
    note: str = ""


def _f(values: list[Any]) -> list[float | None]:
    return [None if v is None else float(v) for v in values]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


# --- One function per chart: (scope, shared) -> Chart. ``shared`` carries per-request work that
# two charts of one page both need (the members' figures), so it is read once.
def chart_prices(scope: Scope, shared: dict[str, Any]) -> Chart:
    table = selectors.prices(scope)
    x = table.column(scope.bucket_label)
    svg = line_chart(
        "P2P price against the grid tariffs",
        x,
        [
            Series("P2P price (volume-weighted)", _f(table.column("p2p_price_per_kwh"))),
            Series("retail tariff", _f(table.column("retail_tariff")), "#b3261e", dashed=True),
            Series("feed-in tariff", _f(table.column("feed_in_tariff")), "#3b6fd1", dashed=True),
        ],
        y_label="per kWh",
    )
    return Chart("prices", "Clearing prices against the tariffs", svg, table)


def chart_volumes(scope: Scope, shared: dict[str, Any]) -> Chart:
    table = selectors.volumes(scope)
    x = table.column(scope.bucket_label)
    series = [
        Series("peer-to-peer", _f(table.column("p2p_kwh"))),
        Series("from the grid", _f(table.column("from_grid_kwh")), "#b3261e"),
        Series("to the grid", _f(table.column("to_grid_kwh")), "#3b6fd1"),
    ]
    draw = line_chart if scope.per_interval else bar_chart
    svg = draw("P2P energy against energy from and to the grid", x, series, y_label="kWh")
    return Chart("volumes", "Peer-to-peer energy against the grid", svg, table)


def chart_sufficiency(scope: Scope, shared: dict[str, Any]) -> Chart:
    table = selectors.community_sufficiency(scope)
    svg = bar_chart(
        "Self-sufficiency and self-consumption by community",
        table.column("community"),
        [
            Series("self-sufficiency", _f(table.column("self_sufficiency"))),
            Series("self-consumption", _f(table.column("self_consumption")), "#f0a500"),
        ],
        y_label="share (0-1)",
    )
    note = (
        "Self-sufficiency: P2P energy / (P2P + energy from the grid). Self-consumption: "
        "P2P energy / (P2P + energy to the grid)."
    )
    return Chart("sufficiency", "Self-sufficiency and self-consumption", svg, table, note)


def _network(scope: Scope, shared: dict[str, Any]) -> Table:
    if "network" not in shared:
        shared["network"] = selectors.network(scope)
    table: Table = shared["network"]
    return table


def chart_network(scope: Scope, shared: dict[str, Any]) -> Chart:
    table = _network(scope, shared)
    x = table.column(scope.bucket_label)
    svg = line_chart(
        "Voltage band reached",
        x,
        [
            Series("minimum voltage", _f(table.column("min_voltage_pu")), "#3b6fd1"),
            Series("maximum voltage", _f(table.column("max_voltage_pu")), "#b3261e"),
        ],
        y_label="p.u.",
        zero=False,
    )
    return Chart("network", "Voltages per interval", svg, table)


def chart_loading(scope: Scope, shared: dict[str, Any]) -> Chart:
    table = _network(scope, shared)
    x = table.column(scope.bucket_label)
    svg = line_chart(
        "Loading, curtailment and losses",
        x,
        [
            Series("max line loading %", _f(table.column("max_line_loading_percent"))),
            Series("max transformer loading %", _f(table.column("max_trafo_loading_percent"))),
        ],
        y_label="%",
    )
    return Chart("loading", "Maximum loading per interval", svg, table)


def chart_curtailment(scope: Scope, shared: dict[str, Any]) -> Chart:
    table = selectors.curtailment_reasons(scope)
    svg = bar_chart(
        "Energy curtailed by reason",
        [str(i + 1) for i in range(len(table.rows))],
        [Series("curtailed kWh", _f(table.column("curtailed_kwh")), "#b3261e")],
        y_label="kWh",
    )
    note = "Bars follow the table's rows."
    return Chart("curtailment", "Energy curtailed and why", svg, table, note)


def chart_costs(scope: Scope, shared: dict[str, Any]) -> Chart:
    table = selectors.network_costs(scope)
    x = table.column(scope.bucket_label)
    draw = line_chart if scope.per_interval else bar_chart
    svg = draw(
        "Losses and network charges collected",
        x,
        [
            Series("losses collected", _f(table.column("losses_collected")), "#b3261e"),
            Series("network charges by use", _f(table.column("network_charges_collected"))),
            Series("flat fees", _f(table.column("community_fees_collected")), "#f0a500"),
        ],
        y_label="money",
    )
    note = (
        "Losses are the grid check's for the final state; members pay their share by normalised "
        "marginal loss factors at the community's loss price into its losses account. Network "
        "charges by use follow each trade's impedance-weighted use of the network."
    )
    return Chart("costs", "Network losses and charges", svg, table, note)


def chart_strength(scope: Scope, shared: dict[str, Any]) -> Chart:
    table = selectors.strength_events(scope)
    svg = bar_chart(
        "Short-circuit ratio at buses below the minimum",
        [str(i + 1) for i in range(len(table.rows))],
        [
            Series("short-circuit ratio", _f(table.column("short_circuit_ratio")), "#b3261e"),
            Series("minimum", _f(table.column("minimum_ratio")), "#3b6fd1"),
        ],
        y_label="ratio",
    )
    note = (
        "Short-circuit power (IEC 60909, maximum case, without the inverters) over the "
        "inverter export scheduled at the bus; the exports above what the bus can host were "
        'curtailed with the reason "system strength". Bars follow the table\'s rows.'
    )
    return Chart("strength", "System-strength events", svg, table, note)


def chart_violations(scope: Scope, shared: dict[str, Any]) -> Chart:
    table = selectors.violations_by_kind(scope)
    kinds, caused = table.column("violation_kind"), table.column("caused_by_trades")
    labels = [f"{k}{'' if c else ' (base case)'}" for k, c in zip(kinds, caused, strict=True)]
    svg = bar_chart(
        "Violations found",
        labels,
        [Series("violations", _f(table.column("count")))],
        y_label="count",
    )
    note = "'base case' violations exist without any trade and are not the trades' fault."
    return Chart("violations", "Violations found", svg, table, note)


def _members(scope: Scope, shared: dict[str, Any]) -> Any:
    if "members" not in shared:
        shared["members"] = selectors.member_figures(scope)
    return shared["members"]


def chart_groups(scope: Scope, shared: dict[str, Any]) -> Chart:
    table = selectors.access_by_group(scope, _members(scope, shared))
    svg = bar_chart(
        "Access by installation size",
        table.column("group"),
        [
            Series("traded share", _f(table.column("traded_share"))),
            Series("buy fill rate", _f(table.column("buy_fill_rate")), "#3b6fd1"),
            Series("sell fill rate", _f(table.column("sell_fill_rate")), "#f0a500"),
        ],
        y_label="share (0-1)",
    )
    note = (
        "A group is flagged when its share of members who traded or a fill rate is below 80 % "
        "of all members', or its average price is 10 % worse."
    )
    return Chart("groups", "Fair access by member group", svg, table, note)


def chart_savings(scope: Scope, shared: dict[str, Any]) -> Chart:
    summary = selectors.savings_distribution(scope, _members(scope, shared))
    shared["savings"] = summary
    table = summary.histogram
    lows, highs = table.column("savings_from"), table.column("savings_to")
    svg = bar_chart(
        "Members by savings against the grid tariff",
        [f"{a:g}…{b:g}" for a, b in zip(lows, highs, strict=True)],
        [Series("members", table.column("members"))],
        y_label="members",
    )
    note = f"Gini coefficient of savings: {summary.gini:.3f} (0 = equal)."
    return Chart("savings", "Distribution of members' savings", svg, table, note)


def chart_concentration(scope: Scope, shared: dict[str, Any]) -> Chart:
    table = selectors.seller_concentration(scope)
    svg = bar_chart(
        "Seller concentration (HHI)",
        table.column("community"),
        [Series("HHI", table.column("hhi"), "#8a4fbf")],
        y_label="HHI (0-10,000)",
    )
    note = "HHI below 1,500 reads as unconcentrated, above 2,500 as highly concentrated."
    return Chart("concentration", "Seller concentration", svg, table, note)


def chart_pipeline(scope: Scope, shared: dict[str, Any]) -> Chart:
    result = selectors.integrity(scope)
    shared["verification"] = result.verification
    table = result.steps
    svg = bar_chart(
        "Pipeline steps",
        table.column("state"),
        [
            Series("failing now", table.column("failing_now"), "#b3261e"),
            Series("recovered after retry", table.column("recovered_after_retry"), "#f0a500"),
        ],
        y_label="intervals",
    )
    return Chart("pipeline", "Failed and retried pipeline steps", svg, table)


def _region_volumes(scope: Scope, shared: dict[str, Any]) -> Table:
    if "region_volumes" not in shared:
        shared["region_volumes"] = selectors.region_volumes(scope)
    table: Table = shared["region_volumes"]
    return table


def chart_regions(scope: Scope, shared: dict[str, Any]) -> Chart:
    table = _region_volumes(scope, shared)
    x = table.column(scope.bucket_label)
    draw = line_chart if scope.per_interval else bar_chart
    svg = draw(
        "Energy between communities against what went to the outside grid",
        x,
        [
            Series("between communities", _f(table.column("region_kwh"))),
            Series("left to the outside grid", _f(table.column("outside_kwh")), "#b3261e"),
        ],
        y_label="kWh",
    )
    note = (
        "Each community's manager offers its net surplus or requests its net deficit after its "
        "own market; the region clears them before the outside grid."
    )
    return Chart("regions", "Energy traded between communities", svg, table, note)


def chart_region_prices(scope: Scope, shared: dict[str, Any]) -> Chart:
    table = _region_volumes(scope, shared)
    svg = line_chart(
        "Price between communities",
        table.column(scope.bucket_label),
        [Series("region price (volume-weighted)", _f(table.column("region_price_per_kwh")))],
        y_label="per kWh",
    )
    return Chart("region_prices", "Prices between communities", svg, table)


def chart_region_flows(scope: Scope, shared: dict[str, Any]) -> Chart:
    table = selectors.region_flows(scope)
    svg = bar_chart(
        "Bought from and sold to other communities",
        table.column("community"),
        [
            Series("bought", _f(table.column("bought_kwh")), "#3b6fd1"),
            Series("sold", _f(table.column("sold_kwh")), "#f0a500"),
            Series("left to the outside grid", _f(table.column("outside_kwh")), "#b3261e"),
        ],
        y_label="kWh",
    )
    return Chart("region_flows", "Each community's trade with its region", svg, table)


CHARTS: dict[str, Callable[[Scope, dict[str, Any]], Chart]] = {
    "prices": chart_prices,
    "volumes": chart_volumes,
    "sufficiency": chart_sufficiency,
    "network": chart_network,
    "loading": chart_loading,
    "violations": chart_violations,
    "curtailment": chart_curtailment,
    "costs": chart_costs,
    "strength": chart_strength,
    "groups": chart_groups,
    "savings": chart_savings,
    "concentration": chart_concentration,
    "pipeline": chart_pipeline,
    "regions": chart_regions,
    "region_prices": chart_region_prices,
    "region_flows": chart_region_flows,
}
DASHBOARDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "prices": ("Prices", ("prices",)),
    "volumes": ("Volumes", ("volumes", "sufficiency")),
    "network": (
        "Network",
        ("network", "loading", "violations", "curtailment", "costs", "strength"),
    ),
    "access": ("Fair access", ("groups", "savings", "concentration")),
    "integrity": ("Integrity", ("pipeline",)),
    "regions": ("Between communities", ("regions", "region_prices", "region_flows")),
}


def _headline(name: str, charts: list[Chart], shared: dict[str, Any]) -> list[tuple[str, str]]:
    """The two or three numbers a regulator looks at first."""
    by_key = {c.key: c.table for c in charts}
    if name == "prices":
        table = by_key["prices"]
        kwh = sum(table.column("p2p_kwh"))
        paid = sum(
            (p or 0) * k
            for p, k in zip(table.column("p2p_price_per_kwh"), table.column("p2p_kwh"), strict=True)
        )
        average = f"{paid / kwh:.4f}" if kwh else "—"
        return [("P2P energy (kWh)", f"{kwh:,.1f}"), ("average P2P price per kWh", average)]
    if name == "volumes":
        table = by_key["volumes"]
        p2p, fin, fout = (sum(table.column(c)) for c in ("p2p_kwh", "from_grid_kwh", "to_grid_kwh"))
        return [
            ("P2P energy (kWh)", f"{p2p:,.1f}"),
            ("self-sufficiency", _pct(selectors.ratio(p2p, p2p + fin))),
            ("self-consumption", _pct(selectors.ratio(p2p, p2p + fout))),
        ]
    if name == "network":
        table, costs = by_key["network"], by_key["costs"]
        return [
            ("checks with violations", f"{sum(table.column('checks_with_violations')):,}"),
            ("energy curtailed (kWh)", f"{sum(table.column('curtailed_kwh')):,.1f}"),
            ("losses (kWh)", f"{sum(v or 0 for v in table.column('losses_kwh')):,.1f}"),
            ("losses collected", f"{sum(costs.column('losses_collected')):,.2f}"),
            ("network charges collected", f"{sum(costs.column('network_charges_collected')):,.2f}"),
            ("system-strength events", f"{sum(costs.column('strength_events')):,}"),
        ]
    if name == "regions":
        table = by_key["regions"]
        kwh = sum(table.column("region_kwh"))
        value = sum(
            (p or 0) * k
            for p, k in zip(
                table.column("region_price_per_kwh"), table.column("region_kwh"), strict=True
            )
        )
        return [
            ("energy between communities (kWh)", f"{kwh:,.1f}"),
            ("average price per kWh", f"{value / kwh:.4f}" if kwh else "—"),
            ("left to the outside grid (kWh)", f"{sum(table.column('outside_kwh')):,.1f}"),
        ]
    if name == "access":
        groups = by_key["groups"]
        everyone = groups.rows[-1]
        summary = shared["savings"]
        return [
            ("members who traded", _pct(everyone[3])),
            ("Gini of savings", f"{summary.gini:.3f}"),
            ("savings to the top 10 %", _pct(summary.top_decile_share)),
            ("members without savings", f"{summary.members_without_savings:,}"),
        ]
    verification = shared.get("verification")
    if verification is None:
        state = "never verified"
    else:
        state = "intact" if verification.ok else f"BROKEN: {verification.reason}"
        checked = f"{verification.entries_checked:,} entries"
        state += f" ({verification.at:%Y-%m-%d %H:%M} UTC, {checked})"
    steps = by_key["pipeline"]
    return [
        ("ledger's last verification", state),
        ("steps failing now", f"{sum(steps.column('failing_now')):,}"),
        ("intervals recovered after retry", f"{sum(steps.column('recovered_after_retry')):,}"),
    ]


def index(request: HttpRequest) -> HttpResponse:
    return redirect("oversight:dashboard", name="prices")


@regulator_required
def dashboard(request: HttpRequest, name: str) -> HttpResponse:
    if name not in DASHBOARDS:
        raise Http404("No such dashboard.")
    form = ScopeForm(request.GET or None)
    scope = form.scope()
    title, keys = DASHBOARDS[name]
    shared: dict[str, Any] = {}
    charts = [CHARTS[key](scope, shared) for key in keys]
    context = {
        "name": name,
        "title": title,
        "dashboards": [(key, label) for key, (label, _) in DASHBOARDS.items()],
        "form": form,
        "scope": scope,
        "charts": charts,
        "headline": _headline(name, charts, shared),
        "query": request.GET.urlencode(),
    }
    return render(request, "oversight/dashboard.html", context)


@regulator_required
def chart_csv(request: HttpRequest, name: str, chart: str) -> HttpResponse:
    if name not in DASHBOARDS or chart not in DASHBOARDS[name][1]:
        raise Http404("No such chart.")
    scope = ScopeForm(request.GET or None).scope()
    table = CHARTS[chart](scope, {}).table
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    community = scope.community.slug if scope.community else "all"
    filename = f"peergrid-{chart}-{community}-{scope.first_day}-{scope.last_day}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv_writer(response)
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow(["" if v is None else v for v in row])
    return response
