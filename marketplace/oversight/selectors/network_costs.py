"""Reads behind the network dashboard's costs: losses, what members paid for them and for the
network, and system-strength events."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Func, IntegerField, Sum

from grid.models import GridCheckResult
from marketplace.ledger.models import AccountKind, EntryKind, LedgerEntry
from marketplace.oversight.selectors.common import Scope, Table, bucket_of, dec, in_scope


class JsonArrayLength(Func):
    """The length of a JSON array column (PostgreSQL's jsonb, SQLite's JSON1)."""

    function = "json_array_length"
    output_field = IntegerField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, function="jsonb_array_length", **extra)


COSTS_COLUMNS = (
    "losses_kwh",
    "losses_allocated_kwh",
    "losses_collected",
    "network_charges_collected",
    "community_fees_collected",
    "strength_events",
    "strength_curtailed_kwh",
)


def network_costs(scope: Scope) -> Table:
    """Per bucket: the grid checks' losses, the part settled to members (kWh and money into the
    losses account), network charges by use and flat community fees collected, and the
    system-strength events (one per bus and interval below the minimum ratio) with the export
    they curtailed."""
    checks = (
        GridCheckResult.objects.filter(in_scope(scope, "interval__"))
        .annotate(bucket=bucket_of(scope, "interval__start"))
        .values("bucket")
        .annotate(
            losses=Sum("losses_kwh"),
            # Per bus and interval, not per check: a check may find several weak buses.
            strength=Sum(JsonArrayLength("strength_events")),
            strength_kwh=Sum("strength_curtailed_kwh"),
        )
        .order_by()
    )
    money = (
        LedgerEntry.objects.filter(
            in_scope(scope, "interval__"),
            account__kind__in=(AccountKind.LOSSES, AccountKind.FEE),
            kind__in=(EntryKind.LOSSES, EntryKind.NETWORK_CHARGE, EntryKind.FEE),
        )
        .annotate(bucket=bucket_of(scope, "interval__start"))
        .values("bucket", "kind")
        .annotate(amount=Sum("amount"), energy=Sum("energy_kwh"))
        .order_by()
    )
    rows: dict[Any, dict[str, Any]] = defaultdict(dict)
    for row in checks:
        rows[row["bucket"]].update(
            losses_kwh=row["losses"],
            strength=row["strength"] or 0,
            strength_kwh=row["strength_kwh"],
        )
    for entry in money:
        rows[entry["bucket"]][entry["kind"]] = entry
    return Table(
        (scope.bucket_label, *COSTS_COLUMNS),
        [
            (
                bucket,
                dec(r.get("losses_kwh")),
                dec(r.get(EntryKind.LOSSES, {}).get("energy")),
                dec(r.get(EntryKind.LOSSES, {}).get("amount"), 2),
                dec(r.get(EntryKind.NETWORK_CHARGE, {}).get("amount"), 2),
                dec(r.get(EntryKind.FEE, {}).get("amount"), 2),
                r.get("strength", 0),
                dec(r.get("strength_kwh")),
            )
            for bucket, r in sorted(rows.items())
        ],
    )


def strength_events(scope: Scope, limit: int = 200) -> Table:
    """The latest system-strength events: the bus, its short-circuit power, the export scheduled
    there, the ratio against the minimum and what the bus can host."""
    results = (
        GridCheckResult.objects.filter(in_scope(scope, "interval__"))
        .exclude(strength_events=[])
        .order_by("-interval__start")
        .values("interval__start", "interval__community__slug", "strength_events")[:limit]
    )
    rows: list[tuple[Any, ...]] = []
    for result in results:
        for event in result["strength_events"]:
            rows.append(
                (
                    result["interval__start"],
                    result["interval__community__slug"],
                    event["bus"],
                    round(float(event["short_circuit_mva"]), 3),
                    round(float(event["export_kw"]), 1),
                    round(float(event["ratio"]), 2),
                    float(event["min_ratio"]),
                    round(float(event["hostable_kw"]), 1),
                )
            )
    return Table(
        (
            "interval start (UTC)",
            "community",
            "bus",
            "short_circuit_mva",
            "export_kw",
            "short_circuit_ratio",
            "minimum_ratio",
            "hostable_export_kw",
        ),
        rows[:limit],
    )
