"""Settings resolve to the embedded stack by default, to PostgreSQL and Redis from the env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'], "
    "'broker': settings.CELERY_BROKER_URL, 'debug': settings.DEBUG, "
    "'cache': settings.CACHES['default']['BACKEND'], "
    "'sqlite_options': settings.DATABASES['default'].get('OPTIONS', {})}))"
)


# Variables that would leak this process's configuration into the probed one; the browser
# fixtures set DJANGO_ALLOW_ASYNC_UNSAFE for this process only.
_NOT_INHERITED = frozenset(
    {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_ENV", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _NOT_INHERITED}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env.update(extra)
    return env


def _run(code_or_args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *code_or_args], cwd=ROOT, env=_clean_env(**env),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_embedded_default_needs_no_servers() -> None:
    result = _run(["-c", PROBE])
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    assert resolved["engine"] == "django.db.backends.sqlite3"
    assert resolved["broker"] == "filesystem://"
    assert resolved["debug"] is True
    assert "journal_mode=WAL" in resolved["sqlite_options"]["init_command"]
    assert resolved["sqlite_options"]["timeout"] >= 5


def test_environment_switches_to_postgres_and_redis() -> None:
    result = _run(
        ["-c", PROBE],
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/peergrid",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    assert resolved["engine"] == "django.db.backends.postgresql"
    assert resolved["broker"] == "redis://127.0.0.1:6379/0"
    assert resolved["cache"].endswith("RedisCache")


def test_production_refuses_to_start_without_secret_key() -> None:
    result = _run(["-c", PROBE], DJANGO_ENV="production", ALLOWED_HOSTS="peergrid.example")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_passes_the_deployment_checklist() -> None:
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        DJANGO_ENV="production",
        SECRET_KEY="a-long-random-production-secret-" + "x" * 40,
        ALLOWED_HOSTS="peergrid.example",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_bad_boolean_is_a_clear_error(value: str) -> None:
    result = _run(["-c", PROBE], DEBUG=value)
    assert result.returncode != 0
    assert "DEBUG must be true or false" in result.stderr
