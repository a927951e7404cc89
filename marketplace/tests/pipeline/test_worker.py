"""The pipeline on a real Celery worker with beat: end to end, and a worker killed mid-step.

Nothing here calls a task by hand except to start the faulted step: beat's tick (every 15 s, the
real CELERY_BEAT_SCHEDULE) finds due intervals and the worker moves them. Tests poll the database
with a deadline; they never sleep a fixed time and hope.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from grid.models import GridCheckResult
from marketplace.models import Interval, IntervalState, Posting, Trade
from marketplace.services.pipeline import DueStep, dispatch_step
from marketplace.services.postings import posting_create
from marketplace.tests.pipeline.helpers import community_with_homes

pytestmark = [pytest.mark.worker]
# Worker start-up, one or two 15-second ticks and the steps themselves.
DEADLINE_S = 120


def wait_for(condition: Callable[[], bool], what: str, worker, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{worker.log()[-6000:]}")


def _state(interval: Interval) -> str:
    return Interval.objects.values_list("state", flat=True).get(pk=interval.pk)


def _market(gate_in: timedelta):
    """Four homes on CIGRE LV and an interval whose gate closes ``gate_in`` from now."""
    community, homes = community_with_homes(homes=4)
    rules = community.rules.latest()
    gate = timezone.now() + gate_in
    start = gate + timedelta(minutes=rules.gate_closure_lead_minutes)
    # Built directly: a horizon interval's gate is minutes away, too long for a test to wait.
    interval = Interval.objects.create(
        community=community,
        rules=rules,
        start=start,
        end=start + timedelta(minutes=15),
        gate_closure_at=gate,
    )
    orders = [("sell", "2.000", "0.1000"), ("sell", "1.500", "0.1200")]
    orders += [("buy", "1.000", "0.3000"), ("buy", "3.000", "0.2500")]
    for home, (side, kwh, price) in zip(homes, orders, strict=True):
        posting_create(
            membership=home.membership,
            meter_point=home.meter_point,
            interval=interval,
            side=side,
            quantity_kwh=kwh,
            limit_price_per_kwh=price,
            now=gate - timedelta(minutes=1) if gate_in < timedelta(0) else None,
        )
    return community, interval


def assert_cleared_exactly_once(interval: Interval) -> None:
    interval.refresh_from_db()
    assert interval.state == IntervalState.CONFIRMED
    trades = Trade.objects.filter(interval=interval)
    # The one committed clearing counted its trades; every one of them is there, none twice.
    assert trades.count() == interval.timings["cleared"]["trades"] > 0
    for source in {t.source for t in trades}:
        sequences = sorted(trades.filter(source=source).values_list("sequence", flat=True))
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    # Energy balance between the book and the trades: what postings gave is what trades took.
    for side, party in (("sell", "seller"), ("buy", "buyer")):
        allocated = Posting.objects.filter(interval=interval, side=side).aggregate(
            s=Sum("allocated_kwh")
        )["s"]
        traded = trades.filter(**{f"{party}__isnull": False}).aggregate(s=Sum("quantity_kwh"))["s"]
        assert allocated == traded
    assert not trades.filter(confirmed_kwh__isnull=True).exists()
    for trade in trades:
        assert trade.confirmed_kwh == trade.quantity_kwh - trade.curtailed_kwh
    assert GridCheckResult.objects.filter(interval=interval).count() == 1


def test_beat_and_worker_take_posted_orders_to_confirmed(celery_worker_with_beat):
    worker = celery_worker_with_beat
    community, interval = _market(gate_in=timedelta(seconds=5))

    wait_for(lambda: _state(interval) == IntervalState.CONFIRMED, "confirmed", worker)

    assert_cleared_exactly_once(interval)
    result = GridCheckResult.objects.get(interval=interval)
    assert result.feasible
    assert result.power_flows >= 1
    assert result.min_vm_pu is not None
    # The tick opened the community's rolling horizon too.
    assert Interval.objects.filter(community=community).count() > 1
    assert "marketplace.pipeline_tick" in worker.log()


def _blocked_backends() -> int:
    with connection.cursor() as cursor:
        # Inside a transaction PostgreSQL keeps showing its first snapshot of the statistics.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
        )
        return int(cursor.fetchone()[0])


def test_worker_killed_mid_step_completes_exactly_once(celery_worker_with_beat):
    """SIGKILL the worker while it clears an interval; a new worker finishes it once.

    On PostgreSQL the test holds row locks on the interval's postings, so the worker is pinned
    inside the clearing step (interval locked, gate already closed, clearing under way) when it
    is killed; its transaction dies with its connection. On SQLite a write lock can only hold
    the worker at the start of its transaction, so there the kill lands after the task was
    received and before it could commit: still a step in flight, lost with its worker.
    """
    worker = celery_worker_with_beat
    _, interval = _market(gate_in=-timedelta(seconds=1))  # due at once
    with transaction.atomic():
        if settings.USING_POSTGRES:
            # of=self and pk order: the default ordering joins the interval, which would lock it.
            postings = Posting.objects.filter(interval=interval).order_by("pk")
            list(postings.select_for_update(of=("self",)))
        else:
            Interval.objects.filter(pk=interval.pk).update(last_error="")  # take the write lock
        # The step may also be queued by the tick; either way one of them gets stuck here.
        dispatch_step(DueStep(interval.pk, interval.community_id, IntervalState.GATE_CLOSED))
        if settings.USING_POSTGRES:
            wait_for(lambda: _blocked_backends() > 0, "the worker to block mid-step", worker)
            # The gate closure committed; the clearing is the step in flight.
            assert _state(interval) == IntervalState.GATE_CLOSED
        else:
            wait_for(
                lambda: (
                    "marketplace.interval_advance" in worker.log() and "received" in worker.log()
                ),
                "the worker to take the step",
                worker,
            )
        worker.kill()
    assert not Trade.objects.filter(interval=interval).exists()  # nothing half-written

    worker.start(beat=True)
    wait_for(lambda: _state(interval) == IntervalState.CONFIRMED, "confirmed", worker)
    assert_cleared_exactly_once(interval)
    assert interval.timings["cleared"]["trades"] == Trade.objects.filter(interval=interval).count()
    assert Decimal(interval.timings["cleared"]["peer_kwh"]) > 0
