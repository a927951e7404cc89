"""The pipeline's grid step: the interval's trades as a schedule, the pure check, curtailments back.

``interval_grid_check`` runs inside the pipeline step's transaction (which holds the interval's
row lock), so the result row, the curtailments and a hold are written together or not at all.

The schedule (``grid.check.Schedule``) is built like this:

* Placements: every meter point of the community whose bus is an in-service bus of the network.
  A meter point that names its network elements (``MeterPoint.network_elements``) stands for
  exactly those; the meter points on a bus that name none share the bus's loads and generators
  equally. Its power factor is the meter point's.
* Trades: each trade is up to two entries, one per member side, of average power
  ``quantity_kwh / interval hours``: the seller's export (``+``, always curtailable: the seller's
  inverter) and the buyer's purchase (``-``, curtailable only if the buyer's order was a flexible
  purchase). The outside grid's side is the external grid (slack) and no entry. A member's net
  scheduled power is the sum of their entries: what they sell minus what they buy.
* Baseline: a placed meter point without a trade still consumes and produces. Its forecast is
  ``marketplace.selectors.forecasts.net_export_forecast_kw``: the mean metered net export
  (exported - imported, per hour) in the same quarter-hour one, two, three and four weeks
  before (the latest version of each reading; as many of those weeks as have readings). With
  no readings at all, no entry is made and the meter point's network elements follow their
  profile at the interval's time, which is the profile forecast. Baselines are never curtailed.

Curtailment write-back: curtailing a trade's export or its flexible purchase both reduce what is
delivered between the two, so a trade's curtailed energy is the larger of its two sides',
rounded up to 0.001 kWh and never above its quantity; the buyer's missing energy then comes from
the grid, which settlement books as the buyer's imbalance. All curtailments are written in one
UPDATE statement.

System strength: the network's short-circuit power per bus (``grid.studies``, once per network
version) goes into the check with the rules' minimum short-circuit ratio; a bus whose exports
break it is curtailed inside the check like any other violation. The events and the energy they
curtailed are stored with the result, for the manager's and the regulator's pages. A network
whose short-circuit study fails is checked without it, and the result says so
(``strength_study_failed``).

Losses: the final state's losses are allocated to the meter points by normalised marginal loss
factors (``grid.losses.allocate_state_losses``) over the meter points' final net power, stored
in kWh per meter point (``GridCheckResult.loss_allocation``; settlement books them at the loss
price); the part of the elements no meter point with a schedule stands for stays the
community's. ``losses_kwh`` is the whole interval's, and the shares of the meter points and of
the rest sum to it exactly.

An infeasible outcome holds the interval: the result is stored, ``Interval.held_reason`` says
why, and the step does not advance; the manager's retry clears the hold and runs the step again.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal
from typing import Any

from django.db.models import Count, Sum

from accounts.models import MeterPoint
from config.sql import insert_rows, update_rows
from grid.check import (
    CurtailmentPolicy,
    GridCheckOutcome,
    GridLimits,
    Placement,
    Schedule,
    ScheduleEntry,
    grid_check,
)
from grid.losses import allocate_state_losses
from grid.models import GridCheckResult, GridModel
from grid.services import GRID_MODEL_HEAVY_FIELDS, grid_network
from grid.studies import grid_model_network_use, grid_model_short_circuit
from marketplace.models import Interval, Trade
from marketplace.selectors.forecasts import net_export_forecast_kw
from marketplace.services.network_charges import TradeSides, trade_sides_uses
from units import KWH


@dataclass(frozen=True, slots=True)
class _TradeRow:
    pk: int
    key: str  # "<source>-<sequence>": stable whatever the database ids are
    quantity: Decimal
    submitted_at: Any
    seller_mp: int | None
    buyer_mp: int | None
    buyer_flexible: bool
    # What the network uses need (``network_charges.trade_sides_uses``), and the curtailment
    # the trade has, kept by the one UPDATE that writes both.
    sides: TradeSides
    curtailed: Decimal
    reason: str


def _limits(interval: Interval) -> tuple[GridLimits, CurtailmentPolicy]:
    # The rules version the interval was opened under, not the community's latest.
    rules = interval.rules
    limits = GridLimits(
        v_min_pu=float(rules.voltage_min_pu),
        v_max_pu=float(rules.voltage_max_pu),
        max_line_loading_percent=float(rules.max_line_loading_percent),
        max_trafo_loading_percent=float(rules.max_trafo_loading_percent),
        min_short_circuit_ratio=float(rules.min_short_circuit_ratio),
    )
    return limits, CurtailmentPolicy(rules.curtailment_policy)


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else float(value)


def _issue(kind: str, element: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "element": element,
        "value": None,
        "limit": None,
        "caused_by_trades": False,
        "needs_grid_action": True,
    }


def placements_for(*, community_id: int, network: Any) -> tuple[dict[int, Placement], list[int]]:
    """The community's meter points on the network, and those without a usable place."""
    rows = list(
        MeterPoint.objects.filter(membership__community_id=community_id)
        .order_by()
        .values_list("pk", "bus", "network_elements", "power_factor")
    )
    compiled = network.compiled
    loads = compiled.load_position
    sgens = compiled.sgen_position

    def known(name: Any) -> bool:
        kind, _, index = str(name).partition(" ")
        table = {"load": loads, "sgen": sgens}.get(kind)
        return table is not None and index.isdigit() and int(index) in table

    sharing: dict[int, list[int]] = defaultdict(list)
    placed: dict[int, Placement] = {}
    unplaced: list[int] = []
    for pk, bus, elements, power_factor in rows:
        if bus is None or compiled.ppci_bus(bus) < 0:
            unplaced.append(pk)
            continue
        names = tuple(str(e) for e in elements or ())
        if not all(known(name) for name in names):
            unplaced.append(pk)
            continue
        if not names:
            sharing[bus].append(pk)
        placed[pk] = Placement(str(pk), bus, names, 1.0, float(power_factor))
    for bus, pks in sharing.items():
        for pk in pks:
            p = placed[pk]
            placed[pk] = Placement(p.meter_point, bus, (), 1.0 / len(pks), p.power_factor)
    return placed, sorted(unplaced)


