"""Reads behind the regions dashboard: energy and prices between communities of a region.

Definitions: a community's region order is its net residual with the outside grid after its
own market (``RegionResidual``); the region traded ``region_kwh`` of it between communities at
``region_price_per_kwh`` (volume-weighted); ``outside_kwh`` is what of the orders went to the
outside grid after all. A community's scope covers the trades it took part in on either side.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import ExpressionWrapper, F, Q, Sum

from marketplace.models import RegionResidual, RegionTrade, Side
from marketplace.oversight.selectors.common import MONEY, Scope, Table, bucket_of, dec, rows_of


def _period(scope: Scope, path: str) -> Q:
    return Q(**{f"{path}start__gte": scope.start, f"{path}start__lt": scope.end})


def _trades(scope: Scope) -> Any:
    trades = RegionTrade.objects.filter(_period(scope, "region_interval__"))
    if scope.community is not None:
        trades = trades.filter(
            Q(seller__community=scope.community) | Q(buyer__community=scope.community)
        )
    return trades


def _residuals(scope: Scope) -> Any:
    residuals = RegionResidual.objects.filter(_period(scope, "region_interval__"))
    if scope.community is not None:
        residuals = residuals.filter(community=scope.community)
    return residuals


_VALUE = ExpressionWrapper(F("quantity_kwh") * F("price_per_kwh"), output_field=MONEY)


def _price(value: Any, kwh: Any) -> Decimal | None:
    return dec(Decimal(value) / Decimal(kwh), 4) if kwh else None


def region_volumes(scope: Scope) -> Table:
    """Per bucket: kWh between communities and its price, the orders offered and requested,
    and what of them went to the outside grid."""
    traded = {
        row["bucket"]: row
        for row in rows_of(
            _trades(scope)
            .annotate(bucket=bucket_of(scope, "region_interval__start"))
            .values("bucket")
            .annotate(kwh=Sum("quantity_kwh"), value=Sum(_VALUE))
            .order_by()
        )
    }
    ordered = rows_of(
        _residuals(scope)
        .annotate(bucket=bucket_of(scope, "region_interval__start"))
        .values("bucket")
        .annotate(
            offered=Sum("quantity_kwh", filter=Q(side=Side.SELL)),
            requested=Sum("quantity_kwh", filter=Q(side=Side.BUY)),
            ordered=Sum("quantity_kwh"),
            done=Sum("traded_kwh"),
        )
        .order_by("bucket")
    )
    rows = []
    for row in ordered:
        trade = traded.get(row["bucket"], {})
        rows.append(
            (
                row["bucket"],
                dec(trade.get("kwh")),
                _price(trade.get("value"), trade.get("kwh")),
                dec(row["offered"]),
                dec(row["requested"]),
                dec(Decimal(row["ordered"] or 0) - Decimal(row["done"] or 0)),
            )
        )
    columns = (scope.bucket_label, "region_kwh", "region_price_per_kwh", "offered_kwh",
               "requested_kwh", "outside_kwh")  # fmt: skip
    return Table(columns, rows)


def region_flows(scope: Scope) -> Table:
    """Per community: kWh bought from and sold to the region's other communities, at what
    average price, and what of its orders went to the outside grid."""
    flows: dict[str, dict[str, Any]] = {}

    def of(name: str, region: str) -> dict[str, Any]:
        return flows.setdefault(name, {"region": region})

    trades = _trades(scope)
    for side, path in (("bought", "buyer"), ("sold", "seller")):
        for row in rows_of(
            trades.values(f"{path}__community__name", "region_interval__region__name")
            .annotate(kwh=Sum("quantity_kwh"), value=Sum(_VALUE))
            .order_by()
        ):
            if scope.community is not None and row[f"{path}__community__name"] != (
                scope.community.name
            ):
                continue
            flow = of(row[f"{path}__community__name"], row["region_interval__region__name"])
            flow[side] = (row["kwh"], row["value"])
    for row in rows_of(
        _residuals(scope)
        .values("community__name", "region_interval__region__name")
        .annotate(ordered=Sum("quantity_kwh"), done=Sum("traded_kwh"))
        .order_by()
    ):
        flow = of(row["community__name"], row["region_interval__region__name"])
        flow["outside"] = Decimal(row["ordered"] or 0) - Decimal(row["done"] or 0)
    rows = []
    for name in sorted(flows):
        flow = flows[name]
        bought_kwh, bought_value = flow.get("bought", (None, None))
        sold_kwh, sold_value = flow.get("sold", (None, None))
        rows.append(
            (
                name,
                flow["region"],
                dec(bought_kwh),
                _price(bought_value, bought_kwh),
                dec(sold_kwh),
                _price(sold_value, sold_kwh),
                dec(flow.get("outside")),
            )
        )
    columns = ("community", "region", "bought_kwh", "bought_price_per_kwh", "sold_kwh",
               "sold_price_per_kwh", "outside_kwh")  # fmt: skip
    return Table(columns, rows)
