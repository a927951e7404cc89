"""Scale benchmark: up to a thousand communities on PostgreSQL, Redis and Celery workers.

Usage: ``python bench/bench_scale.py [--communities 10 100 1000] [--members 50]
[--workers 1 2 4] [--month-communities 100] [--month-days 30] [--parts tick workers month]
[--no-write]``. Needs DATABASE_URL (PostgreSQL) and REDIS_URL and skips with one line without
them; works in a scratch database of its own and under a Redis key prefix of its own, both
removed at the end. Replaces the "## Scale" section of bench/RESULTS.md.

*tick*: communities of ``--members`` members with meter points are built up to each size, each
with its rolling horizon open (24 h of 15-minute intervals) and a day of settled history. At each
size beat's tick (``pipeline_tick``, dispatch replaced by a no-op) is timed, best of 5, with its
query count: a tick with ten steps due, and the first tick after an interval boundary, when every
community is due to open its next interval. The baseline, measured in the same run, is what the
tick did before: open every community's horizon on every tick. At the largest size the two
queries' plans (``EXPLAIN ANALYZE``) are printed into the results, and the tick is timed again
with 10, 100 and 1,000 steps due (one per community): the work it should grow with.

*workers*: one interval per community with one order per member, every gate closing at the same
moment; K worker processes (solo pool), each consuming its own queue shard
(``PEERGRID_QUEUE_SHARDS=K``, as K machines would; shard 0's also the default queue, where the
notifications go), from the dispatch until every interval is confirmed. The lag per interval is
its confirmation moment minus its gate closure.

``--lock PATH`` takes the machine's benchmark lock for each size of the tick and each worker
round on its own, so a long run shares the machine in turns.

*month*: ``--month-communities`` communities, ``--month-days`` of 15-minute intervals with two
matching orders in every interval, replayed through ``advance_intervals`` (gate closure, clearing,
grid check, confirmation, settlement after the settlement window) in ``--month-processes``
processes, each replaying one ``--shard`` of the communities, with progress every 15 s; then
every interval must be settled and ``ledger_verify`` must pass. ``--month-members`` gives the
replay small communities of its own.

The communities have no grid model, so the grid step records "no grid model" without a power
flow: this benchmark measures the platform's own work (tick, queues, locks, clearing,
settlement); `bench_pipeline.py` and `bench_grid_check.py` time the power flow.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
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

from bench.common import (  # noqa: E402
    RESULTS,
    RUN_ID,
    BenchWorker,
    bench_lock,
    load_now,
    machine,
    progress,
    replace_section,
    scratch_database,
    skip_unless,
    use_redis_prefix,
)

HEADING = "## Scale"
MONTH_HEADING = "## Scale: history replayed"
TICK_HEADING = "### Beat's tick"
WORKERS_HEADING = "### Worker processes"


def _kept_subsection(heading: str) -> str:
    """The ``heading`` subsection of the Scale section as RESULTS.md has it now, or ''."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    found = re.search(
        rf"^{re.escape(heading)}\n.*?(?=^### |^## |\Z)", text, re.MULTILINE | re.DOTALL
    )
    return found.group(0).rstrip("\n") if found else ""


INTERVAL = timedelta(minutes=15)
T0 = datetime(2026, 6, 1, tzinfo=UTC)  # the tick part's clock (an interval boundary)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
# BENCH_MONTH_PROFILE=path: each replaying process writes a cProfile to path.<k>.
PROFILE = os.environ.get("BENCH_MONTH_PROFILE", "")


# --- Building communities ------------------------------------------------------------------------
def build_communities(first: int, count: int, members: int) -> list[Any]:
    """``count`` communities of ``members`` approved members with an approved meter point
    each: the communities one by one (each opens its market rules), their users, memberships
    and meter points in one bulk insert per table for all of them (1,000 x 50 = 50,000 rows
    each)."""
    from accounts.models import Membership, MembershipStatus, MeterPoint, User
    from marketplace.services.communities import community_create

    communities = [
        community_create(name=f"Scale {number:04d}", slug=f"scale-{number:04d}")
        for number in range(first, first + count)
    ]
    users = User.objects.bulk_create(
        [User(email=f"{c.slug}-{i}@scale.bench") for c in communities for i in range(members)],
        batch_size=5000,
    )
    memberships = Membership.objects.bulk_create(
        [
            Membership(user=users[n * members + i], community=c,
                       status=MembershipStatus.APPROVED, pseudonym=f"{c.slug}-{i:03d}")
            for n, c in enumerate(communities)
            for i in range(members)
        ],
        batch_size=5000,
    )  # fmt: skip
    MeterPoint.objects.bulk_create(
        [
            MeterPoint(membership=m, status="approved", label="home",
                       import_capacity_kw=Decimal("30"), export_capacity_kw=Decimal("30"))
            for m in memberships
        ],
        batch_size=5000,
    )  # fmt: skip
    return communities