def _baselines(interval: Interval, meter_points: list[int]) -> dict[int, float]:
    """Forecast net export (kW) per meter point from its readings in past weeks (see module)."""
    return net_export_forecast_kw(
        community_id=interval.community_id, start=interval.start, meter_points=meter_points
    )


def _ceil_kwh(kw: float, hours: float) -> Decimal:
    return Decimal(repr(kw * hours)).quantize(KWH, rounding=ROUND_UP)


def intervals_grid_check_unmodelled(*, intervals: list[Interval]) -> dict[int, GridCheckResult]:
    """``interval_grid_check`` for those of ``intervals`` whose community has no grid model,
    in a fixed number of statements: interval id -> its result ("no grid model", the trades
    through uncurtailed), as ``interval_grid_check`` stores it. Intervals of a community with a
    grid model are left out: each needs its own power flow."""
    modelled = set(
        GridModel.objects.filter(
            community_id__in={interval.community_id for interval in intervals}
        ).values_list("community_id", flat=True)
    )
    unmodelled = [interval for interval in intervals if interval.community_id not in modelled]
    if not unmodelled:
        return {}
    ids = [interval.pk for interval in unmodelled]
    totals = {
        interval_id: (count, kwh)
        for interval_id, count, kwh in Trade.objects.filter(interval_id__in=ids)
        .order_by()
        .values("interval_id")
        .annotate(count=Count("pk"), kwh=Sum("quantity_kwh"))
        .values_list("interval_id", "count", "kwh")
    }
    GridCheckResult.objects.filter(interval_id__in=ids).delete()
    results = [
            GridCheckResult(
                interval=interval, feasible=True, power_flows=0,
                violations=[_issue("no_grid_model", "network")],
                trades_checked=totals.get(interval.pk, (0, None))[0],
                # Rounded back to the column's places: SQLite sums decimals as floats.
                scheduled_kwh=Decimal(totals.get(interval.pk, (0, None))[1] or 0).quantize(KWH),
                duration_s=0.0,
            )
            for interval in unmodelled
    ]  # fmt: skip
    # One COPY (config.sql.insert_rows): bulk_create's compilation of a hundred rows of JSON
    # fields was most of this step; the results' ids are not needed.
    insert_rows(GridCheckResult, _UNMODELLED_FIELDS, [
        [getattr(result, name) for name in _UNMODELLED_FIELDS] for result in results
    ])  # fmt: skip
    return {result.interval_id: result for result in results}


_UNMODELLED_FIELDS = (
    "interval_id", "checked_at", "feasible", "power_flows", "violations", "trades_checked",
    "scheduled_kwh", "duration_s",
)  # fmt: skip


