"""Reads behind the volumes dashboard: P2P and grid energy per bucket, self-sufficiency."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import ExpressionWrapper, F, Q

from marketplace.ledger.models import Settlement
from marketplace.models import Community, Trade, TradeSource
from marketplace.oversight.selectors.common import (
    ENERGY,
    P2P_SOURCES,
    Scope,
    Table,
    bucket_of,
    dec,
    delivered_kwh,
    in_scope,
    ratio,
    rows_of,
    sum_if,
)


def _trade_volumes(scope: Scope, group: str) -> dict[Any, dict[str, Any]]:
    delivered = delivered_kwh()
    rows = (
        Trade.objects.filter(in_scope(scope, "interval__"))
        .annotate(group=bucket_of(scope, "interval__start") if group == "bucket" else F(group))
        .values("group")
        .annotate(
            p2p=sum_if(Q(source__in=P2P_SOURCES), delivered),
            grid_in=sum_if(Q(source=TradeSource.GRID, buyer__isnull=False), delivered),
            grid_out=sum_if(Q(source=TradeSource.GRID, seller__isnull=False), delivered),
        )
        .order_by()
    )
    return {row["group"]: row for row in rows_of(rows)}


def _imbalances(scope: Scope, group: str) -> dict[Any, dict[str, Any]]:
    imbalance = F("imbalance_kwh")
    rows = (
        Settlement.objects.filter(in_scope(scope, "interval__"))
        .annotate(group=bucket_of(scope, "interval__start") if group == "bucket" else F(group))
        .values("group")
        .annotate(
            extra_in=sum_if(Q(imbalance_kwh__gt=0), imbalance),
            extra_out=sum_if(
                Q(imbalance_kwh__lt=0), ExpressionWrapper(-imbalance, output_field=ENERGY)
            ),
        )
        .order_by()
    )
    return {row["group"]: row for row in rows_of(rows)}


def _volume_row(trades: dict[str, Any], imbalances: dict[str, Any]) -> tuple[Decimal, ...]:
    p2p = dec(trades.get("p2p"))
    grid_in = dec(trades.get("grid_in")) + dec(imbalances.get("extra_in"))
    grid_out = dec(trades.get("grid_out")) + dec(imbalances.get("extra_out"))
    return p2p, grid_in, grid_out


def volumes(scope: Scope) -> Table:
    """P2P energy against energy from and to the grid, per bucket."""
    trades = _trade_volumes(scope, "bucket")
    imbalances = _imbalances(scope, "bucket")
    rows = []
    for bucket in sorted(set(trades) | set(imbalances)):
        p2p, grid_in, grid_out = _volume_row(trades.get(bucket, {}), imbalances.get(bucket, {}))
        rows.append(
            (
                bucket,
                p2p,
                grid_in,
                grid_out,
                ratio(p2p, p2p + grid_in),
                ratio(p2p, p2p + grid_out),
            )
        )
    columns = (
        scope.bucket_label,
        "p2p_kwh",
        "from_grid_kwh",
        "to_grid_kwh",
        "self_sufficiency",
        "self_consumption",
    )
    return Table(columns, rows)


def community_sufficiency(scope: Scope) -> Table:
    """Self-sufficiency and self-consumption of each community over the whole range."""
    trades = _trade_volumes(scope, "interval__community")
    imbalances = _imbalances(scope, "interval__community")
    communities = Community.objects.order_by("name")
    if scope.community is not None:
        communities = communities.filter(pk=scope.community.pk)
    rows = []
    for community_id, name in communities.values_list("pk", "name"):
        p2p, grid_in, grid_out = _volume_row(
            trades.get(community_id, {}), imbalances.get(community_id, {})
        )
        rows.append(
            (name, p2p, grid_in, grid_out, ratio(p2p, p2p + grid_in), ratio(p2p, p2p + grid_out))
        )
    columns = (
        "community",
        "p2p_kwh",
        "from_grid_kwh",
        "to_grid_kwh",
        "self_sufficiency",
        "self_consumption",
    )
    return Table(columns, rows)
