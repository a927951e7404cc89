"""Writes for grid models: choosing or uploading a community's network, and checking an interval.

``grid_check_interval`` is the pipeline's grid step: it turns the interval's trades into
``ScheduledTrade``s at their meter points' buses, runs the pure ``grid.check.grid_check`` and
stores what it found (``GridCheckResult``) and what it curtailed (on the trades).
"""

from __future__ import annotations

import math
import threading
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import MeterPoint
from config.errors import ApplicationError, ErrorCode
from grid.check import (
    CurtailmentPolicy,
    GridCheckOutcome,
    GridLimits,
    ScheduledTrade,
    grid_check,
)
from grid.models import GridCheckResult, GridModel, NetworkSource
from grid.networks import (
    NetworkInvalid,
    connection_buses,
    network_from_json,
    network_to_json,
    reference_network,
    validate_network,
)
from marketplace.models import Community, Interval, Trade

# An upload bigger than this is not an LV community grid; refusing it early keeps a worker from
# spending minutes parsing it.
MAX_NETWORK_JSON_CHARS = 50_000_000

# Parsed nets per worker process, keyed by (grid model pk, uploaded_at): parsing pandapower JSON
# costs 50-500 ms, more than the power flow itself. A new upload changes uploaded_at, so a stale
# entry is never used; grid_check deep-copies, so the cached net is never modified.
_NET_CACHE: dict[tuple[int, datetime], Any] = {}
_NET_CACHE_LOCK = threading.Lock()
_NET_CACHE_SIZE = 32


@transaction.atomic
def grid_model_use_reference(*, community: Community, name: str) -> GridModel:
    """Give the community one of the built-in reference networks (replacing any other)."""
    try:
        net = reference_network(name)
    except NetworkInvalid as exc:
        raise ApplicationError(
            ErrorCode.INVALID_NETWORK, str(exc), field="reference_name"
        ) from None
    # SimBench nets carry a year of profiles (10 MB of JSON for urban6): the demo reads them from
    # the installed package (grid.profiles), so storing them would only slow every parse.
    net.pop("profiles", None)
    grid_model, _ = GridModel.objects.update_or_create(
        community=community,
        defaults={
            "source": NetworkSource.REFERENCE,
            "reference_name": name,
            "network_json": network_to_json(net),
            "connection_buses": connection_buses(net),
            "uploaded_at": timezone.now(),
        },
    )
    return grid_model


def grid_model_upload(*, community: Community, json_text: str) -> GridModel:
    """Replace the community's network with an uploaded pandapower JSON file, once it is valid.

    Valid means: it parses as a pandapower net, has an in-service external grid, and its base
    case power flow converges. Anything else raises ``INVALID_NETWORK`` on ``network_file`` with
    the reason in one line, and nothing is written.
    """
    if len(json_text) > MAX_NETWORK_JSON_CHARS:
        raise ApplicationError(
            ErrorCode.INVALID_NETWORK,
            f"The file is too large ({len(json_text):,} characters).",
            field="network_file",
        )
    try:
        net = network_from_json(json_text)
        validate_network(net)
    except NetworkInvalid as exc:
        raise ApplicationError(
            ErrorCode.INVALID_NETWORK, f"The network cannot be used: {exc}.", field="network_file"
        ) from None
    buses = connection_buses(net)
    if not buses:
        raise ApplicationError(
            ErrorCode.INVALID_NETWORK,
            "The network cannot be used: it has no bus a meter point could connect to.",
            field="network_file",
        )
    with transaction.atomic():
        grid_model, _ = GridModel.objects.update_or_create(
            community=community,
            defaults={
                "source": NetworkSource.UPLOAD,
                "reference_name": "",
                # Stored as pandapower writes it, so what is checked is what was validated.
                "network_json": network_to_json(net),
                "connection_buses": buses,
                "uploaded_at": timezone.now(),
            },
        )
    _cache_put((grid_model.pk, grid_model.uploaded_at), net)
    return grid_model


def _cache_put(key: tuple[int, datetime], net: Any) -> None:
    with _NET_CACHE_LOCK:
        if len(_NET_CACHE) >= _NET_CACHE_SIZE:
            _NET_CACHE.pop(next(iter(_NET_CACHE)))
        _NET_CACHE[key] = net


def grid_model_net(grid_model: GridModel) -> Any:
    """The parsed pandapower net of a grid model, from this process's cache when possible.

    Callers must not modify it (``grid_check`` works on a copy).
    """
    key = (grid_model.pk, grid_model.uploaded_at)
    with _NET_CACHE_LOCK:
        net = _NET_CACHE.get(key)
    if net is None:
        net = network_from_json(grid_model.network_json)
        # The check deep-copies the net on every run; an upload's time series would ride along.
        net.pop("profiles", None)
        _cache_put(key, net)
    return net


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else float(value)


def _limits(interval: Interval) -> tuple[GridLimits, CurtailmentPolicy]:
    # The rules version the interval was opened under, not the community's latest.
    rules = interval.rules
    limits = GridLimits(
        v_min_pu=float(rules.voltage_min_pu),
        v_max_pu=float(rules.voltage_max_pu),
        max_line_loading_percent=float(rules.max_line_loading_percent),
        max_trafo_loading_percent=float(rules.max_trafo_loading_percent),
    )
    return limits, CurtailmentPolicy(rules.curtailment_policy)


