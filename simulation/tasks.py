"""Thin Celery tasks: one scenario run (or one variant of a sweep) per task, by the run's id.

A sweep's variants are independent tasks, so more workers finish a sweep sooner. Runs are not
``acks_late``: a year-long run would outlive the broker's visibility timeout and be delivered
again; ``simulation_run_execute`` also refuses a run that already started.
"""

from __future__ import annotations

from pathlib import Path

from celery import shared_task
from django.utils import timezone

from simulation.services import simulation_run_execute


@shared_task(name="simulation.run", ignore_result=True)
def simulation_run_task(run_id: int, out_dir: str) -> None:
    simulation_run_execute(run_id=run_id, out_dir=Path(out_dir))


@shared_task(name="simulation.demo_tick", acks_late=True, ignore_result=True)
def demo_tick_task() -> int:
    """The demo's robots post before gate closure and are metered after delivery."""
    from simulation.demo import demo_tick

    return demo_tick(now=timezone.now())
