"""Hand-built market data for the oversight tests: members, intervals, trades and grid checks.

Members come through the real services (factories); trades, grid results and failures are plain
rows, because the figures under test are reads and each number below is worked out by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from accounts.models import Membership, User
from grid.models import GridCheckResult
from marketplace.ledger.models import LedgerVerification
from marketplace.models import Community, Interval, IntervalState, Trade, TradeSource
from marketplace.oversight.selectors import Scope
from marketplace.services.rules import current_rules
from marketplace.tests.factories import member, new_community

DAY = date(2026, 3, 2)
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@dataclass
class Market:
    community: Community
    other: Community
    a: Membership  # no PV, buys
    b: Membership  # 3 kWp, buys
    c: Membership  # 12 kWp, sells
    e: Membership  # no PV, never trades
    intervals: list[Interval]

    def scope(self, community: Community | None = None) -> Scope:
        return Scope(community or self.community, DAY, DAY, ZoneInfo("Europe/Berlin"))


def _interval(community: Community, start: datetime, **fields: object) -> Interval:
    return Interval.objects.create(
        community=community,
        rules=current_rules(community),
        start=start,
        end=start + timedelta(minutes=15),
        gate_closure_at=start - timedelta(minutes=5),
        **fields,
    )


def _trade(interval: Interval, seq: int, source: str, qty: str, price: str, **kw: object) -> Trade:
    return Trade.objects.create(
        interval=interval,
        source=source,
        sequence=seq,
        quantity_kwh=Decimal(qty),
        price_per_kwh=Decimal(price),
        seller_price_per_kwh=Decimal(price),
        orders_submitted_at=interval.start - timedelta(minutes=30),
        **kw,
    )


def build_market() -> Market:
    """Retail 0.32, feed-in 0.08 (the defaults); worked figures are in the tests."""
    community = new_community(name="Sonnenfeld", slug="sonnenfeld")
    other = new_community(name="Windhof", slug="windhof")
    people = {}
    for name, pv in (("a", "0"), ("b", "3"), ("c", "12"), ("e", "0")):
        m = member(community)
        m.meter_point.pv_kwp = Decimal(pv)
        m.meter_point.save(update_fields=["pv_kwp"])
        people[name] = m
    a, b, c = (people[n] for n in "abc")
    first = _interval(community, START, state=IntervalState.CONFIRMED)
    second = _interval(
        community,
        START + timedelta(minutes=15),
        state=IntervalState.CLEARED,
        last_error="grid_checked: RuntimeError: power flow did not converge",
        failed_attempts=2,
    )
    third = _interval(
        community,
        START + timedelta(minutes=30),
        state=IntervalState.CONFIRMED,
        timings={"failures": [{"step": "cleared", "error": "x"}]},
    )
    ids = {"buyer": a.membership, "buyer_meter_point": a.meter_point}
    _trade(first, 1, TradeSource.BILATERAL, "2", "0.20", **ids, seller=c.membership,
           seller_meter_point=c.meter_point, curtailed_kwh=Decimal("0.5"),
           curtailment_reason="line 3 over 100 %")  # fmt: skip
    _trade(first, 1, TradeSource.POOL, "1", "0.18", buyer=b.membership,
           buyer_meter_point=b.meter_point, seller=c.membership,
           seller_meter_point=c.meter_point)  # fmt: skip
    _trade(first, 1, TradeSource.GRID, "1", "0.32", **ids)
    _trade(first, 2, TradeSource.GRID, "3", "0.08", seller=c.membership,
           seller_meter_point=c.meter_point)  # fmt: skip
    GridCheckResult.objects.create(
        interval=first,
        feasible=True,
        power_flows=2,
        min_vm_pu=0.95,
        max_vm_pu=1.04,
        max_line_loading_percent=80.0,
        max_trafo_loading_percent=60.0,
        losses_kw=2.0,
        violations=[
            {"kind": "line_overload", "element": "line 3", "caused_by_trades": True},
            {"kind": "voltage_low", "element": "bus 7", "caused_by_trades": False},
        ],
        curtailed_kwh=Decimal("0.5"),
        duration_s=0.1,
    )
    GridCheckResult.objects.create(
        interval=third, feasible=True, power_flows=1, min_vm_pu=0.97, max_vm_pu=1.02,
        max_line_loading_percent=40.0, losses_kw=1.0, duration_s=0.1,
    )  # fmt: skip
    LedgerVerification.objects.create(ok=True, entries_checked=42)
    return Market(community, other, a.membership, b.membership, c.membership,
                  people["e"].membership, [first, second, third])  # fmt: skip


@pytest.fixture
def market(db: None) -> Market:
    return build_market()


@pytest.fixture
def regulator(db: None) -> User:
    return User.objects.create_user("regulator@oversight.test", "pw", is_regulator=True)