def settled_history(communities: list[Any], day_start: datetime) -> None:
    """A day of settled intervals per community before ``day_start``: rows the tick must skip."""
    from marketplace.models import Interval, IntervalState

    rows = []
    for community in communities:
        rules = community.rules.latest()
        for i in range(96):
            start = day_start - INTERVAL * (96 - i)
            rows.append(
                Interval(
                    community=community, rules=rules, start=start, end=start + INTERVAL,
                    gate_closure_at=start - timedelta(minutes=5), state=IntervalState.SETTLED,
                    state_changed_at=start + timedelta(hours=1),
                )
            )  # fmt: skip
    Interval.objects.bulk_create(rows, batch_size=5000)


# --- Part 1: the tick ----------------------------------------------------------------------------
def timed_tick(now: datetime, *, old: bool = False, repeats: int = 5) -> tuple[float, int, int]:
    """Best-of-`repeats` seconds, queries and due steps of one tick at ``now``.

    ``old``: the tick as it was before, opening every community's horizon every time.
    """
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from marketplace.models import Community
    from marketplace.services.intervals import intervals_open_horizon
    from marketplace.services.pipeline import intervals_due, pipeline_tick

    best, queries, due = float("inf"), 0, 0
    for _ in range(repeats):
        # Django keeps the last 9,000 queries; once that log is full a capture counts nothing.
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            if old:
                for community in Community.objects.all():
                    intervals_open_horizon(community=community, now=now)
                due = len(intervals_due(now=now))
            else:
                due = len(pipeline_tick(now=now, dispatch=lambda step: None))
            best = min(best, time.perf_counter() - started)
        queries = len(captured)
    return best, queries, due


def _plant_due(communities: list[Any]) -> None:
    """One step due per community of ``communities``: its first open interval's gate closed,
    waiting to be cleared."""
    from marketplace.models import Interval, IntervalState

    first_open = [
        Interval.objects.filter(community=c, state=IntervalState.OPEN).order_by("start")[0].pk
        for c in communities
    ]
    Interval.objects.filter(pk__in=first_open).update(state=IntervalState.GATE_CLOSED)


