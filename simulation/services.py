"""Scenario runs: record one, run it (command or worker) with its progress, write its report."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from simulation.engine import simulation_run
from simulation.models import RunStatus, SimulationRun
from simulation.report import Report, comparison_write, report_build, report_write
from simulation.scenario import scenario_parse

logger = logging.getLogger(__name__)
PROGRESS_EVERY = 8  # intervals between progress writes to the run's row


def reports_root() -> Path:
    return Path(settings.VAR_DIR) / "simulations"


def simulation_run_create(
    *, data: dict[str, Any], variant: str = "", sweep: str = ""
) -> SimulationRun:
    """Check the scenario and record a queued run (raises ``ScenarioInvalid``)."""
    scenario = scenario_parse(data)
    minutes = int(data.get("market", {}).get("interval_minutes", 15))
    return SimulationRun.objects.create(
        name=scenario.name,
        variant=variant,
        sweep=sweep,
        scenario=data,
        intervals_total=scenario.hours * 60 // minutes,
    )


def simulation_run_execute(
    *, run_id: int, out_dir: Path | None = None, progress: Callable[[int, int], None] | None = None
) -> Report | None:
    """Run a recorded scenario to its end and write its report; the row tracks progress.

    A run already started or done is left alone (a task delivered twice runs once); a failing
    run is marked failed with its error, and its community stays for inspection.
    """
    with transaction.atomic():
        run = SimulationRun.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.QUEUED:
            return None
        run.status = RunStatus.RUNNING
        run.save(update_fields=["status"])

    def track(done: int, total: int) -> None:
        if done % PROGRESS_EVERY == 0 or done == total:
            SimulationRun.objects.filter(pk=run_id).update(
                intervals_done=done, intervals_total=total
            )
        if progress is not None:
            progress(done, total)

    directory = out_dir or reports_root() / f"run-{run_id}"
    try:
        outcome = simulation_run(scenario=scenario_parse(run.scenario), progress=track)
        report = report_build(outcome, variant=run.variant)
        report_write(report, directory)
    except Exception as exc:
        logger.exception("simulation run %s failed", run_id)
        SimulationRun.objects.filter(pk=run_id).update(
            status=RunStatus.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    SimulationRun.objects.filter(pk=run_id).update(
        status=RunStatus.DONE,
        community=outcome.community,
        summary=_jsonable(report),
        report_dir=str(directory),
        finished_at=timezone.now(),
    )
    return report


def _jsonable(report: Report) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(report.summary)


def sweep_id() -> str:
    return uuid.uuid4().hex[:12]


def sweep_write(*, runs: list[SimulationRun], directory: Path, title: str) -> Path:
    """The side-by-side page of a finished sweep, from each run's stored summary."""
    from simulation.report import Summary

    reports = [
        Report(Summary(**run.summary), (), (), (), (), (), ())
        for run in runs
        if run.status == RunStatus.DONE
    ]
    return comparison_write(reports, directory, title=title)