def grid_check_interval(*, interval: Interval) -> GridCheckResult:
    """Check the interval's trades against the community's grid; curtail; store the result.

    Runs inside the caller's transaction (the pipeline step holds the interval's row lock), so
    the result row and the curtailments are written together or not at all. A second call for
    the same interval raises (one result per interval), which the step's state check prevents.
    """
    started = timezone.now()
    trades = list(
        Trade.objects.filter(interval=interval)
        .order_by("pk")
        .values_list(
            "pk",
            "quantity_kwh",
            "orders_submitted_at",
            "seller_meter_point_id",
            "buyer_meter_point_id",
        )
    )
    scheduled_kwh = sum((row[1] for row in trades), Decimal(0))
    grid_model = GridModel.objects.filter(community_id=interval.community_id).first()
    if grid_model is None:
        # Nothing to check against: the trades go through uncurtailed and the page says why.
        return GridCheckResult.objects.create(
            interval=interval,
            feasible=True,
            power_flows=0,
            violations=[
                {
                    "kind": "no_grid_model",
                    "element": "network",
                    "value": None,
                    "limit": None,
                    "caused_by_trades": False,
                }
            ],
            trades_checked=len(trades),
            scheduled_kwh=scheduled_kwh,
            duration_s=(timezone.now() - started).total_seconds(),
        )

    net = grid_model_net(grid_model)
    known_buses = {int(b) for b in net.bus.index[net.bus.in_service.astype(bool)]}
    meter_ids = {mp for row in trades for mp in row[3:5] if mp is not None}
    bus_of: dict[int, int | None] = dict(
        MeterPoint.objects.filter(pk__in=meter_ids).values_list("pk", "bus")
    )
    unmapped: set[int] = set()

    def bus(meter_point_id: int | None) -> int | None:
        if meter_point_id is None:
            return None  # the outside grid: the external grid (slack) takes it
        value = bus_of.get(meter_point_id)
        if value is None or value not in known_buses:
            # Not connected to the model: the power cannot be placed, so it is not checked.
            unmapped.add(meter_point_id)
            return None
        return value

    scheduled = [
        ScheduledTrade(
            trade_id=str(pk),
            seller_bus=bus(seller_mp),
            buyer_bus=bus(buyer_mp),
            quantity_kwh=quantity,
            submitted_at=submitted_at,
        )
        for pk, quantity, submitted_at, seller_mp, buyer_mp in trades
    ]
    limits, policy = _limits(interval)
    outcome = grid_check(
        net, scheduled, interval_hours=interval.hours, limits=limits, policy=policy
    )
    curtailed_kwh = _apply_curtailments(outcome)
    violations: list[dict[str, Any]] = [
        {
            "kind": v.kind,
            "element": v.element,
            "value": _finite(v.value),
            "limit": _finite(v.limit),
            "caused_by_trades": v.caused_by_trades,
        }
        for v in outcome.violations
    ]
    violations += [
        {
            "kind": "unmapped_meter_point",
            "element": f"meter point {mp}",
            "value": None,
            "limit": None,
            "caused_by_trades": False,
        }
        for mp in sorted(unmapped)
    ]
    return GridCheckResult.objects.create(
        interval=interval,
        grid_model=grid_model,
        feasible=outcome.feasible,
        power_flows=outcome.power_flows,
        min_vm_pu=_finite(outcome.min_vm_pu),
        max_vm_pu=_finite(outcome.max_vm_pu),
        max_line_loading_percent=_finite(outcome.max_line_loading_percent),
        max_trafo_loading_percent=_finite(outcome.max_trafo_loading_percent),
        losses_kw=_finite(outcome.losses_kw),
        violations=violations,
        curtailments=[
            {"trade": int(c.trade_id), "curtailed_kwh": str(c.curtailed_kwh), "reason": c.reason}
            for c in outcome.curtailments
        ],
        trades_checked=len(trades),
        scheduled_kwh=scheduled_kwh,
        curtailed_kwh=curtailed_kwh,
        bus_vm_pu={str(b): round(v, 5) for b, v in outcome.bus_vm_pu.items()},
        line_loading_percent={str(k): round(v, 2) for k, v in outcome.line_loading_percent.items()},
        duration_s=outcome.duration_s,
    )


def _apply_curtailments(outcome: GridCheckOutcome) -> Decimal:
    """Write each curtailment onto its trade; returns the total curtailed energy."""
    if not outcome.curtailments:
        return Decimal(0)
    by_pk = {int(c.trade_id): c for c in outcome.curtailments}
    trades = list(Trade.objects.filter(pk__in=by_pk))
    reason_length = Trade._meta.get_field("curtailment_reason").max_length or 300
    for trade in trades:
        curtailment = by_pk[trade.pk]
        trade.curtailed_kwh = curtailment.curtailed_kwh
        reason = curtailment.reason
        # The full reason is in GridCheckResult.curtailments; the trade keeps a readable head.
        trade.curtailment_reason = (
            reason if len(reason) <= reason_length else reason[: reason_length - 1] + "…"
        )
    Trade.objects.bulk_update(trades, ["curtailed_kwh", "curtailment_reason"], batch_size=500)
    return sum((c.curtailed_kwh for c in outcome.curtailments), Decimal(0))