def interval_grid_check(*, interval: Interval, network_uses: bool = False) -> GridCheckResult:
    """Check the interval's trades against the community's grid; curtail; store the result.

    A second call for the same interval replaces its result (a retry of a held interval); the
    pipeline's state check keeps it from running twice otherwise. With ``network_uses`` (the
    pipeline's grid step), a feasible check also sets each trade side's use of the network as
    ``network_charges.trade_network_uses_set`` does, in the same UPDATE as the curtailments.
    """
    rows = [
        _TradeRow(
            pk, f"{source}-{sequence}", quantity, submitted, seller_mp, buyer_mp, flexible,
            (source, buyer, seller, buyer_bus, seller_bus), curtailed, reason,
        )
        for (
            pk, source, sequence, quantity, submitted, seller_mp, buyer_mp, flexible, buyer,
            seller, buyer_bus, seller_bus, curtailed, reason,
        ) in (
            Trade.objects.filter(interval=interval)
            .order_by()
            .values_list(
                "pk", "source", "sequence", "quantity_kwh", "orders_submitted_at",
                "seller_meter_point_id", "buyer_meter_point_id", "buyer_flexible", "buyer_id",
                "seller_id", "buyer_meter_point__bus", "seller_meter_point__bus",
                "curtailed_kwh", "curtailment_reason",
            )
        )
    ]  # fmt: skip
    scheduled_kwh = sum((row.quantity for row in rows), Decimal(0))
    GridCheckResult.objects.filter(interval=interval).delete()
    grid_model = (
        GridModel.objects.filter(community_id=interval.community_id)
        .defer(*GRID_MODEL_HEAVY_FIELDS)
        .first()
    )
    if grid_model is None:
        # Nothing to check against: the trades go through uncurtailed and the page says why.
        return GridCheckResult.objects.create(
            interval=interval,
            feasible=True,
            power_flows=0,
            violations=[_issue("no_grid_model", "network")],
            trades_checked=len(rows),
            scheduled_kwh=scheduled_kwh,
            duration_s=0.0,
        )

    network = grid_network(grid_model)
    placed, _unplaced = placements_for(community_id=interval.community_id, network=network)
    hours = float(interval.hours)
    entries: list[ScheduleEntry] = []
    stranded: set[int] = set()
    traded: set[int] = set()
    for row in rows:
        kw = float(row.quantity) / hours
        for mp, side, sign, flexible in (
            (row.seller_mp, "sell", 1.0, True),
            (row.buyer_mp, "buy", -1.0, row.buyer_flexible),
        ):
            if mp is None:
                continue  # the outside grid: the external grid (slack) takes it
            if mp not in placed:
                # Not on the network: the power cannot be placed, so it is not checked (orders
                # from such meter points are refused; this is one placed before a change).
                stranded.add(mp)
                continue
            traded.add(mp)
            entries.append(
                ScheduleEntry(f"{row.key}:{side}", str(mp), sign * kw, flexible, row.submitted_at)
            )
    baselines = _baselines(interval, sorted(set(placed) - traded))
    entries += [
        ScheduleEntry(f"baseline:{mp}", str(mp), kw, False) for mp, kw in sorted(baselines.items())
    ]
    limits, policy = _limits(interval)
    issues: list[dict[str, Any]] = []
    try:
        short_circuit: dict[int, float] | None = grid_model_short_circuit(grid_model)
    except ValueError:
        short_circuit = None
        issues.append(_issue("strength_study_failed", "network"))
    outcome = grid_check(
        network,
        Schedule(interval.start, tuple(placed.values()), tuple(entries)),
        limits=limits,
        policy=policy,
        short_circuit=short_circuit,
    )
    curtailed_kwh = Decimal(0)
    if outcome.feasible:
        curtailments = _curtailments(rows, outcome, hours)
        curtailed_kwh = sum((kwh for kwh, _ in curtailments.values()), Decimal(0))
        if network_uses:
            _write_curtailments_and_uses(rows, curtailments, grid_model)
        else:
            _write_curtailments(curtailments)
    losses_kwh, loss_allocation = _loss_allocation(outcome, placed, hours)
    violations: list[dict[str, Any]] = [
        {
            "kind": v.kind,
            "element": v.element,
            "value": _finite(v.value),
            "limit": _finite(v.limit),
            "caused_by_trades": v.caused_by_trades,
            "needs_grid_action": v.needs_grid_action,
        }
        for v in outcome.violations
    ]
    violations += [_issue("unmapped_meter_point", f"meter point {mp}") for mp in sorted(stranded)]
    violations += issues
    by_key = {row.key: row.pk for row in rows}
    final = outcome.final
    return GridCheckResult.objects.create(
        interval=interval,
        grid_model=grid_model,
        feasible=outcome.feasible,
        held_reason=outcome.held_reason,
        power_flows=outcome.power_flows,
        min_vm_pu=_finite(final.min_vm_pu),
        max_vm_pu=_finite(final.max_vm_pu),
        max_line_loading_percent=_finite(final.max_line_loading_percent),
        max_trafo_loading_percent=_finite(final.max_trafo_loading_percent),
        losses_kw=_finite(final.losses_kw),
        losses_kwh=losses_kwh,
        loss_allocation=loss_allocation,
        strength_events=[
            {
                "bus": e.bus,
                "short_circuit_mva": round(e.short_circuit_mva, 6),
                "export_kw": round(e.export_kw, 3),
                "ratio": round(e.ratio, 4),
                "min_ratio": e.min_ratio,
                "hostable_kw": round(e.hostable_kw, 3),
            }
            for e in outcome.strength_events
        ],
        strength_curtailed_kwh=(
            _strength_curtailed_kwh(rows, outcome, hours) if outcome.feasible else Decimal(0)
        ),
        violations=violations,
        curtailments=[
            {
                "trade": by_key[c.key.rsplit(":", 1)[0]],
                "side": c.key.rsplit(":", 1)[1],
                "curtailed_kwh": str(_ceil_kwh(c.curtailed_kw, hours)),
                "reason": c.reason,
            }
            for c in outcome.curtailments
            if outcome.feasible
        ],
        trades_checked=len(rows),
        scheduled_kwh=scheduled_kwh,
        curtailed_kwh=curtailed_kwh,
        baselines={
            "readings": len(baselines),
            "profile": len(placed) - len(traded) - len(baselines),
        },
        bus_vm_pu={str(b): round(v, 5) for b, v in final.bus_vm_pu.items()},
        line_loading_percent={str(k): round(v, 2) for k, v in final.line_loading_percent.items()},
        duration_s=outcome.duration_s,
    )


