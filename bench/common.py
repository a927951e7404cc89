"""Helpers the benchmarks share: progress lines, the machine line, a scratch database and Redis
key prefix of their own, skipping when a server is missing, their RESULTS.md section.

A benchmark only ever removes what it created in the same run: its scratch database has a name
no one else uses (`<db>_bench_<name>_<random>`, or an SQLite file of that kind) and is dropped at
the end; on Redis every key it writes starts with its own prefix, and only those keys are
deleted afterwards. Nothing is flushed.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
RUN_ID = uuid.uuid4().hex[:8]
_own_prefix = ""  # set by use_redis_prefix(): the only keys delete_redis_prefix() touches

ROOT = Path(__file__).resolve().parent.parent


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def skip_unless(
    *, postgres: bool = False, redis: bool = False, programs: tuple[str, ...] = ()
) -> None:
    """Exit 0 with one clear line when a server or program the benchmark needs is absent.

    PostgreSQL and Redis are found only through DATABASE_URL and REDIS_URL, never assumed.
    """
    missing = []
    if postgres and not os.environ.get("DATABASE_URL", "").startswith(
        ("postgres://", "postgresql://")
    ):
        missing.append("PostgreSQL (set DATABASE_URL=postgres://...)")
    if redis and not os.environ.get("REDIS_URL", "").startswith(("redis://", "rediss://")):
        missing.append("Redis (set REDIS_URL=redis://...)")
    missing += [f"`{p}` on PATH" for p in programs if shutil.which(p) is None]
    if missing:
        print(f"SKIP {Path(sys.argv[0]).name}: needs {' and '.join(missing)}", flush=True)
        sys.exit(0)


def use_redis_prefix(name: str) -> str:
    """Give this run (and the worker processes it starts) a Redis key prefix of its own.

    Call before `django.setup()`: settings read PEERGRID_REDIS_PREFIX for the cache, the broker
    and the result backend.
    """
    global _own_prefix
    _own_prefix = f"peergrid-bench-{name}-{RUN_ID}:"
    os.environ["PEERGRID_REDIS_PREFIX"] = _own_prefix
    return _own_prefix


def delete_redis_prefix() -> int:
    """Delete this run's keys (and only those) from Redis; returns how many."""
    from django.conf import settings

    prefix = _own_prefix
    if not settings.REDIS_URL or not prefix:
        return 0
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            deleted += client.delete(*batch)
            batch = []
    if batch:
        deleted += client.delete(*batch)
    return deleted


def backend_cpu_s(cursor: Any) -> float:
    """CPU seconds (user + system) of the PostgreSQL backend process serving ``cursor``."""
    cursor.execute("SELECT pg_backend_pid()")
    pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def scratch_database(name: str) -> Iterator[tuple[str, str]]:
    """A new database of the benchmark's own for the `with` block, dropped afterwards.

    SQLite: `bench-<name>-<run>.sqlite3` under PEERGRID_VAR_DIR; PostgreSQL:
    `<db>_bench_<name>_<run>` on DATABASE_URL's server. Yields the backend's display name and
    the database name (for worker processes: PEERGRID_DATABASE_NAME).
    """
    from django.conf import settings
    from django.db import connection

    db = settings.DATABASES["default"]
    original = db["NAME"]
    if db["ENGINE"].endswith("sqlite3"):
        db.setdefault("TEST", {})["NAME"] = str(
            Path(settings.VAR_DIR) / f"bench-{name}-{RUN_ID}.sqlite3"
        )
        backend = "SQLite"
    else:
        db.setdefault("TEST", {})["NAME"] = f"{original}_bench_{name}_{RUN_ID}"
        backend = "PostgreSQL"
    # A name no one else has: nothing existing is ever clobbered.
    database = connection.creation.create_test_db(verbosity=0, autoclobber=False, keepdb=False)
    try:
        yield backend, str(database)
    finally:
        connection.creation.destroy_test_db(original, verbosity=0)
        delete_redis_prefix()


@contextlib.contextmanager
def bench_lock(path: str | None) -> Iterator[None]:
    """Hold the machine's benchmark lock (``flock`` on ``path``) for one timed part, if given.

    A run longer than one turn at the lock takes it part by part, so the others' benchmarks get
    their turns in between instead of waiting for the whole run.
    """
    if not path:
        yield
        return
    import fcntl

    with open(path, "a") as lock:
        progress(f"waiting for the benchmark lock {path} ...")
        fcntl.flock(lock, fcntl.LOCK_EX)
        progress("benchmark lock held")
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def machine() -> str:
    """CPU, cores, OS, Python, and the load averages (`uptime`) right now."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, AttributeError):
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = re.search(r"Model name:\s*(.+)", lscpu).group(1).strip()  # type: ignore[union-attr]
    one, five, fifteen = os.getloadavg()
    return (
        f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, Python "
        f"{platform.python_version()}; load average {one:.2f} / {five:.2f} / {fifteen:.2f} "
        f"(1 / 5 / 15 min) at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


def load_now() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} / {five:.2f}"


def replace_section(heading: str, section: str) -> None:
    """Put `section` (which starts with its `heading` line) into RESULTS.md.

    Only this benchmark's own section is replaced, from its heading to the next `## ` heading;
    a new one is appended, so every benchmark keeps the others' results.
    """
    text = RESULTS.read_text() if RESULTS.exists() else "# PeerGrid benchmarks\n"
    body = section.rstrip("\n") + "\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: body + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + body
    RESULTS.write_text(text.rstrip("\n") + "\n")


class BenchWorker:
    """A ``celery worker`` subprocess (solo pool) on the bench's own queue, database and prefix.

    ``env`` adds to the environment (the queue shards, say); its log lives under ``var/`` and is
    removed when the worker stops.
    """

    def __init__(
        self,
        *,
        queue: str,
        database: str,
        name: str,
        listen: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        from django.conf import settings

        # ``queue`` is the platform's queue name; ``listen`` the shard this worker takes, if any.
        environment = dict(os.environ, PEERGRID_QUEUE=queue, PEERGRID_DATABASE_NAME=database,
                           LOG_LEVEL="WARNING", **(env or {}))  # fmt: skip
        self.log = Path(settings.VAR_DIR) / f"bench-{name}-{uuid.uuid4().hex[:4]}.log"
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo",
            "--loglevel=INFO", "-Q", listen or queue, "--hostname", f"{name}@%h",
            "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.log.read_text(errors='replace')}")
            if self.log.exists() and "ready." in self.log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.unlink(missing_ok=True)
