"""Thin Celery tasks for the interval pipeline: they take ids, call one service, are idempotent.

The steps are compare-and-set on the interval's state (``marketplace.services.pipeline``), so
they may run late, twice or after a crash: ``acks_late`` with ``task_reject_on_worker_lost`` puts a
step whose worker died back on the queue, and ``pipeline_tick`` queues every due step again on
the next beat anyway.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celery import shared_task
from django.utils import timezone

from marketplace.models import Interval, IntervalState
from marketplace.services import pipeline
from marketplace.services.autopilot import autopilot_post_due
from marketplace.services.idempotency import idempotency_records_expire
from marketplace.services.regions import region_interval_clear, region_period_of

STEP_TASK_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "task_reject_on_worker_lost": True,
    "autoretry_for": (Exception,),
    "retry_backoff": 5,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
}


def _queue_next(interval: Interval) -> None:
    # Clearing, grid check and confirmation follow each other at once instead of a tick apart.
    step = pipeline.next_step_if_due(interval)
    if step is not None:
        pipeline.dispatch_step(step)
    # A confirmed interval may be the last its region waited for.
    period = region_period_of(interval) if interval.state == IntervalState.CONFIRMED else None
    if period is not None:
        pipeline.dispatch_region(period)


@shared_task(name="marketplace.interval_advance", **STEP_TASK_OPTIONS)
def interval_advance_task(interval_id: int, to_state: str) -> bool:
    """Move one interval one step; False when it was not due or already done (a no-op)."""
    return pipeline.interval_advance(
        interval_id=interval_id, to_state=to_state, on_done=_queue_next
    )


@shared_task(name="marketplace.pipeline_tick", acks_late=True, ignore_result=True)
def pipeline_tick_task() -> int:
    """Beat's tick: open every community's horizon and queue each due step as its own task."""
    return len(pipeline.pipeline_tick(now=timezone.now()))


@shared_task(name="marketplace.region_clear", **STEP_TASK_OPTIONS)
def region_clear_task(region_id: int, start: str, end: str) -> bool:
    """Clear one region period; False when it is not due yet or was cleared before (a no-op)."""
    cleared = region_interval_clear(
        region_id=region_id,
        start=datetime.fromisoformat(start),
        end=datetime.fromisoformat(end),
    )
    return cleared is not None


@shared_task(name="marketplace.idempotency_expire", ignore_result=True)
def idempotency_expire_task() -> int:
    """Delete expired idempotency records (answers older than a day, abandoned placeholders)."""
    return idempotency_records_expire(now=timezone.now())


@shared_task(name="marketplace.autopilot_tick", ignore_result=True)
def autopilot_tick_task() -> int:
    """Beat's autopilot round: post for the members who switched it on, before gate closure.

    Idempotent without ``acks_late``: a second round finds the postings made and skips them.
    """
    return len(autopilot_post_due(now=timezone.now()))
