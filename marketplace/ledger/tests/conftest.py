"""Ledger test data: a community with three members, confirmed intervals and direct trades.

Trades are created directly with ``confirmed_kwh`` set (the clearing and grid-check steps have
their own tests); everything else goes through the real services and the market's factories.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from accounts.models import User
from accounts.services import community_manager_add
from marketplace.models import Community, Interval, IntervalState, Trade, TradeSource
from marketplace.tests.factories import T0, CommunityFactory, Member, member, open_interval

AFTER_WINDOW = timedelta(hours=3)


def confirmed_intervals(community: Community) -> list[Interval]:
    """Open the horizon at T0 and mark its intervals confirmed (the pipeline's job elsewhere)."""
    open_interval(community)
    Interval.objects.filter(community=community).update(state=IntervalState.CONFIRMED)
    return list(Interval.objects.select_related("rules").filter(community=community))


def make_trade(
    interval: Interval,
    *,
    buyer: Member | None,
    seller: Member | None,
    kwh: str | Decimal,
    price: str | Decimal,
    seller_price: str | Decimal | None = None,
    confirmed_kwh: str | Decimal | None = None,
) -> Trade:
    source = TradeSource.GRID if buyer is None or seller is None else TradeSource.BILATERAL
    return Trade.objects.create(
        interval=interval,
        source=source,
        sequence=Trade.objects.filter(interval=interval, source=source).count() + 1,
        buyer=buyer.membership if buyer else None,
        seller=seller.membership if seller else None,
        buyer_meter_point=buyer.meter_point if buyer else None,
        seller_meter_point=seller.meter_point if seller else None,
        quantity_kwh=Decimal(kwh),
        price_per_kwh=Decimal(price),
        seller_price_per_kwh=Decimal(seller_price if seller_price is not None else price),
        orders_submitted_at=T0,
        confirmed_kwh=Decimal(confirmed_kwh if confirmed_kwh is not None else kwh),
    )


def reading(who: Member, imported: str, exported: str) -> dict[str, object]:
    return {"meter_point": who.meter_point.pk, "imported_kwh": imported, "exported_kwh": exported}


def meter_operator(who: Member) -> User:
    """The metering source of the member's community (its manager): readings come from it, never
    from the member they bill."""
    community = who.membership.community
    user, created = User.objects.get_or_create(email=f"meter-data@{community.slug}.test")
    if created:
        community_manager_add(user=user, community=community, added_by=None)
    return user


def after_end(interval: Interval, minutes: int = 1) -> datetime:
    return interval.end + timedelta(minutes=minutes)


@pytest.fixture
def community(db: None) -> Community:
    return CommunityFactory()  # type: ignore[return-value]


@pytest.fixture
def intervals(community: Community) -> list[Interval]:
    return confirmed_intervals(community)


@pytest.fixture
def interval(intervals: list[Interval]) -> Interval:
    return intervals[0]


def member_before(community: Community) -> Member:
    """A member whose meter point was registered before the test intervals (T0)."""
    with time_machine.travel(T0 - timedelta(days=1), tick=False):
        return member(community)


@pytest.fixture
def alice(community: Community) -> Member:
    return member_before(community)


@pytest.fixture
def bob(community: Community) -> Member:
    return member_before(community)


@pytest.fixture
def carol(community: Community) -> Member:
    return member_before(community)


@pytest.fixture
def manager(community: Community) -> User:
    user = User.objects.create_user("manager@ledger.test", "pw")
    community_manager_add(user=user, community=community, added_by=None)
    return user
