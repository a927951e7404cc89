"""Pipeline benchmark: one interval from orders to confirmed, and 20 communities on 1 vs 2 workers.

Usage: ``python bench/bench_pipeline.py [--prosumers 100 1000 10000] [--no-scaling]
[--no-write]``. Runs on a scratch database of its own (SQLite under PEERGRID_VAR_DIR, or
``<name>_bench_pipeline`` on PostgreSQL when DATABASE_URL is set) and replaces the
"## Pipeline — <backend>" section of bench/RESULTS.md.

Part 1, per network and community size: every prosumer posts one order through
``posting_create`` (up to 1,000 posts are timed one by one; above that the first 1,000 are timed
and the rest are bulk-inserted, and the orders figure is the measured mean times the count), then
the interval goes through the pipeline's own steps (``interval_advance``): gate closure,
clearing, grid check, confirmation. Seconds per stage are the steps' own timings (lock, work and
state change in one transaction each); "pipeline" is gate closure to confirmed.

Part 2: 20 communities of 200 prosumers each, one interval each, queued by ``pipeline_tick``
onto real Celery worker processes (solo pool, one process each): wall time from the tick until
all 20 are confirmed, with one worker process and with two.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
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
    BenchWorker,
    machine,
    progress,
    replace_section,
    scratch_database,
    use_redis_prefix,
)

HEADING = "## Pipeline"
NETWORKS = ("cigre_lv", "1-LV-urban6--0-sw")
T0 = datetime(2026, 6, 21, 10, 0, tzinfo=UTC)  # a sunny midsummer morning
TIMED_POSTS = 1000
STAGES = ("gate_closed", "cleared", "grid_checked", "confirmed")


def build_community(slug: str, prosumers: int, network: str) -> tuple[Any, list[Any]]:
    from accounts.models import Membership, MembershipStatus, MeterPoint, User
    from grid.services import grid_model_use_reference
    from marketplace.services.communities import community_create

    community = community_create(name=f"Bench {slug}", slug=slug, opening_horizon_hours=1)
    buses = grid_model_use_reference(community=community, name=network).connection_buses
    users = User.objects.bulk_create(
        [User(email=f"{slug}-{i}@pipeline.bench") for i in range(prosumers)], batch_size=1000
    )
    memberships = Membership.objects.bulk_create(
        [
            Membership(user=u, community=community, status=MembershipStatus.APPROVED,
                       pseudonym=f"{slug}-{i:05d}")
            for i, u in enumerate(users)
        ],
        batch_size=1000,
    )  # fmt: skip
    meters = MeterPoint.objects.bulk_create(
        [
            MeterPoint(membership=m, status="approved", label="home",
                       import_capacity_kw=Decimal("30"),
                       export_capacity_kw=Decimal("30"), pv_kwp=Decimal("6"),
                       bus=buses[i % len(buses)])
            for i, m in enumerate(memberships)
        ],
        batch_size=1000,
    )  # fmt: skip
    return community, list(zip(memberships, meters, strict=True))


def make_interval(community: Any, start: datetime) -> Any:
    from marketplace.models import Interval

    rules = community.rules.latest()
    return Interval.objects.create(
        community=community, rules=rules, start=start, end=start + timedelta(minutes=15),
        gate_closure_at=start - timedelta(minutes=rules.gate_closure_lead_minutes),
    )  # fmt: skip


# The reference feeders carry about a thousand homes' exchange; a bigger community on them shares
# that exchange (flats behind one connection each), so the grid check sees a physical schedule.
FEEDER_HOMES = 1000


def order_book(n: int, rng: random.Random) -> list[tuple[str, Decimal, Decimal]]:
    """Household-sized orders: 45 % PV surplus offers, 55 % requests, 0.05-1.5 kWh a quarter;
    above ``FEEDER_HOMES`` prosumers each order is that share of a household's."""
    book = []
    share = min(1.0, FEEDER_HOMES / max(n, 1))
    for _ in range(n):
        quantity = max(Decimal(round(rng.randint(50, 1500) * share)), Decimal(1)).scaleb(-3)
        if rng.random() < 0.45:
            book.append(("sell", quantity, Decimal(rng.randint(800, 2400)).scaleb(-4)))
        else:
            book.append(("buy", quantity, Decimal(rng.randint(1400, 3200)).scaleb(-4)))
    return book


