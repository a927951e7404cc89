"""Fixtures shared by the whole suite: fast hashing, a real Celery worker, API clients."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: pytest.FixtureRequest) -> None:
    # Slow hashing protects stored passwords; in tests it only costs time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _private_ledger_checkpoints(settings: pytest.FixtureRequest, tmp_path: Path) -> None:
    # Each test's database is rolled back or flushed; its checkpoint file must go with it, or
    # the next test's ledger would look truncated.
    settings.LEDGER_CHECKPOINT_DIR = tmp_path / "ledger-checkpoints"  # type: ignore[attr-defined]


def _flush_past_the_truncate_guard() -> None:
    """Let the test runner's flush TRUNCATE the ledger tables (migration 0003 refuses it).

    ``session_replication_role = replica`` switches ordinary triggers off for the flush's own
    transaction only; it needs a superuser, which the application role is not meant to be.
    """
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush

    def sql_flush(self: DatabaseOperations, *args: object, **kwargs: object) -> list[str]:
        statements = original(self, *args, **kwargs)  # type: ignore[arg-type]
        return ["SET LOCAL session_replication_role = replica", *statements] if statements else []

    DatabaseOperations.sql_flush = sql_flush  # type: ignore[method-assign,assignment]


if django_settings.USING_POSTGRES:
    _flush_past_the_truncate_guard()


requires_postgres = pytest.mark.skipif(
    not django_settings.USING_POSTGRES,
    reason="needs PostgreSQL (row locks, triggers); CI runs it with DATABASE_URL set",
)


class WorkerProcess:
    """A real `celery worker` subprocess on its own queue, using the test database."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(django_settings.VAR_DIR) / f"worker-{queue}.log"

    def start(self, *, beat: bool = False) -> None:
        env = dict(os.environ)
        env["PEERGRID_QUEUE"] = self.queue
        env["PEERGRID_DATABASE_NAME"] = str(connection.settings_dict["NAME"])
        env["PEERGRID_LEDGER_CHECKPOINT_DIR"] = str(django_settings.LEDGER_CHECKPOINT_DIR)
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--pool=solo", "--loglevel=INFO", "-Q", self.queue,
            "--hostname", f"{self.queue}@%h",
        ]  # fmt: skip
        if beat:
            command += [
                "--beat",
                "--schedule",
                str(Path(django_settings.VAR_DIR) / f"beat-{self.queue}"),
            ]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            if "ready." in self.log():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def _private_worker(*, beat: bool) -> Iterator[WorkerProcess]:
    queue = f"peergrid-test-{uuid.uuid4().hex[:8]}"
    previous_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    worker = WorkerProcess(queue)
    try:
        worker.start(beat=beat)
        yield worker
    finally:
        worker.stop()
        celery_app.conf.task_default_queue = previous_queue


@pytest.fixture
def celery_worker_process(transactional_db: None) -> Iterator[WorkerProcess]:
    """Start a real worker on a private queue; tasks sent by the test go to that queue."""
    with _private_worker(beat=False) as worker:
        yield worker


@pytest.fixture
def celery_worker_with_beat(transactional_db: None) -> Iterator[WorkerProcess]:
    """A real worker with beat embedded, running the real CELERY_BEAT_SCHEDULE on the test DB.

    Beat's tasks go to the worker's private queue too (``PEERGRID_QUEUE``). After ``kill()``,
    ``start(beat=True)`` brings up a fresh worker and beat on the same queue.
    """
    with _private_worker(beat=True) as worker:
        yield worker


# --- Browser tests -------------------------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOT_DIR = ROOT / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's chromium driven by Playwright; never a downloaded browser."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still synchronous, so Django's async-safety guard would refuse them without this.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object, live_server: object) -> Iterator[object]:
    """A fresh browser context per test, with `page.base_url` pointing at the live server."""
    context = browser.new_context(  # type: ignore[attr-defined]
        base_url=live_server.url,  # type: ignore[attr-defined]
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(15_000)
    new_page = context.new_page()
    yield new_page
    context.close()


def save_screenshot(page: object, name: str) -> Path:
    """Save a full-page screenshot for review under test-artifacts/screenshots/."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