def run_tick(
    sizes: list[int], members: int, lock: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """The tick at each size (one turn at the benchmark lock each), then at the largest size
    with more and more steps due; returns both tables' rows and the query plans."""
    rows: list[dict[str, Any]] = []
    by_due: list[dict[str, Any]] = []
    built: list[Any] = []
    plans = ""
    for size in sizes:
        with bench_lock(lock):
            new = build_communities(len(built), size - len(built), members)
            built += new
            settled_history(new, T0)
            rows.append(_tick_at_size(built, size))
            if size == sizes[-1]:
                plans = _tick_plans()
                by_due = _tick_by_due(built)
    return rows, by_due, plans


def _tick_at_size(built: list[Any], size: int) -> dict[str, Any]:
    from django.db import connection

    from marketplace.models import Community, Interval, IntervalState
    from marketplace.services.pipeline import intervals_open_all

    # Every community's horizon opened afresh at T0, the boundary.
    Interval.objects.exclude(state=IntervalState.SETTLED).delete()
    Community.objects.update(horizon_due_at=None)
    intervals_open_all(now=T0)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    _plant_due(built[:10])
    # The first tick after the boundary: each community opens its next interval. The following
    # ticks of the interval find nothing to open. No gate closes before T0 + 10 min.
    first_s, first_q, first_due = timed_tick(T0 + timedelta(minutes=1), repeats=1)
    # That tick moved every community's next due moment; PostgreSQL's autovacuum would now
    # refresh the statistics the planner reads, as it does after every boundary.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE marketplace_community")
    steady_s, steady_q, steady_due = timed_tick(T0 + timedelta(minutes=1, seconds=15))
    old_s, old_q, _ = timed_tick(T0 + timedelta(minutes=1, seconds=30), old=True, repeats=3)
    intervals = Interval.objects.count()
    row = {
        "communities": size, "intervals": intervals, "due": steady_due,
        "steady_s": steady_s, "steady_q": steady_q, "first_s": first_s, "first_q": first_q,
        "first_due": first_due, "old_s": old_s, "old_q": old_q, "load": load_now(),
    }  # fmt: skip
    progress(
        f"{size} communities, {intervals:,} intervals: tick {steady_s * 1000:.1f} ms "
        f"({steady_q} queries, {steady_due} due); first tick after a boundary "
        f"{first_s * 1000:.0f} ms ({first_q} queries); before: {old_s * 1000:.0f} ms "
        f"({old_q} queries); {row['load']}"
    )
    return row


def _tick_plans() -> str:
    from marketplace.models import Interval
    from marketplace.services.pipeline import communities_horizon_due, due_steps_condition

    now = T0 + timedelta(minutes=1, seconds=15)
    due_plan = (
        Interval.objects.filter(due_steps_condition(now))
        .order_by("start", "pk")
        .only("pk", "community_id", "state", "timings", "failed_attempts")
        .explain(analyze=True)
    )
    open_plan = communities_horizon_due(now).explain(analyze=True)
    return f"Steps due:\n\n{due_plan}\n\nCommunities due to open an interval:\n\n{open_plan}"


def _tick_by_due(built: list[Any]) -> list[dict[str, Any]]:
    """The tick at the largest size with 10, 100, ... steps due (one per community): what it
    should grow with."""
    rows = []
    due_now = 10
    now = T0 + timedelta(minutes=1, seconds=45)
    for wanted in (10, 100, 1000, 10000):
        if wanted > len(built):
            break
        _plant_due(built[due_now:wanted])
        due_now = wanted
        seconds, queries, due = timed_tick(now)
        rows.append({"due": due, "s": seconds, "queries": queries, "load": load_now()})
        progress(f"{len(built)} communities, {due} steps due: tick {seconds * 1000:.1f} ms "
                 f"({queries} queries); {load_now()}")  # fmt: skip
    return rows


# --- Part 2: worker processes --------------------------------------------------------------------
def one_interval_each(communities: list[Any], start: datetime, members: int) -> list[int]:
    """An interval per community starting at ``start``, one household order per member."""
    from accounts.models import MeterPoint
    from marketplace.models import Interval, Posting

    rng = random.Random(start.timestamp())
    intervals = Interval.objects.bulk_create(
        [
            Interval(community=c, rules=c.rules.latest(), start=start, end=start + INTERVAL,
                     gate_closure_at=start - timedelta(minutes=5))
            for c in communities
        ]
    )  # fmt: skip
    meters = MeterPoint.objects.filter(membership__community__in=communities).values_list(
        "pk", "membership_id", "membership__community_id"
    )
    interval_of = {i.community_id: i.pk for i in intervals}
    postings = []
    for n, (meter, membership, community) in enumerate(meters):
        sell = rng.random() < 0.45
        postings.append(
            Posting(
                interval_id=interval_of[community], membership_id=membership, meter_point_id=meter,
                side="sell" if sell else "buy",
                quantity_kwh=Decimal(rng.randint(50, 1500)).scaleb(-3),
                limit_price_per_kwh=Decimal(rng.randint(800, 2400) if sell
                                            else rng.randint(1400, 3200)).scaleb(-4),
                submitted_at=start - timedelta(minutes=30, microseconds=-n),
            )
        )  # fmt: skip
    Posting.objects.bulk_create(postings, batch_size=5000)
    return [i.pk for i in intervals]


def _worker_round(
    database: str, communities: list[Any], members: int, queue: str, count: int,
    round_number: int,
) -> dict[str, Any]:  # fmt: skip
    """``count`` worker processes, one queue shard each (shard 0 also takes the default queue:
    notifications, as README's first machine does), from one dispatch of every community's
    gate closure until every interval is confirmed."""
    from marketplace.models import Interval, IntervalState
    from marketplace.services.pipeline import dispatch_step, intervals_due

    start = datetime.now(UTC).replace(second=0, microsecond=0)
    start += timedelta(days=round_number + 1)
    pks = one_interval_each(communities, start, members)
    workers = [
        BenchWorker(
            queue=queue, database=database, name=f"scale{count}-{shard}",
            listen=(queue if count == 1 else f"{queue},{queue}.0" if shard == 0
                    else f"{queue}.{shard}"),
            env={"PEERGRID_QUEUE_SHARDS": str(count)},
        )
        for shard in range(count)
    ]  # fmt: skip
    from django.conf import settings

    settings.PEERGRID_QUEUE_SHARDS = count  # the dispatch routes as the workers consume
    try:
        for worker in workers:
            worker.wait_ready()
        load = load_now()
        gate = datetime.now(UTC)
        Interval.objects.filter(pk__in=pks).update(gate_closure_at=gate)
        for step in intervals_due(now=gate):
            dispatch_step(step)
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            left = (
                Interval.objects.filter(pk__in=pks).exclude(state=IntervalState.CONFIRMED).count()
            )
            if not left:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"{count} worker(s): {left} intervals not confirmed in time")
        wall = (datetime.now(UTC) - gate).total_seconds()
    finally:
        for worker in workers:
            worker.stop()
    lags = []
    for timings in Interval.objects.filter(pk__in=pks).values_list("timings", flat=True):
        confirmed = timings["confirmed"]
        at = datetime.fromisoformat(confirmed["at"]) + timedelta(seconds=confirmed["seconds"])
        lags.append((at - gate).total_seconds())
    row = {
        "workers": count, "intervals": len(pks), "wall_s": wall,
        "median_s": statistics.median(lags), "worst_s": max(lags), "load": load,
    }  # fmt: skip
    progress(
        f"{count} worker process(es): {len(pks)} intervals confirmed in {wall:.1f} s; lag "
        f"median {row['median_s']:.1f} s, worst {row['worst_s']:.1f} s ({load})"
    )
    return row


