"""Builders for pipeline and grid-check tests: communities with prosumers on a real network."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from accounts.models import Membership, MeterPoint, User
from accounts.services import (
    membership_approve,
    membership_request,
    meter_point_approve,
    meter_point_register,
)
from grid.services import grid_model_use_reference
from marketplace.models import Community, Interval, IntervalState, Trade, TradeSource
from marketplace.services.communities import community_create

_numbers = itertools.count(1)


@dataclass
class Home:
    membership: Membership
    meter_point: MeterPoint


def community_with_homes(
    *, homes: int = 4, network: str | None = "cigre_lv", slug: str | None = None, **rules: Any
) -> tuple[Community, list[Home]]:
    """A community on ``network`` whose approved prosumers sit on its connection buses in turn."""
    number = next(_numbers)
    slug = slug or f"test-{number}"
    # Homes with 400 kW connections: big enough that capacity never limits what a test posts.
    rules.setdefault("max_connection_kw", Decimal("400"))
    community = community_create(name=f"Community {slug}", slug=slug, **rules)
    buses: list[int] = []
    if network:
        buses = grid_model_use_reference(community=community, name=network).connection_buses
    made = []
    for i in range(homes):
        user = User.objects.create_user(f"home{i}-{slug}@example.org", "pw")
        membership = membership_approve(
            membership=membership_request(user=user, community=community), decided_by=None
        )
        meter_point = meter_point_register(
            membership=membership,
            label=f"Home {i}",
            import_capacity_kw=Decimal("400"),
            export_capacity_kw=Decimal("400"),
            pv_kwp=Decimal("6"),
        )
        meter_point = meter_point_approve(
            meter_point=meter_point, approved_by=None, bus=buses[i % len(buses)] if buses else None
        )
        made.append(Home(membership, meter_point))
    return community, made


def interval_at(
    community: Community, start: datetime, state: str = IntervalState.OPEN, minutes: int = 15
) -> Interval:
    rules = community.rules.latest()
    return Interval.objects.create(
        community=community,
        rules=rules,
        start=start,
        end=start + timedelta(minutes=minutes),
        gate_closure_at=start - timedelta(minutes=rules.gate_closure_lead_minutes),
        state=state,
    )


def trade(
    interval: Interval,
    *,
    seller: Home | None,
    buyer: Home | None,
    kwh: str,
    sequence: int,
    price: str = "0.2000",
    minute: int = 0,
    buyer_flexible: bool = False,
) -> Trade:
    """A provisional trade as the clearing would book it (None = the outside grid)."""
    return Trade.objects.create(
        interval=interval,
        source=TradeSource.BILATERAL if seller and buyer else TradeSource.GRID,
        sequence=sequence,
        seller=seller.membership if seller else None,
        buyer=buyer.membership if buyer else None,
        seller_meter_point=seller.meter_point if seller else None,
        buyer_meter_point=buyer.meter_point if buyer else None,
        quantity_kwh=Decimal(kwh),
        price_per_kwh=Decimal(price),
        seller_price_per_kwh=Decimal(price),
        orders_submitted_at=interval.gate_closure_at - timedelta(minutes=60 - minute),
        buyer_flexible=buyer_flexible,
    )