def post_orders(interval: Any, members: list[Any], rng: random.Random, timed: int) -> float:
    """Post one order per prosumer; returns the mean seconds per ``posting_create``."""
    from marketplace.models import Posting
    from marketplace.services.postings import posting_create

    book = order_book(len(members), rng)
    now = interval.gate_closure_at - timedelta(minutes=10)
    timed = min(timed, len(members))
    started = time.perf_counter()
    for (membership, meter), (side, quantity, price) in zip(members[:timed], book, strict=False):
        posting_create(
            membership=membership, meter_point=meter, interval=interval, side=side,
            quantity_kwh=quantity, limit_price_per_kwh=price, now=now,
        )  # fmt: skip
    per_post = (time.perf_counter() - started) / max(timed, 1)
    rest = [
        Posting(
            interval=interval, membership=membership, meter_point=meter, side=side,
            quantity_kwh=quantity, limit_price_per_kwh=price,
            submitted_at=now + timedelta(microseconds=i),
        )
        for i, ((membership, meter), (side, quantity, price)) in enumerate(
            zip(members[timed:], book[timed:], strict=True)
        )
    ]  # fmt: skip
    Posting.objects.bulk_create(rest, batch_size=2000)
    return per_post


def run_one(network: str, prosumers: int) -> dict[str, Any]:
    from grid.models import GridCheckResult
    from marketplace.models import Interval, Trade
    from marketplace.services.pipeline import interval_advance

    rng = random.Random(prosumers)
    community, members = build_community(f"one-{network}-{prosumers}".lower(), prosumers, network)
    # A worker parses a community's network once and keeps it: warm that cache with a first
    # interval of ten orders, so the figures are the steady state, not the one-off parse.
    warm = make_interval(community, T0 - timedelta(hours=1))
    post_orders(warm, members[:10], rng, timed=0)
    parse_started = time.perf_counter()
    for stage in STAGES:
        assert interval_advance(interval_id=warm.pk, to_state=stage, now=warm.gate_closure_at)
    first_interval_s = time.perf_counter() - parse_started
    interval = make_interval(community, T0)
    per_post = post_orders(interval, members, rng, TIMED_POSTS)
    at = interval.gate_closure_at
    # With the commits, which the steps' own timings (inside their transactions) leave out.
    wall_started, cpu_started = time.perf_counter(), time.process_time()
    for stage in STAGES:
        assert interval_advance(interval_id=interval.pk, to_state=stage, now=at), stage
    wall_s, cpu_s = time.perf_counter() - wall_started, time.process_time() - cpu_started
    interval = Interval.objects.get(pk=interval.pk)
    result = GridCheckResult.objects.get(interval=interval)
    seconds = {stage: interval.timings[stage]["seconds"] for stage in STAGES}
    return {
        "network": network,
        "prosumers": prosumers,
        "orders_s": per_post * prosumers,
        "post_ms": per_post * 1000,
        **seconds,
        "pipeline_s": sum(seconds.values()),
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "trades": Trade.objects.filter(interval=interval).count(),
        "power_flows": result.power_flows,
        "curtailed_kwh": float(result.curtailed_kwh),
        "scheduled_kwh": float(result.scheduled_kwh),
        "feasible": result.feasible,
        "first_interval_s": first_interval_s,
    }


def run_scaling(database: str, communities: int = 20, prosumers: int = 200) -> dict[int, float]:
    from config.celery import app as celery_app
    from marketplace.models import Community, Interval, IntervalState
    from marketplace.services.pipeline import pipeline_tick

    rng = random.Random(7)
    built = [build_community(f"scale-{i:02d}", prosumers, "cigre_lv") for i in range(communities)]
    queue = f"peergrid-bench-{uuid.uuid4().hex[:8]}"
    celery_app.conf.task_default_queue = queue
    timings: dict[int, float] = {}
    for round_number, workers in enumerate((1, 2)):
        intervals = []
        now = datetime.now(UTC)
        for community, members in built:
            # Starting well ahead, so the steps run up to confirmed and settlement is not due;
            # the gate is moved to the past after the orders are in, so the tick finds it due.
            interval = make_interval(community, now + timedelta(hours=round_number + 3))
            post_orders(interval, members, rng, timed=0)
            Interval.objects.filter(pk=interval.pk).update(gate_closure_at=now)
            intervals.append(interval.pk)
        started_workers = [
            BenchWorker(queue=queue, database=database, name=f"w{workers}-{i}")
            for i in range(workers)
        ]
        try:
            # Timed from a ready worker; each process still pays its first pandapower import
            # and network parse (about a second) inside the timing.
            for worker in started_workers:
                worker.wait_ready()
            started = time.perf_counter()
            pipeline_tick(now=datetime.now(UTC))
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                done = Interval.objects.filter(
                    pk__in=intervals, state=IntervalState.CONFIRMED
                ).count()
                if done == len(intervals):
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError(f"{workers} worker(s): not all intervals confirmed in time")
            timings[workers] = time.perf_counter() - started
            progress(f"{communities} communities on {workers} worker(s): {timings[workers]:.2f} s")
        finally:
            for worker in started_workers:
                worker.stop()
        # Intervals the tick opened on the real clock would be due in the next round too.
        Interval.objects.filter(community__in=[c for c, _ in built]).exclude(
            pk__in=intervals
        ).filter(state=IntervalState.OPEN).delete()
    assert Community.objects.count() >= communities
    return timings