def run_workers(
    database: str, communities: list[Any], members: int, counts: list[int], lock: str | None
) -> list[dict[str, Any]]:
    from config.celery import app as celery_app
    from marketplace.models import Community, Interval, IntervalState

    with bench_lock(lock):
        Interval.objects.exclude(state=IntervalState.SETTLED).delete()  # the tick's horizons
        # Only the intervals below are due: no horizon opens while the workers run.
        Community.objects.update(horizon_due_at=FAR_FUTURE)
    queue = f"peergrid-bench-scale-{uuid.uuid4().hex[:6]}"
    celery_app.conf.task_default_queue = queue
    rows = []
    for round_number, count in enumerate(counts):
        with bench_lock(lock):
            rows.append(_worker_round(database, communities, members, queue, count, round_number))
    return rows


# --- Part 3: a month replayed --------------------------------------------------------------------
def _replay_chunk(
    processes: int, environment: dict[str, str], logs: list[Path], target: datetime,
    ours: Any, count: int, started: float, start: datetime, step: str,
) -> tuple[list[int], float | None]:  # fmt: skip
    """``advance_intervals --now target`` in ``processes`` processes, one shard each, with
    progress every 15 s; returns the shards whose process failed and the CPU seconds of the
    database backends that served them (``_BackendCpu``)."""
    import subprocess

    from django.db.models import Max

    from marketplace.models import IntervalState

    children = []
    backends = _BackendCpu()
    for k in range(processes):
        shard = ["--shard", f"{k}/{processes}"] if processes > 1 else []
        profile = ["-m", "cProfile", "-o", f"{PROFILE}.{k}"] if PROFILE else []
        command = [sys.executable, *profile, "manage.py", "advance_intervals", "--now",
                   target.isoformat(), "--step", step, *shard]  # fmt: skip
        errors = logs[k].with_suffix(".err").open("a")
        children.append(
            subprocess.Popen(
                command, cwd=ROOT, env=environment, stdout=logs[k].open("w"), stderr=errors
            )
        )
    shown = time.perf_counter()
    while any(child.poll() is None for child in children):
        time.sleep(1)
        backends.sample()
        if time.perf_counter() - shown < 15:
            continue
        shown = time.perf_counter()
        settled = ours.filter(state=IntervalState.SETTLED).count()
        clock = ours.exclude(state=IntervalState.OPEN).aggregate(at=Max("start"))["at"]
        seconds = time.perf_counter() - started
        progress(
            f"month: {settled:,} of {count:,} settled after {seconds:.0f} s "
            f"({settled / seconds:.1f}/s); clock at {clock or start:%Y-%m-%d %H:%M}; "
            f"{load_now()}"
        )
    return [k for k, child in enumerate(children) if child.returncode != 0], backends.seconds()


