"""Bulk seeding of a year of quarter-hour market data, for the dashboards' test and benchmark.

Plain rows through ``bulk_create`` and executemany (no services): the point is the size of the
data the dashboards read, and services would take hours to produce it. Deterministic per seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from accounts.models import Membership, MembershipStatus, MeterPoint, User
from grid.models import GridCheckResult
from marketplace.models import Community, Interval, IntervalState, Trade, TradeSource
from marketplace.services.communities import community_create
from marketplace.services.rules import current_rules

BATCH = 2000
OVERLOAD = {"kind": "line_overload", "element": "line 1", "caused_by_trades": True}


@dataclass(frozen=True, slots=True)
class SeedSize:
    intervals: int
    members: int
    trades: int
    grid_checks: int


def seed_year(
    *,
    slug: str,
    start: datetime,
    members: int,
    trades_per_interval: int,
    intervals: int = 365 * 96,
    seed: int = 7,
) -> tuple[Community, SeedSize]:
    """A community with ``members`` members and ``intervals`` settled-looking quarter-hours."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible on purpose
    community = community_create(name=f"Seeded {slug}", slug=slug, timezone="Europe/Berlin")
    rules = current_rules(community)
    users = User.objects.bulk_create(
        [User(email=f"{slug}-{i}@seed.test") for i in range(members)], batch_size=BATCH
    )
    memberships = Membership.objects.bulk_create(
        [
            Membership(user=u, community=community, status=MembershipStatus.APPROVED,
                       pseudonym=f"{slug}-{i:04d}")
            for i, u in enumerate(users)
        ],
        batch_size=BATCH,
    )  # fmt: skip
    pv_sizes = (Decimal(0), Decimal(3), Decimal(7), Decimal(12))
    MeterPoint.objects.bulk_create(
        [
            MeterPoint(membership=m, status="approved", label="home",
                       import_capacity_kw=Decimal(20),
                       export_capacity_kw=Decimal(20), pv_kwp=pv_sizes[i % 4], bus=1)
            for i, m in enumerate(memberships)
        ],
        batch_size=BATCH,
    )  # fmt: skip
    quarter = timedelta(minutes=15)
    gate_lead = timedelta(minutes=5)
    rows = Interval.objects.bulk_create(
        [
            Interval(community=community, rules=rules, start=start + i * quarter,
                     end=start + (i + 1) * quarter, gate_closure_at=start + i * quarter - gate_lead,
                     state=IntervalState.CONFIRMED)
            for i in range(intervals)
        ],
        batch_size=BATCH,
    )  # fmt: skip
    member_ids = [m.pk for m in memberships]
    sellers = member_ids[3::4] or member_ids  # the households with the largest PV sell
    ops = connection.ops
    now = ops.adapt_datetimefield_value(timezone.now())
    retail = ops.adapt_decimalfield_value(rules.retail_tariff, 10, 4)
    trades: list[tuple[Any, ...]] = []
    checks: list[tuple[Any, ...]] = []
    # Plain INSERTs with executemany: model instances cost more than the rows they hold here.
    for interval in rows:
        submitted = ops.adapt_datetimefield_value(interval.start - quarter)
        for sequence in range(trades_per_interval):
            kwh = f"{rng.randint(50, 2000) / 1000:.3f}"
            price = f"{rng.randint(900, 2800) / 10000:.4f}"
            source = TradeSource.POOL if sequence % 3 else TradeSource.BILATERAL
            buyer, seller = rng.choice(member_ids), rng.choice(sellers)
            trades.append((interval.pk, source.value, sequence + 1, buyer, seller,
                           kwh, price, price, submitted, now, kwh))  # fmt: skip
        trades.append((interval.pk, TradeSource.GRID.value, 1, rng.choice(member_ids), None,
                       "0.500", retail, retail, submitted, now, "0.500"))  # fmt: skip
        violated = rng.random() < 0.02
        checks.append(
            (
                interval.pk,
                now,
                True,
                2 if violated else 1,
                0.93 + rng.random() * 0.04,
                1.0 + rng.random() * 0.05,
                rng.random() * 110,
                rng.random() * 90,
                rng.random() * 3,
                json.dumps([OVERLOAD] if violated else []),
                "[]",
                trades_per_interval + 1,
                "0.000",
                "0.100" if violated else "0.000",
                "{}",
                "{}",
                0.01,
            )
        )
    # Table names come from the models, values go as parameters.
    trade_sql = (
        f"INSERT INTO {Trade._meta.db_table} (interval_id, source, sequence, buyer_id, "  # noqa: S608
        "seller_id, "
        "quantity_kwh, price_per_kwh, seller_price_per_kwh, orders_submitted_at, created_at, "
        "confirmed_kwh, curtailed_kwh, curtailment_reason) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '0', '')"
    )
    check_sql = (
        f"INSERT INTO {GridCheckResult._meta.db_table} (interval_id, checked_at, "  # noqa: S608
        "feasible, "
        "power_flows, min_vm_pu, max_vm_pu, max_line_loading_percent, max_trafo_loading_percent, "
        "losses_kw, violations, curtailments, trades_checked, scheduled_kwh, curtailed_kwh, "
        "bus_vm_pu, line_loading_percent, duration_s) VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    with connection.cursor() as cursor:
        for i in range(0, len(trades), BATCH * 5):
            cursor.executemany(trade_sql, trades[i : i + BATCH * 5])
        for i in range(0, len(checks), BATCH * 5):
            cursor.executemany(check_sql, checks[i : i + BATCH * 5])
    count = len(trades)
    return community, SeedSize(len(rows), members, count, len(checks))
