"""Writing 5,000 curtailments back onto their trades: one UPDATE ... FROM (VALUES ...) statement
against Django's ``bulk_update`` (a CASE per row, in batches), in the same run.

Usage: ``python bench/bench_curtailment_write.py [--trades 5000] [--repeats 5] [--no-write]``.
Runs on a scratch database of its own (SQLite under PEERGRID_VAR_DIR, or
``<name>_bench_curtailment`` on PostgreSQL when DATABASE_URL is set) and replaces the
"## Curtailment write-back — <backend>" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

from bench.common import (  # noqa: E402
    RESULTS,
    load_now,
    machine,
    progress,
    replace_section,
    scratch_database,
)

HEADING = "## Curtailment write-back"
T0 = datetime(2026, 6, 21, 10, 0, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    django.setup()
    with scratch_database("curtailment") as (backend, database):
        progress(f"{backend} database {database}; {args.trades:,} trades")
        run(args, backend)


def run(args: argparse.Namespace, backend: str) -> None:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from accounts.models import Membership, MembershipStatus, User
    from marketplace.models import Interval, Trade, TradeSource
    from marketplace.services.communities import community_create
    from marketplace.services.grid_check import trades_update_curtailments

    load = load_now()
    community = community_create(name="Bench curtailment", slug="bench-curtailment")
    user = User.objects.create(email="seller@curtailment.bench")
    seller = Membership.objects.create(
        user=user, community=community, status=MembershipStatus.APPROVED, pseudonym="seller"
    )
    rules = community.rules.latest()
    interval = Interval.objects.create(
        community=community, rules=rules, start=T0, end=T0 + timedelta(minutes=15),
        gate_closure_at=T0 - timedelta(minutes=5),
    )  # fmt: skip
    trades = Trade.objects.bulk_create(
        [
            Trade(interval=interval, source=TradeSource.GRID, sequence=i, seller=seller,
                  quantity_kwh=Decimal("1.000"), price_per_kwh=Decimal("0.1"),
                  seller_price_per_kwh=Decimal("0.1"), orders_submitted_at=T0)
            for i in range(1, args.trades + 1)
        ],
        batch_size=2000,
    )  # fmt: skip
    reason = "overvoltage at bus 19: 1.112 p.u. > 1.100; sensitivity 0.000399 p.u./kW"
    results: dict[str, list[float]] = {"one UPDATE ... FROM (VALUES ...)": [], "bulk_update": []}
    statements: dict[str, int] = {}
    for repeat in range(args.repeats):
        amount = Decimal(f"0.{repeat + 1:03d}")
        values = [(t.pk, amount, reason) for t in trades]
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            trades_update_curtailments(values)
            results["one UPDATE ... FROM (VALUES ...)"].append(time.perf_counter() - started)
        statements["one UPDATE ... FROM (VALUES ...)"] = len(queries)
        for t in trades:
            t.curtailed_kwh = amount + Decimal("0.001")
            t.curtailment_reason = reason
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            Trade.objects.bulk_update(
                trades, ["curtailed_kwh", "curtailment_reason"], batch_size=500
            )
            results["bulk_update"].append(time.perf_counter() - started)
        statements["bulk_update"] = len(queries)
        progress(
            f"  repeat {repeat + 1}: "
            + ", ".join(f"{k} {v[-1] * 1000:.0f} ms" for k, v in results.items())
        )
    written = Trade.objects.filter(interval=interval, curtailed_kwh=amount + Decimal("0.001"))
    assert written.count() == args.trades
    if args.no_write:
        return
    base = statistics.median(results["bulk_update"])
    lines = [
        f"{HEADING} — {backend}",
        "",
        f"`python bench/bench_curtailment_write.py` on {backend}; {machine()}; load when it "
        f"started: {load}.",
        "",
        f"{args.trades:,} trades get their curtailed energy and reason, median of "
        f"{args.repeats} runs, each in its own transaction; `bulk_update` (batches of 500, as "
        "the grid step used before) is the baseline in the same run.",
        "",
        "| write | statements | median ms | vs bulk_update |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, samples in results.items():
        median = statistics.median(samples)
        lines.append(
            f"| {label} | {statements[label]} | {median * 1000:.0f} | {median / base:.2f}x |"
        )
    lines.append("")
    replace_section(f"{HEADING} — {backend}", "\n".join(lines))
    progress(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