def _chunk_line(
    logs: list[Path], target: datetime, wall: float, before: Any, database_cpu: float | None
) -> str:
    """One line for a chunk, its processes' own reports summed: the pipeline steps done, the
    clock steps, wall and CPU seconds."""
    import resource

    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    text = "".join(log.read_text() for log in logs)
    steps = sum(int(n) for n in re.findall(r"(\d+) pipeline step\(s\) done", text))
    clock = max((int(n) for n in re.findall(r"in (\d+) step\(s\) of the clock", text)), default=0)
    database = "?" if database_cpu is None else f"{database_cpu:.0f}"
    return (
        f"to {target:%Y-%m-%d %H:%M} UTC: {steps:,} pipeline steps in {clock} clock steps, "
        f"{wall:.0f} s wall, {cpu:.0f} s CPU in {len(logs)} process(es) + {database} s in "
        "their database backends"
    )


class _BackendCpu:
    """CPU seconds of the PostgreSQL backends serving the replaying processes: every backend
    of this database but our own, read from /proc once a second (the server runs on this
    machine). A backend starts at 0, so its last reading is its CPU, less at most the last
    second. None if no backend could be read (a server on another machine)."""

    def __init__(self) -> None:
        self.ticks: dict[int, int] = {}
        self.hertz = os.sysconf("SC_CLK_TCK")

    def sample(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            pids = [row[0] for row in cursor.fetchall()]
        for pid in pids:
            try:
                name, rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)
            except OSError:
                continue  # gone since the query, or not on this machine
            if name.endswith("(postgres"):
                # utime and stime, fields 14 and 15 of /proc/<pid>/stat (12 and 13 after it).
                fields = rest.split()
                self.ticks[pid] = int(fields[11]) + int(fields[12])

    def seconds(self) -> float | None:
        return sum(self.ticks.values()) / self.hertz if self.ticks else None


