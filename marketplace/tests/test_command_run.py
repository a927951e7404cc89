"""`make run`'s supervisor in a real terminal: start, healthy, Ctrl-C, nothing left, exit 0.

The test drives the real Makefile target in a pseudo-terminal (so Ctrl-C is the terminal's
interrupt character, sent to the foreground process group exactly as a person's keystroke is),
with the demo seeding skipped (`make -o seed`) and the test database in place of `var/`.
Every process the run starts inherits a private queue name; afterwards no process on the
machine may still carry it.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import socket
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

pytestmark = [pytest.mark.worker]
ROOT = Path(settings.BASE_DIR)
STOP_WITHIN_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes_carrying(marker: str) -> list[int]:
    """Pids whose environment holds `marker` (the run's private queue), pool processes too."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or another user's
            continue
    return found


class Terminal:
    """`make run` on a pseudo-terminal; collects what it prints."""

    def __init__(self, port: int, env: dict[str, str]) -> None:
        self.output = b""
        self.exited = False
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: make, with the pty as its controlling terminal
            os.chdir(ROOT)
            os.execvpe("make", ["make", "-o", "seed", "run", f"PORT={port}"], env)  # noqa: S606

    def read_until(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output and time.monotonic() < deadline:
            if not self._read(0.2):
                break
        return text.encode() in self.output

    def _read(self, wait: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], wait)
        if ready:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # the other side closed: everyone exited
                return False
            if not chunk:
                return False
            self.output += chunk
        return True

    def interrupt_and_wait(self, timeout: float) -> tuple[int | None, float]:
        """Ctrl-C; returns make's exit status (None if still running) and the seconds taken."""
        started = time.monotonic()
        os.write(self.fd, b"\x03")
        while time.monotonic() - started < timeout:
            self._read(0.1)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exited = True
                while self._read(0.05):
                    pass
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status), time.monotonic() - started
        return None, time.monotonic() - started

    def text(self) -> str:
        return self.output.decode(errors="replace")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_starts_and_ctrl_c_stops_all_three(transactional_db: None) -> None:
    marker = f"peergrid-run-test-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, PEERGRID_QUEUE=marker)
    # Run it as a person at a terminal would, not as a sub-make of `make test` (which would
    # print "Entering directory" before the supervisor's first line).
    for variable in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS"):
        env.pop(variable, None)
    env["PEERGRID_DATABASE_NAME"] = str(connection.settings_dict["NAME"])
    port = free_port()
    for attempt in ("first", "second"):
        terminal = Terminal(port, env)
        try:
            assert terminal.read_until("PeerGrid is ready at", timeout=90), terminal.text()
            first_line = terminal.text().strip().splitlines()[0]
            assert first_line.startswith(f"PeerGrid at http://127.0.0.1:{port}/"), first_line
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                assert r.status == 200
            # The worker's pool is up too, so its processes are part of what must stop.
            assert terminal.read_until(" ready.", timeout=60), terminal.text()
            assert "beat   | " in terminal.text()
            assert processes_carrying(marker), "the three processes should carry the marker"
            status, seconds = terminal.interrupt_and_wait(timeout=STOP_WITHIN_S + 5)
        finally:
            if not terminal.exited:
                os.kill(terminal.pid, 9)
                os.waitpid(terminal.pid, 0)
        assert status == 0, f"{attempt} run exited with {status}:\n{terminal.text()[-4000:]}"
        assert seconds < STOP_WITHIN_S, f"{attempt} run took {seconds:.1f} s to stop"
        assert "Stopped web, worker and beat." in terminal.text()
        assert "Error" not in terminal.text().split("Stopping web, worker and beat")[-1]
        assert processes_carrying(marker) == [], f"left behind after the {attempt} run"