def _loss_allocation(
    outcome: GridCheckOutcome, placed: dict[int, Placement], hours: float
) -> tuple[Decimal | None, dict[str, str]]:
    """The final state's losses in kWh and each scheduled meter point's share (module docs)."""
    if not outcome.feasible or not outcome.state.converged:
        return None, {}
    members = {mp: (placed[int(mp)].bus, kw) for mp, kw in outcome.injection_kw.items()}
    shares = allocate_state_losses(outcome.state, members).allocated_kwh(hours)
    losses_kwh = sum(shares.values(), Decimal(0))
    return losses_kwh, {mp: str(shares[mp]) for mp in sorted(members, key=int)}


def _strength_curtailed_kwh(
    rows: list[_TradeRow], outcome: GridCheckOutcome, hours: float
) -> Decimal:
    """Energy curtailed for system strength: the trades' exports cut at weak buses."""
    quantity = {row.key: row.quantity for row in rows}
    total = Decimal(0)
    for curtailment in outcome.curtailments:
        if curtailment.strength_kw > 0:
            key = curtailment.key.rpartition(":")[0]
            total += min(_ceil_kwh(curtailment.strength_kw, hours), quantity[key])
    return total


def _curtailments(
    rows: list[_TradeRow], outcome: GridCheckOutcome, hours: float
) -> dict[int, tuple[Decimal, str]]:
    """Each curtailed trade's (curtailed kWh, reason), by trade id (see the module docs)."""
    if not outcome.curtailments:
        return {}
    by_key = {row.key: row for row in rows}
    kwh: dict[int, Decimal] = {}
    reasons: dict[int, list[str]] = defaultdict(list)
    for curtailment in outcome.curtailments:
        key, _, _side = curtailment.key.rpartition(":")
        row = by_key[key]
        amount = min(_ceil_kwh(curtailment.curtailed_kw, hours), row.quantity)
        kwh[row.pk] = max(kwh.get(row.pk, Decimal(0)), amount)
        reasons[row.pk].append(curtailment.reason)
    reason_length = Trade._meta.get_field("curtailment_reason").max_length or 300
    out = {}
    for pk in sorted(kwh):
        # The full reason is in GridCheckResult.curtailments; the trade keeps a readable head.
        reason = "; ".join(reasons[pk])
        if len(reason) > reason_length:
            reason = reason[: reason_length - 1] + "…"
        out[pk] = (kwh[pk], reason)
    return out


def _write_curtailments(curtailments: dict[int, tuple[Decimal, str]]) -> None:
    """Write each curtailed trade's curtailment and reason in one statement."""
    if curtailments:
        trades_update_curtailments([(pk, *curtailed) for pk, curtailed in curtailments.items()])


def _write_curtailments_and_uses(
    rows: list[_TradeRow], curtailments: dict[int, tuple[Decimal, str]], grid_model: GridModel
) -> None:
    """Every trade's curtailment (the one it has unless curtailed now) and its sides' uses of
    the network, in one statement: the pipeline's grid step wrote them in two, each trade twice."""
    uses = trade_sides_uses(grid_model_network_use(grid_model), [row.sides for row in rows])
    update_rows(
        Trade,
        ["curtailed_kwh", "curtailment_reason", "buyer_network_use", "seller_network_use"],
        [
            (row.pk, *curtailments.get(row.pk, (row.curtailed, row.reason)), *pair)
            for row, pair in zip(rows, uses, strict=True)
        ],
    )


def trades_update_curtailments(values: list[tuple[int, Decimal, str]]) -> None:
    """Each trade's ``(pk, curtailed kWh, reason)`` in one statement (``config.sql.update_rows``),
    for 10,000 trades as for ten."""
    update_rows(Trade, ["curtailed_kwh", "curtailment_reason"], values)