def run_month(
    communities: list[Any], days: float, database: str, processes: int = 1,
    chunk_days: float = 5, budget_s: float | None = None, step: str = "15m",
) -> dict[str, Any]:  # fmt: skip
    import resource

    from django.db.models import Max

    from accounts.models import MeterPoint
    from config.sql import insert_rows
    from marketplace.ledger.services.verification import ledger_verify
    from marketplace.models import Community, Interval, IntervalState, Posting

    # Ends two hours ago, so the last interval's settlement window has passed by now.
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    start = end - timedelta(days=days)
    # No rolling horizon opens in the scratch database: only the history below is replayed.
    Community.objects.update(horizon_due_at=FAR_FUTURE)
    # One COPY each (config.sql.insert_rows): a month is 288,000 intervals and twice as many
    # postings, which bulk_create would take minutes to build.
    before = Interval.objects.aggregate(last=Max("pk"))["last"] or 0
    rows = []
    for community in communities:
        rules = community.rules.latest()
        moment = start
        while moment < end:
            rows.append((community.pk, rules.pk, moment, moment + INTERVAL,
                         moment - timedelta(minutes=5)))  # fmt: skip
            moment += INTERVAL
    insert_rows(Interval, ("community_id", "rules_id", "start", "end", "gate_closure_at"), rows)
    intervals = list(
        Interval.objects.filter(pk__gt=before, community__in=communities)
        .order_by("pk")
        .only("pk", "community_id", "gate_closure_at")
    )
    traders = {}
    for community in communities:
        seller, buyer = MeterPoint.objects.filter(membership__community=community).order_by("pk")[
            :2
        ]
        traders[community.pk] = (seller, buyer)
    postings = []
    for interval in intervals:
        seller, buyer = traders[interval.community_id]
        for meter, side, price in ((seller, "sell", "0.1000"), (buyer, "buy", "0.2000")):
            postings.append(
                (interval.pk, meter.membership_id, meter.pk, side, Decimal("0.500"),
                 Decimal(price), interval.gate_closure_at - timedelta(minutes=10))
            )  # fmt: skip
    insert_rows(
        Posting,
        ("interval_id", "membership_id", "meter_point_id", "side", "quantity_kwh",
         "limit_price_per_kwh", "submitted_at"),
        postings,
    )  # fmt: skip
    progress(
        f"month: {len(intervals):,} intervals, {len(postings):,} postings; replaying in "
        f"{processes} process(es), one shard of the communities each ..."
    )
    load = load_now()
    first, last = min(i.pk for i in intervals), max(i.pk for i in intervals)
    ours = Interval.objects.filter(pk__gte=first, pk__lte=last)
    environment = dict(os.environ, PEERGRID_DATABASE_NAME=database, LOG_LEVEL="WARNING")
    logs = [Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-month-{RUN_ID}-{k}.log"  # noqa: S108
            for k in range(processes)]  # fmt: skip
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    # In chunks of ``chunk_days``: each replays up to the chunk's end plus the settlement
    # window, so every interval of the chunk can settle. With a time budget, no chunk starts
    # that the last one's pace says would end past it; the days replayed are then reported
    # as such, with every one of their intervals counted.
    replayed_days = 0.0
    failed: list[int] = []
    database_cpu: float | None = 0.0
    report: list[str] = []
    while replayed_days < days and not failed:
        chunk = min(chunk_days, days - replayed_days)
        chunk_started = time.perf_counter()
        chunk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        target = min(start + timedelta(days=replayed_days + chunk) + timedelta(hours=2),
                     datetime.now(UTC))  # fmt: skip
        failed, chunk_cpu = _replay_chunk(
            processes, environment, logs, target, ours, len(intervals), started, start, step
        )
        database_cpu = (
            None if database_cpu is None or chunk_cpu is None else (database_cpu + chunk_cpu)
        )
        replayed_days += chunk
        pace = time.perf_counter() - chunk_started
        report.append(_chunk_line(logs, target, pace, chunk_before, chunk_cpu))
        spent = time.perf_counter() - started
        if budget_s and replayed_days < days and spent + pace * 1.1 > budget_s:
            progress(f"month: stopping after {replayed_days:g} days: the next chunk would "
                     f"end past the time budget of {budget_s:.0f} s")  # fmt: skip
            break
    seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    # The intervals of the days replayed: all of them must be settled.
    replayed = ours.filter(end__lte=start + timedelta(days=replayed_days))
    total = replayed.count()
    not_settled = replayed.exclude(state=IntervalState.SETTLED).count()
    verification = ledger_verify()
    if failed:
        for k in failed:
            print(logs[k].with_suffix(".err").read_text()[-4000:], file=sys.stderr)
        raise SystemExit(f"month: replaying process(es) {failed} failed; nothing written")
    days_asked, days = days, replayed_days
    result = {
        "communities": len(communities), "days": days, "intervals": total,
        "seconds": seconds, "cpu_s": cpu, "database_cpu_s": database_cpu,
        "processes": processes, "failed": failed,
        "not_settled": not_settled, "ledger_ok": verification.ok,
        "entries": verification.entries_checked, "load": load, "load_end": load_now(),
        "report": "\n".join(report), "step": step,
        "days_asked": days_asked,
    }  # fmt: skip
    per = f"{(cpu + (database_cpu or 0)) / max(total, 1) * 1000:.1f}"
    progress(
        f"month: replayed in {seconds:.0f} s, {cpu:.0f} s CPU in the replaying processes, "
        f"{'?' if database_cpu is None else f'{database_cpu:.0f}'} s in their database "
        f"backends ({per} ms per community-interval); "
        f"{(total - not_settled) / seconds:.1f} intervals settled/s; {not_settled} "
        f"not settled; ledger {'verified' if verification.ok else 'BROKEN'} "
        f"({verification.entries_checked:,} entries)"
    )
    return result


