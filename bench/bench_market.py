"""Market benchmark (Django side): post orders for 1,000 prosumers and time interval_clear.

Usage: ``python bench/bench_market.py [--orders 1000 10000] [--no-write]``. Runs on a scratch
database of its own (SQLite under PEERGRID_VAR_DIR, or ``<name>_bench_market`` on PostgreSQL when
DATABASE_URL is set) and replaces the "## Market (Django side)" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

from bench.common import (  # noqa: E402
    RESULTS,
    machine,
    progress,
    replace_section,
    scratch_database,
    use_redis_prefix,
)

PROSUMERS = 1000
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HEADING = "## Market (Django side)"


def build_members(community: Any) -> list[Any]:
    from accounts.models import Membership, MembershipStatus, MeterPoint, User

    users = User.objects.bulk_create(
        [User(email=f"{community.slug}-{i}@market.bench") for i in range(PROSUMERS)], batch_size=500
    )
    memberships = Membership.objects.bulk_create(
        [
            Membership(user=u, community=community, status=MembershipStatus.APPROVED,
                       pseudonym=f"bench-{i:04d}")
            for i, u in enumerate(users)
        ],
        batch_size=500,
    )  # fmt: skip
    meters = MeterPoint.objects.bulk_create(
        [
            MeterPoint(membership=m, status="approved", label="home",
                       import_capacity_kw=Decimal("400"),
                       export_capacity_kw=Decimal("400"))
            for m in memberships
        ],
        batch_size=500,
    )  # fmt: skip
    return list(zip(memberships, meters, strict=True))


def run(orders: int, structure: str, rng: random.Random) -> dict[str, float]:
    from django.db import transaction

    from marketplace.models import Interval, IntervalState, Posting
    from marketplace.services.clearing import interval_clear
    from marketplace.services.communities import community_create
    from marketplace.services.intervals import intervals_open_horizon
    from marketplace.services.postings import posting_create

    community = community_create(
        name=f"Bench {structure} {orders}", slug=f"bench-{structure}-{orders}",
        market_structure=structure, opening_horizon_hours=2,
    )  # fmt: skip
    intervals_open_horizon(community=community, now=T0)
    interval = Interval.objects.select_related("rules").filter(community=community).first()
    assert interval is not None
    members = build_members_cached(community)
    # Through the service for a sample, to time one order post end to end.
    sample = min(200, orders)
    started = time.perf_counter()
    for i in range(sample):
        membership, meter = members[i % PROSUMERS]
        posting_create(
            membership=membership, meter_point=meter, interval=interval,
            side="sell" if i % 2 else "buy", quantity_kwh=Decimal("1.5"),
            limit_price_per_kwh=Decimal("0.2"), now=T0,
        )  # fmt: skip
    per_post_ms = (time.perf_counter() - started) / sample * 1000
    # The rest in bulk: the benchmark is about clearing, not about posting one by one.
    rest = [
        Posting(
            interval=interval, membership=members[i % PROSUMERS][0],
            meter_point=members[i % PROSUMERS][1], side=rng.choice(("buy", "sell")),
            quantity_kwh=Decimal(rng.randint(100, 5000)) / 1000,
            limit_price_per_kwh=Decimal(rng.randint(500, 4500)) / 10000,
            submitted_at=T0 + timedelta(microseconds=i),
        )
        for i in range(sample, orders)
    ]  # fmt: skip
    Posting.objects.bulk_create(rest, batch_size=2000)
    Interval.objects.filter(pk=interval.pk).update(state=IntervalState.GATE_CLOSED)
    started = time.perf_counter()
    with transaction.atomic():
        summary = interval_clear(interval=interval, now=T0 + timedelta(minutes=11))
    wall = time.perf_counter() - started
    return {
        "post_ms": per_post_ms,
        "clear_s": wall,
        "trades": summary.pool_trades + summary.grid_trades + summary.bilateral_trades,
        "peer_kwh": float(summary.peer_kwh),
    }


_MEMBERS: dict[int, list[Any]] = {}


def build_members_cached(community: Any) -> list[Any]:
    # One set of 1,000 prosumers per community.
    if community.pk not in _MEMBERS:
        _MEMBERS[community.pk] = build_members(community)
    return _MEMBERS[community.pk]


def write_results(backend: str, about: str, rows: list[tuple[int, str, dict[str, float]]]) -> None:
    lines = [
        HEADING,
        "",
        f"Machine: {about}; {backend}.",
        "",
        f"{PROSUMERS} prosumers; orders random (0.1 to 5 kWh, 0.05 to 0.45 per kWh). "
        "`interval_clear` time is load + lock orders, clear, save trades (bulk) and update "
        "postings, in one transaction. `posting_create` is the mean of 200 calls through "
        "the service.",
        "",
        "| backend | structure | orders | trades saved | peer kWh | interval_clear s | "
        "posting_create ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for orders, structure, r in rows:
        lines.append(
            f"| {backend} | {structure} | {orders:,} | {int(r['trades']):,} | "
            f"{r['peer_kwh']:,.1f} | {r['clear_s']:.3f} | {r['post_ms']:.1f} |"
        )
    section = "\n".join(lines) + "\n"
    heading = f"{HEADING} — {backend}"
    section = section.replace(HEADING, heading, 1)
    replace_section(heading, section)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    use_redis_prefix("market")
    django.setup()
    rng = random.Random(4)
    rows = []
    about = machine()
    with scratch_database("market") as (backend, _):
        progress(f"scratch {backend} database ready")
        for orders in args.orders:
            for structure in ("pool", "composite"):
                progress(f"{structure}: {orders} orders from {PROSUMERS} prosumers ...")
                result = run(orders, structure, rng)
                rows.append((orders, structure, result))
                progress(
                    f"  interval_clear {result['clear_s']:.3f} s, {int(result['trades'])} "
                    f"trades; posting_create {result['post_ms']:.1f} ms"
                )
    if not args.no_write:
        write_results(backend, about, rows)
        progress(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
