"""Run a scenario through the real pipeline on an accelerated clock and write its report.

    python manage.py simulate simulation/scenarios/elecbay_case_5_1.toml
    python manage.py simulate SCENARIO --compare clearing_mechanism=uniform,pay-as-bid
    python manage.py simulate SCENARIO --compare strategy=truthful,zi-c,roth-erev --celery

With ``--compare`` every variant runs on the same population and seed, and a side-by-side page
links their reports. ``--celery`` sends each variant to the workers as its own task and waits,
showing their combined progress; without it the variants run here, one after the other.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.errors import ApplicationError
from simulation.models import RunStatus, SimulationRun
from simulation.scenario import ScenarioInvalid, scenario_read, scenario_variant
from simulation.services import (
    reports_root,
    simulation_run_create,
    simulation_run_execute,
    sweep_id,
    sweep_write,
)

BAR = 30


def _value(text: str) -> Any:
    return int(text) if text.lstrip("-").isdigit() else text


class Command(BaseCommand):
    help = "Simulate a scenario (TOML or JSON) through the real pipeline and write its report."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("scenario", help="Path to a .toml or .json scenario file.")
        parser.add_argument("--out", help="Directory for the report (default: var/simulations/).")
        parser.add_argument(
            "--compare",
            metavar="FIELD=A,B,...",
            help="Run one variant per value of FIELD (strategy, flexible_control, a market rule).",
        )
        parser.add_argument(
            "--celery", action="store_true", help="Run each variant as a Celery task and wait."
        )
        parser.add_argument(
            "--timeout", type=int, default=6 * 3600, help="Seconds to wait (--celery)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # The pipeline logs every step; the progress bar says it better here.
        logging.getLogger("marketplace").setLevel(logging.WARNING)
        try:
            data = scenario_read(Path(options["scenario"]))
            variants = self._variants(data, options["compare"])
            sweep = sweep_id()
            runs = [
                simulation_run_create(data=variant_data, variant=label, sweep=sweep)
                for label, variant_data in variants
            ]
        except ScenarioInvalid as exc:
            raise CommandError(f"scenario refused: {exc}") from None
        root = Path(options["out"]) if options["out"] else reports_root() / f"sweep-{sweep}"
        single = len(runs) == 1 and not options["compare"]
        out_dirs = {
            run.pk: root if single else root / (run.variant or f"run-{run.pk}") for run in runs
        }
        if options["celery"]:
            self._via_celery(runs, out_dirs, options["timeout"])
        else:
            for run in runs:
                label = run.variant or run.name
                try:
                    simulation_run_execute(
                        run_id=run.pk, out_dir=out_dirs[run.pk], progress=self._progress(label)
                    )
                except ApplicationError as exc:
                    raise CommandError(f"{label}: {exc}") from None
                self.stderr.write("")
        runs = [SimulationRun.objects.get(pk=run.pk) for run in runs]
        for run in runs:
            self._summary(run)
        if not single:
            page = sweep_write(runs=runs, directory=root, title=f"Comparison: {runs[0].name}")
            self.stdout.write(f"Side by side: {page}")
        failed = [run for run in runs if run.status != RunStatus.DONE]
        if failed:
            raise CommandError(
                f"{len(failed)} run(s) did not finish: " + "; ".join(r.error for r in failed)
            )

    def _variants(
        self, data: dict[str, Any], compare: str | None
    ) -> list[tuple[str, dict[str, Any]]]:
        if not compare:
            return [("", data)]
        field, _, values = compare.partition("=")
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not field or len(choices) < 2:
            raise CommandError("--compare needs FIELD=A,B (at least two values)")
        return [(f"{field}={v}", scenario_variant(data, field.strip(), _value(v))) for v in choices]

    def _progress(self, label: str) -> Callable[[int, int], None]:
        return lambda done, total: self._bar(label, done, total)

    def _bar(self, label: str, done: int, total: int) -> None:
        filled = BAR * done // max(total, 1)
        sys.stderr.write(
            f"\r{label[:30]:<30} [{'#' * filled}{'.' * (BAR - filled)}] {done}/{total} intervals"
        )
        sys.stderr.flush()

    def _via_celery(
        self, runs: list[SimulationRun], out_dirs: dict[int, Path], timeout: int
    ) -> None:
        from simulation.tasks import simulation_run_task

        for run in runs:  # the runs' rows are committed: the command runs in autocommit
            simulation_run_task.delay(run.pk, str(out_dirs[run.pk]))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = list(SimulationRun.objects.filter(pk__in=[r.pk for r in runs]))
            done = sum(r.intervals_done for r in rows)
            total = sum(r.intervals_total for r in rows)
            self._bar(f"{len(rows)} run(s) on the workers", done, total)
            if all(r.status in (RunStatus.DONE, RunStatus.FAILED) for r in rows):
                self.stderr.write("")
                return
            time.sleep(1.0)
        raise CommandError(f"the workers did not finish within {timeout} s")

    def _summary(self, run: SimulationRun) -> None:
        if run.status != RunStatus.DONE:
            self.stderr.write(self.style.ERROR(f"{run}: {run.status} {run.error}"))
            return
        s = run.summary
        self.stdout.write(
            f"{run}: exchange {s['exchange_kwh']:.1f} kWh, peak {s['peak_kw']:.2f} kW, "
            f"P2P {s['p2p_kwh']:.1f} kWh, savings {s['savings']:.2f}, "
            f"Gini {s['savings_gini']:.3f}, "
            f"ledger {'verified' if s['ledger_verified'] else 'NOT verified'}"
        )
        self.stdout.write(f"  report: {Path(run.report_dir) / 'report.html'}")
