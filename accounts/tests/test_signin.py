"""Sign-in throttling: 5 failures for an email or IP within 15 minutes lock it for 15 minutes."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import signin
from accounts.models import AuditEvent
from accounts.tests import factories
from conftest import requires_postgres

pytestmark = pytest.mark.django_db

LOCKED = "Too many failed sign-ins"
ROOT = Path(__file__).resolve().parents[2]


def _sign_in(client: Client, email: str, password: str, ip: str = "10.0.0.1") -> Any:
    return client.post(
        reverse("accounts:login"), {"username": email, "password": password}, REMOTE_ADDR=ip
    )


def test_five_failures_lock_the_email_for_fifteen_minutes() -> None:
    user = factories.UserFactory.create()
    client = Client()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for _ in range(5):
            response = _sign_in(client, user.email, "wrong password")
            assert response.status_code == 200
        # Even the right password is refused while locked, from any IP.
        response = _sign_in(client, user.email, factories.PASSWORD, ip="10.9.9.9")
        assert response.status_code == 200
        assert LOCKED in response.content.decode()
        assert "15 minutes" in response.content.decode()
    with time_machine.travel(start + dt.timedelta(minutes=15, seconds=1), tick=False):
        response = _sign_in(client, user.email, factories.PASSWORD, ip="10.9.9.9")
        assert response.status_code == 302
    assert AuditEvent.objects.filter(kind="auth.sign_in_failed").count() == 6
    reasons = list(AuditEvent.objects.values_list("detail__reason", flat=True))
    assert reasons.count("throttled") == 1


def test_failures_spread_beyond_the_window_do_not_lock() -> None:
    user = factories.UserFactory.create()
    client = Client()
    start = timezone.now()
    for minute in range(0, 80, 16):
        with time_machine.travel(start + dt.timedelta(minutes=minute), tick=False):
            _sign_in(client, user.email, "wrong password")
    with time_machine.travel(start + dt.timedelta(minutes=81), tick=False):
        assert _sign_in(client, user.email, factories.PASSWORD).status_code == 302


def test_one_ip_guessing_many_emails_is_locked() -> None:
    user = factories.UserFactory.create()
    client = Client()
    for number in range(5):
        _sign_in(client, f"nobody{number}@example.test", "guess", ip="10.6.6.6")
    response = _sign_in(client, user.email, factories.PASSWORD, ip="10.6.6.6")
    assert LOCKED in response.content.decode()
    assert _sign_in(client, user.email, factories.PASSWORD, ip="10.1.1.1").status_code == 302


def test_success_clears_the_emails_failures() -> None:
    user = factories.UserFactory.create()
    client = Client()
    for _ in range(4):
        _sign_in(client, user.email, "wrong", ip="10.0.0.2")
    assert _sign_in(client, user.email, factories.PASSWORD, ip="10.0.0.3").status_code == 302
    client.logout()
    for _ in range(4):
        _sign_in(client, user.email, "wrong", ip="10.0.0.4")
    assert _sign_in(client, user.email, factories.PASSWORD, ip="10.0.0.5").status_code == 302


def test_admin_sign_in_is_throttled_too() -> None:
    user = factories.UserFactory.create(is_staff=True, is_superuser=True)
    client = Client()
    url = reverse("admin:login")
    for _ in range(5):
        client.post(url, {"username": user.email, "password": "wrong"}, REMOTE_ADDR="10.0.0.7")
    response = client.post(
        url, {"username": user.email, "password": factories.PASSWORD}, REMOTE_ADDR="10.0.0.8"
    )
    assert LOCKED in response.content.decode()


@requires_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_guesses_never_check_more_passwords_than_the_limit() -> None:
    user = factories.UserFactory.create()
    racers = 16
    barrier = threading.Barrier(racers)
    statuses: list[int] = []
    lock = threading.Lock()

    def guess(number: int) -> None:
        try:
            barrier.wait()
            # Each from its own IP, so only the email's limit holds them back.
            response = _sign_in(Client(), user.email, f"guess {number}", ip=f"10.7.0.{number}")
        finally:
            connection.close()
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * racers
    reasons = list(
        AuditEvent.objects.filter(kind="auth.sign_in_failed").values_list(
            "detail__reason", flat=True
        )
    )
    checked = [reason for reason in reasons if reason != "throttled"]
    assert len(checked) <= signin.MAX_FAILURES, reasons
    assert len(reasons) == racers
    # And the email is locked now, even for the right password.
    assert LOCKED in _sign_in(Client(), user.email, factories.PASSWORD).content.decode()


# Each process takes slots for one email as fast as it can, all starting at the same moment.
_RACER = """
import os, sys, time
import django
django.setup()
from accounts import signin
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.001)
allowed = [signin.attempt_begin(email="racer@example.test", ip_address=None) for _ in range(12)]
print(sum(allowed))
"""
# The table as the migration makes it on SQLite (a fresh file, not the test database).
_TABLE = (
    "CREATE TABLE accounts_ratecounter (id integer NOT NULL PRIMARY KEY AUTOINCREMENT, "
    '"key" varchar(100) NOT NULL UNIQUE, "count" integer NOT NULL, expires_at real NOT NULL)'
)


def test_racing_processes_on_the_embedded_sqlite_take_no_more_slots_than_the_limit(
    tmp_path: Path,
) -> None:
    """The embedded default: separate processes (web server workers) on one SQLite file."""
    env = {**os.environ, "PEERGRID_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE":
           "config.settings", "PYTHONPATH": str(ROOT)}  # fmt: skip
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    with sqlite3.connect(tmp_path / "peergrid.sqlite3") as database:
        database.execute("PRAGMA journal_mode=WAL")
        database.execute(_TABLE)
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(go)], env=env, cwd=ROOT,
            stdout=subprocess.PIPE, text=True,
        )
        for _ in range(3)
    ]  # fmt: skip
    for racer in racers:  # every racer has started Django: then they all go at once
        assert racer.stdout is not None
        assert racer.stdout.readline().strip() == "ready"
    go.touch()
    allowed = [int(racer.communicate(timeout=300)[0]) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    # 36 attempts raced for the email's slots: exactly the limit got one.
    assert sum(allowed) == signin.MAX_FAILURES, allowed


def test_a_counter_starts_again_once_it_expired() -> None:
    now = 1_000_000.0
    assert signin._increment("k", ttl=10, now=now) == 1
    assert signin._increment("k", ttl=10, now=now + 5) == 2
    assert signin._increment("k", ttl=10, now=now + 10) == 1  # expired at now + 10
    assert signin._count("k", now + 12) == 1
    assert signin.rate_counters_expire(now=now + 25) == 1