# --- Results -------------------------------------------------------------------------------------
def write_results(about: str, members: int, ticks: list[Any], by_due: list[Any], plans: str,
                  workers: list[Any], month: dict[str, Any] | None) -> None:  # fmt: skip
    lines = [
        HEADING,
        "",
        f"`python bench/bench_scale.py` on PostgreSQL and Redis. Machine: {about}. Each row "
        "carries the load average when it was measured; the machine is shared, so compare rows "
        f"of one run. Communities of {members} members, no grid model (see the script's "
        "docstring).",
    ]
    if ticks:
        lines += [
            "",
            TICK_HEADING,
            "",
            "*tick*: a tick with ten steps due (best of 5); *first after a boundary*: the tick "
            "in which every community opens its next interval (once per interval length); "
            "*before*: opening every community's horizon on every tick, the tick as it was "
            "(best of 3).",
            "",
            "| communities | intervals in the database | steps due | tick ms | queries | first "
            "after a boundary ms (queries) | before ms (queries) | load |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        lines += [
            f"| {r['communities']:,} | {r['intervals']:,} | {r['due']} | {r['steady_s'] * 1000:.1f}"
            f" | {r['steady_q']} | {r['first_s'] * 1000:.0f} ({r['first_q']}) | "
            f"{r['old_s'] * 1000:.0f} ({r['old_q']}) | {r['load']} |"
            for r in ticks
        ]
        if by_due:
            lines += [
                "",
                f"At {ticks[-1]['communities']:,} communities, more steps due (one per "
                "community, each an interval whose gate closed; best of 5):",
                "",
                "| steps due | tick ms | queries | load |",
                "| ---: | ---: | ---: | --- |",
            ]
            lines += [
                f"| {r['due']:,} | {r['s'] * 1000:.1f} | {r['queries']} | {r['load']} |"
                for r in by_due
            ]
        lines += ["", f"Query plans at {ticks[-1]['communities']:,} communities:", "", "```",
                  plans, "```"]  # fmt: skip
    elif kept := _kept_subsection(TICK_HEADING):
        lines += ["", kept]  # not run this time: the last run's results stay
    if workers:
        lines += [
            "",
            WORKERS_HEADING,
            "",
            f"{workers[0]['intervals']:,} communities, one interval each with one order per "
            "member, all gates closing at once; K solo worker processes, each on its own queue "
            "shard (`PEERGRID_QUEUE_SHARDS=K`; shard 0's worker also takes the default queue, "
            "the notifications). Lag = confirmation moment minus gate closure.",
            "",
            "| worker processes | intervals confirmed | all confirmed after s | lag median s | "
            "lag worst s | load |",
            "| ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        lines += [
            f"| {r['workers']} | {r['intervals']:,} | {r['wall_s']:.1f} | {r['median_s']:.1f} | "
            f"{r['worst_s']:.1f} | {r['load']} |"
            for r in workers
        ]
    elif kept := _kept_subsection(WORKERS_HEADING):
        lines += ["", kept]
    if ticks or workers:
        replace_section(HEADING, "\n".join(lines) + "\n")
    if month:
        # Its own section, so a month run alone keeps the tick's and the workers' results.
        replace_section(
            MONTH_HEADING,
            "\n".join([
                MONTH_HEADING,
                "",
                f"`python bench/bench_scale.py --parts month --month-step {month['step']}` on "
                f"PostgreSQL and Redis. Machine: {about}. {month['communities']} communities x "
                f"{month['days']:g} days = {month['intervals']:,} intervals of 15 minutes, two "
                f"matching orders each, replayed by `advance_intervals --step {month['step']}` "
                f"in {month['processes']} process(es) (one `--shard` of the communities each) "
                f"in {month['seconds']:.0f} s wall; {month['cpu_s']:.0f} s CPU of the replaying "
                f"processes and {_database_cpu(month)} s of their PostgreSQL backends: "
                f"**{_per_interval_ms(month)} ms CPU per community-interval**; "
                f"{_settled_rate(month):.1f} intervals settled/s (real time needs "
                f"{month['communities'] / 900:.2f}/s); {month['load']} at the start, "
                f"{month['load_end']} at the end. Intervals not settled at the end: "
                f"**{month['not_settled']}**; `ledger_verify`: "
                f"**{'verified' if month['ledger_ok'] else 'FAILED'}** over "
                f"{month['entries']:,} entries.{_month_extrapolation(month)}",
                "",
                "```",
                month["report"],
                "```",
            ]) + "\n",
        )  # fmt: skip