def write_results(
    backend: str, about: str, rows: list[dict[str, Any]], scaling: dict[int, float]
) -> None:
    lines = [
        f"{HEADING} — {backend}",
        "",
        f"Machine: {about}; {backend}. Script: `bench/bench_pipeline.py`.",
        "",
        "One interval of one community (composite market, uniform price), every prosumer one "
        "household-sized order (0.05-1.5 kWh, 45 % offers; above 1,000 prosumers each order "
        "is 1,000/N of that, so the feeder carries the exchange of a thousand homes, shared). "
        "*orders* = one `posting_create` per "
        "prosumer (above 1,000: the measured mean of the first 1,000 times the count); the "
        "stage columns are each pipeline step's own transaction (`Interval.timings`); "
        "*pipeline* = gate closure to confirmed, the sum of the steps; *with commits* = the "
        "same measured around the four steps, commits included, and this process's CPU time "
        "beside it (the database server's CPU per stage: `bench/profile_pipeline.py`).",
        "",
        "*first interval* is the same community's first interval of 10 orders, run just before: "
        "it includes the one-off parse of the stored network, which each worker process then "
        "keeps in its cache.",
        "",
        "| network | prosumers | orders s (ms each) | gate s | clear s | grid check s | "
        "confirm s | pipeline s | with commits: wall s / CPU s | trades | power flows | "
        "curtailed / scheduled kWh | first interval s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['network']} | {r['prosumers']:,} | {r['orders_s']:.2f} ({r['post_ms']:.1f}) "
            f"| {r['gate_closed']:.3f} | {r['cleared']:.3f} | {r['grid_checked']:.3f} "
            f"| {r['confirmed']:.3f} | **{r['pipeline_s']:.2f}** "
            f"| {r['wall_s']:.2f} / {r['cpu_s']:.2f} | {r['trades']:,} "
            f"| {r['power_flows']} | {r['curtailed_kwh']:,.1f} / {r['scheduled_kwh']:,.1f} "
            f"| {r['first_interval_s']:.2f} |"
        )
    if scaling:
        speedup = scaling[1] / scaling[2] if scaling.get(2) else float("nan")
        lines += [
            "",
            "20 communities x 200 prosumers on CIGRE LV, one interval each, queued by one "
            "`pipeline_tick` as one task per (interval, step), on real worker processes (solo "
            "pool); wall time from the tick until all 20 are confirmed:",
            "",
            "| worker processes | seconds | speed-up |",
            "| ---: | ---: | ---: |",
            f"| 1 | {scaling[1]:.2f} | 1.00 |",
            f"| 2 | {scaling[2]:.2f} | {speedup:.2f} |",
        ]
    section = "\n".join(lines) + "\n"
    heading = f"{HEADING} — {backend}"
    replace_section(heading, section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prosumers", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    use_redis_prefix("pipeline")
    django.setup()
    import logging

    logging.getLogger("marketplace").setLevel(logging.WARNING)
    about = machine()
    with scratch_database("pipeline") as (backend, database):
        progress(f"{backend} database {database}")
        rows = []
        for network in NETWORKS:
            for prosumers in args.prosumers:
                row = run_one(network, prosumers)
                progress(
                    f"{network} {prosumers}: orders {row['orders_s']:.2f} s, pipeline "
                    f"{row['pipeline_s']:.2f} s "
                    f"({', '.join(f'{s} {row[s]:.3f}' for s in STAGES)}), "
                    f"{row['power_flows']} power flows"
                )
                rows.append(row)
        scaling = {} if args.no_scaling else run_scaling(database)
    if not args.no_write:
        write_results(backend, about, rows, scaling)
        progress(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
