"""`manage.py simulate`: a report from a file, a side-by-side comparison, runs on a real worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from simulation.models import RunStatus, SimulationRun

SCENARIO = {
    "name": "command",
    "seed": 2,
    "start": "2026-06-21T10:00:00Z",
    "hours": 2,
    "market": {"market_structure": "pool", "interval_minutes": 60},
    "households": [
        {"count": 2, "pv_kwp": 8.0},
        {"count": 2, "strategy": "roth-erev"},
    ],
}


def _file(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.django_db(transaction=True)
def test_simulate_writes_the_report(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    call_command("simulate", str(_file(tmp_path, SCENARIO)), "--out", str(out))
    printed = capsys.readouterr()
    assert "ledger verified" in printed.out
    assert "2/2 intervals" in printed.err  # the progress bar
    for name in ("report.html", "summary.json", "intervals.csv", "members.csv", "trades.png"):
        assert (out / name).exists(), name
    run = SimulationRun.objects.get()
    assert run.status == RunStatus.DONE
    assert run.intervals_done == run.intervals_total == 2
    assert run.summary["households"] == 4


@pytest.mark.django_db
def test_a_bad_scenario_is_refused_with_its_field(tmp_path: Path) -> None:
    bad = {**SCENARIO, "households": [{"battery": {"capacity_kwh": 0, "power_kw": 3}}]}
    with pytest.raises(CommandError, match=r"households\[0\]\.battery\.capacity_kwh"):
        call_command("simulate", str(_file(tmp_path, bad)))
    with pytest.raises(CommandError, match="at least two values"):
        call_command("simulate", str(_file(tmp_path, SCENARIO)), "--compare", "strategy=zi-c")
    assert not SimulationRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_compare_puts_variants_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    call_command(
        "simulate", str(_file(tmp_path, SCENARIO)), "--out", str(out),
        "--compare", "clearing_mechanism=uniform,pay-as-bid",
    )  # fmt: skip
    page = (out / "index.html").read_text()
    assert "clearing_mechanism=uniform" in page
    assert "clearing_mechanism=pay-as-bid" in page
    assert (out / "clearing_mechanism=pay-as-bid" / "report.html").exists()
    mechanisms = {run.variant: run.summary["mechanism"] for run in SimulationRun.objects.all()}
    assert mechanisms["clearing_mechanism=pay-as-bid"].startswith("pay-as-bid")


@pytest.mark.worker
def test_a_sweep_runs_on_the_workers(celery_worker_process, tmp_path: Path) -> None:
    one_hour = {**SCENARIO, "hours": 1}
    call_command(
        "simulate", str(_file(tmp_path, one_hour)), "--out", str(tmp_path / "w"),
        "--compare", "strategy=truthful,zi-c", "--celery", "--timeout", "240",
    )  # fmt: skip
    runs = list(SimulationRun.objects.all())
    assert [run.status for run in runs] == [RunStatus.DONE, RunStatus.DONE], [r.error for r in runs]
    assert (tmp_path / "w" / "index.html").exists()
