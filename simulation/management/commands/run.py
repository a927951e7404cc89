"""Run PeerGrid in the foreground: the web server, a Celery worker and beat, started and stopped
together (what `make run` calls).

Each of the three runs in a session of its own, so the terminal's Ctrl-C reaches only this
supervisor, which then stops them in order: SIGTERM to each (the worker's warm shutdown lets a
running step finish), SIGKILL to whatever of a process group is left after the grace period, so
no worker pool process outlives it. A second Ctrl-C kills at once. If one of the three exits on
its own, the others are stopped too and the command fails with that service's name.

When the supervisor runs in a terminal's foreground (under `make run`), it makes its own process
group the foreground one for as long as it runs: Ctrl-C then interrupts only it and not `make`,
which would otherwise die of the signal and report an error although everything stopped cleanly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser, OutputWrapper
from django.db import DatabaseError

from accounts.models import User
from simulation.management.commands.seed_demo import DEMO_PASSWORD, PROSUMER_COUNT, demo_email

CELERY_APP = "config"  # docker-compose.yml starts the same app
GRACE_S = 6.0  # SIGTERM to SIGKILL: all is gone well within the 10 s a person waits
READY_TIMEOUT_S = 120.0


@dataclass
class Service:
    """One supervised process and the thread that copies its output, prefixed with its name."""

    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    reader: threading.Thread | None = field(default=None, repr=False)

    def start(self, out: OutputWrapper, lock: threading.Lock) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, cwd=settings.BASE_DIR, start_new_session=True,
        )  # fmt: skip
        self.reader = threading.Thread(target=self._copy, args=(out, lock), daemon=True)
        self.reader.start()

    def _copy(self, out: OutputWrapper, lock: threading.Lock) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            with lock:
                out.write(f"{self.name:<6} | {line}\n")
                out.flush()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the whole process group (the worker's pool processes too)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, sig)


@contextlib.contextmanager
def terminal_foreground() -> Iterator[None]:
    """Own the terminal's foreground while running, then hand it back (see module docstring)."""
    try:
        fd = sys.stdin.fileno()
        owns = os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except (OSError, ValueError):
        owns = False
    if not owns:
        yield
        return
    previous = os.getpgrp()
    # A background group changing the foreground gets SIGTTOU; ignore it while we do.
    old_ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.setpgid(0, 0)
        os.tcsetpgrp(fd, os.getpgrp())
    except OSError:
        signal.signal(signal.SIGTTOU, old_ttou)
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, previous)
        signal.signal(signal.SIGTTOU, old_ttou)


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and beat in the foreground; Ctrl-C stops all three."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--concurrency", type=int, default=2, help="Worker processes (default 2)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        python = sys.executable
        services = [
            Service("web", [python, "manage.py", "runserver", f"{host}:{port}", "--noreload"]),
            Service("worker", [python, "-m", "celery", "-A", CELERY_APP, "worker",
                               "--loglevel=INFO", f"--concurrency={options['concurrency']}"]),
            Service("beat", [python, "-m", "celery", "-A", CELERY_APP, "beat", "--loglevel=INFO"]),
        ]  # fmt: skip
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"  # noqa: S104
        self.stdout.write(self._banner(url))
        self.stdout.flush()
        with terminal_foreground():
            failed = self._supervise(services, url)
        if failed:
            self.stderr.write(self.style.ERROR(f"{failed} stopped on its own; stopped the others"))
        else:
            self.stdout.write("Stopped web, worker and beat.")
        self.stdout.flush()
        self.stderr.flush()
        # Nothing is left to clean up, and tearing down the interpreter with pandapower loaded
        # takes seconds on a busy machine: leave at once, so Ctrl-C returns the prompt promptly.
        os._exit(1 if failed else 0)

    def _banner(self, url: str) -> str:
        line = f"PeerGrid at {url} (web, worker and beat; Ctrl-C stops all three)."
        try:
            seeded = User.objects.filter(email=demo_email("admin")).exists()
        except DatabaseError:  # not migrated yet: the web page will say so
            seeded = False
        if seeded:
            line += (
                f" Demo logins, password {DEMO_PASSWORD}: {demo_email('admin')} (operator), "
                f"{demo_email('manager')}, {demo_email('regulator')}, "
                f"{demo_email('prosumer', 1)} … {demo_email('prosumer', PROSUMER_COUNT)}."
            )
        return line

    def _supervise(self, services: list[Service], url: str) -> str:
        """Run until a signal or until one service exits; returns that service's name or ''."""
        interrupts: list[int] = []

        def on_signal(signum: int, frame: FrameType | None) -> None:
            interrupts.append(signum)
            if len(interrupts) > 1:  # a second Ctrl-C: no more waiting
                for service in services:
                    service.signal_group(signal.SIGKILL)

        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.signal(sig, on_signal) for sig in handled}
        lock = threading.Lock()
        failed = ""
        try:
            for service in services:
                service.start(self.stdout, lock)
            ready_by = time.monotonic() + READY_TIMEOUT_S
            ready = False
            while not interrupts:
                failed = next((s.name for s in services if not s.running()), "")
                if failed:
                    break
                if not ready and self._healthy(url):
                    ready = True
                    with lock:
                        self.stdout.write(self.style.SUCCESS(f"PeerGrid is ready at {url}"))
                elif not ready and time.monotonic() > ready_by:
                    with lock:
                        self.stderr.write(f"{url}healthz has not answered yet; still waiting")
                    ready_by = float("inf")
                time.sleep(0.2 if ready else 0.5)
        finally:
            self._stop(services, lock)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return failed

    def _healthy(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{url}healthz", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    def _stop(self, services: list[Service], lock: threading.Lock) -> None:
        with lock:
            self.stdout.write("Stopping web, worker and beat ...")
            self.stdout.flush()
        for service in services:
            if service.running():
                assert service.process is not None
                # Only the group's leader: the worker hands the signal on to its pool itself.
                with contextlib.suppress(ProcessLookupError):
                    service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for service in services:
            assert service.process is not None
            try:
                service.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with lock:
                    self.stdout.write(
                        f"{service.name} still stopping after {GRACE_S:.0f} s: killed (a step it "
                        "was running is rolled back and runs again on the next start)"
                    )
            # Whatever is left of the group (a hung pool process) goes with its leader.
            service.signal_group(signal.SIGKILL)
            service.process.wait()
        # The pipes close with their last writer; what is still unread after a second is dropped.
        deadline = time.monotonic() + 1.0
        for service in services:
            if service.reader is not None:
                service.reader.join(timeout=max(0.0, deadline - time.monotonic()))