def _database_cpu(month: dict[str, Any]) -> str:
    return "?" if month["database_cpu_s"] is None else f"{month['database_cpu_s']:.0f}"


def _per_interval_ms(month: dict[str, Any]) -> str:
    cpu = month["cpu_s"] + (month["database_cpu_s"] or 0)
    return f"{cpu / max(month['intervals'], 1) * 1000:.1f}"


def _settled_rate(month: dict[str, Any]) -> float:
    return float(month["intervals"] - month["not_settled"]) / month["seconds"]


def _month_extrapolation(month: dict[str, Any]) -> str:
    """For a complete run shorter than 30 days: what a month would take at the rate measured."""
    if month["days"] >= 30 or month["not_settled"] or not _settled_rate(month):
        return ""
    asked = month.get("days_asked", month["days"])
    intervals = month["communities"] * 30 * 96
    hours = intervals / _settled_rate(month) / 3600
    return (
        f" **Not a month**: {month['days']:g} of 30 days ran"
        f"{' (the time budget ended the replay)' if asked > month['days'] else ''}. "
        "*Extrapolated, not measured*: "
        f"a month for {month['communities']} communities ({intervals:,} intervals) at this "
        f"rate would take about {hours:.1f} h on this machine at this load."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--communities", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--worker-communities", type=int, default=1000,
        help="communities in the worker part (default: all of the largest size)",
    )  # fmt: skip
    parser.add_argument("--month-communities", type=int, default=100)
    parser.add_argument("--month-days", type=float, default=30)
    parser.add_argument(
        "--month-processes",
        type=int,
        default=2,
        help="replaying processes, each one --shard of the communities",
    )
    parser.add_argument(
        "--month-members",
        type=int,
        default=None,
        help="members per community in the month part (default: --members)",
    )
    parser.add_argument(
        "--month-chunk-days", type=float, default=5,
        help="days replayed per run of the replaying processes",
    )  # fmt: skip
    parser.add_argument(
        "--month-step", default="15m",
        help="the replayed clock's step (advance_intervals --step): longer steps, fewer and "
        "larger batches",
    )  # fmt: skip
    parser.add_argument(
        "--month-budget-s", type=float, default=None,
        help="start no chunk that would end past this many seconds of replay; the days "
        "replayed are then reported as N of --month-days",
    )  # fmt: skip
    parser.add_argument("--parts", nargs="+", default=["tick", "workers", "month"],
                        choices=["tick", "workers", "month"])  # fmt: skip
    parser.add_argument(
        "--lock", default=None,
        help="take this benchmark lock (flock) for each part of the tick and the workers: each "
        "size of the tick, each worker round, so no turn at the lock is long",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    skip_unless(postgres=True, redis=True)
    use_redis_prefix("scale")
    import django

    django.setup()
    import logging

    logging.getLogger("marketplace").setLevel(logging.WARNING)
    about = machine()
    sizes = sorted(args.communities)
    ticks: list[Any] = []
    by_due: list[Any] = []
    plans = ""
    workers: list[Any] = []
    month = None
    with scratch_database("scale") as (_, database):
        from marketplace.models import Community

        progress(f"scratch database {database}")
        if "tick" in args.parts:
            ticks, by_due, plans = run_tick(sizes, args.members, args.lock)
        built = list(Community.objects.order_by("pk"))
        if len(built) < sizes[-1]:
            with bench_lock(args.lock):
                built += build_communities(len(built), sizes[-1] - len(built), args.members)
        if "workers" in args.parts:
            chosen = built[: min(args.worker_communities, sizes[-1])]
            workers = run_workers(database, chosen, args.members, args.workers, args.lock)
        if "month" in args.parts:
            if args.month_members is not None:
                # Small communities of their own for the replay.
                chosen = build_communities(len(built), args.month_communities, args.month_members)
            else:
                chosen = built[: args.month_communities]
            month = run_month(
                chosen, args.month_days, database, args.month_processes,
                chunk_days=args.month_chunk_days, budget_s=args.month_budget_s,
                step=args.month_step,
            )  # fmt: skip
    if not args.no_write:
        write_results(about, args.members, ticks, by_due, plans, workers, month)
        progress(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
