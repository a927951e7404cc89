"""Reads behind the prices dashboard: the P2P price per bucket against the grid tariffs."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import ExpressionWrapper, F, Max, Min, Sum

from marketplace.models import Interval
from marketplace.oversight.selectors.common import (
    MONEY,
    Scope,
    Table,
    bucket_of,
    dec,
    delivered_kwh,
    in_scope,
    p2p_trades,
    rows_of,
)


def prices(scope: Scope) -> Table:
    """P2P price (volume-weighted, with min and max) per bucket against the grid tariffs."""
    delivered = delivered_kwh()
    trade_rows = (
        p2p_trades(scope)
        .annotate(bucket=bucket_of(scope, "interval__start"))
        .values("bucket")
        .annotate(
            kwh=Sum(delivered),
            paid=Sum(ExpressionWrapper(F("quantity_kwh") * F("price_per_kwh"), output_field=MONEY)),
            agreed=Sum("quantity_kwh"),
            low=Min("price_per_kwh"),
            high=Max("price_per_kwh"),
        )
        .order_by()
    )
    by_bucket = {row["bucket"]: row for row in rows_of(trade_rows)}
    tariff_rows = (
        Interval.objects.filter(in_scope(scope))
        .annotate(bucket=bucket_of(scope, "start"))
        .values("bucket")
        .annotate(retail=Max("rules__retail_tariff"), feed_in=Min("rules__feed_in_tariff"))
        .order_by("bucket")
    )
    rows = []
    for tariff in tariff_rows:
        trade = by_bucket.get(tariff["bucket"], {})
        agreed = trade.get("agreed")
        average = (Decimal(trade["paid"]) / Decimal(agreed)) if agreed else None
        rows.append(
            (
                tariff["bucket"],
                None if average is None else dec(average, 4),
                dec(trade["low"], 4) if trade.get("low") is not None else None,
                dec(trade["high"], 4) if trade.get("high") is not None else None,
                dec(tariff["retail"], 4),
                dec(tariff["feed_in"], 4),
                dec(trade.get("kwh")),
            )
        )
    columns = (
        scope.bucket_label,
        "p2p_price_per_kwh",
        "min_price_per_kwh",
        "max_price_per_kwh",
        "retail_tariff",
        "feed_in_tariff",
        "p2p_kwh",
    )
    return Table(columns, rows)
