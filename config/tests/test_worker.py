"""A real Celery worker process runs a task end to end through the configured broker."""

from __future__ import annotations

import pytest

from config.celery import heartbeat
from conftest import WorkerProcess


@pytest.mark.worker
def test_real_worker_runs_a_task(celery_worker_process: WorkerProcess) -> None:
    result = heartbeat.delay()
    assert result.get(timeout=60) == "ok"
    assert "config.celery.heartbeat" in celery_worker_process.log()
