"""docker-compose.yml: the same Celery app and settings as `make run`, behind a TLS proxy, with a
health check that production settings accept."""

from __future__ import annotations

import gc
import os
import re
import runpy
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from simulation.management.commands.run import CELERY_APP

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"


def _makefile_value(name: str) -> str:
    match = re.search(rf"^(?:export )?{name}\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert match, f"{name} not set in the Makefile"
    return match.group(1)


def test_compose_services_match_the_makefile() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis"} <= set(services)
    celery_app = CELERY_APP
    settings_module = _makefile_value("DJANGO_SETTINGS_MODULE")
    for name in ("web", "worker", "beat"):
        assert services[name]["environment"]["DJANGO_SETTINGS_MODULE"] == settings_module
        assert "DATABASE_URL" in services[name]["environment"]
        assert "REDIS_URL" in services[name]["environment"]
    assert services["worker"]["command"].startswith(f"celery -A {celery_app} worker")
    assert services["beat"]["command"].startswith(f"celery -A {celery_app} beat")
    assert "gunicorn config.wsgi:application" in services["web"]["command"]
    assert "manage.py run " in (ROOT / "Makefile").read_text()  # which starts the same app
    assert "healthcheck" in services["postgres"]
    assert services["postgres"]["volumes"]


def test_web_runs_the_gunicorn_settings_the_load_benchmark_measures() -> None:
    command = yaml.safe_load(COMPOSE.read_text())["services"]["web"]["command"]
    assert "--config deploy/gunicorn.conf.py" in command
    dockerfile_cmd = re.search(r"^CMD (.*)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert dockerfile_cmd, "the Dockerfile has no CMD"
    assert '"--config", "deploy/gunicorn.conf.py"' in dockerfile_cmd.group(1)
    assert '"deploy" / "gunicorn.conf.py"' in (ROOT / "bench" / "bench_api.py").read_text()


def test_gunicorn_workers_follow_the_setting_or_the_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PEERGRID_WEB_WORKERS", "7")
    assert runpy.run_path(str(GUNICORN_CONF))["workers"] == 7
    monkeypatch.setenv("PEERGRID_WEB_WORKERS", "")  # as compose passes it unset
    assert runpy.run_path(str(GUNICORN_CONF))["workers"] == len(os.sched_getaffinity(0)) + 1


def test_a_gunicorn_worker_freezes_what_it_loaded_before_serving() -> None:
    post_worker_init = runpy.run_path(str(GUNICORN_CONF))["post_worker_init"]
    gc.unfreeze()
    try:
        post_worker_init(None)
        # Everything loaded is out of the collector's reach: a full collection does not walk it.
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


# --- Production with docker compose: the TLS proxy and a health check production accepts ----
COMPOSE = ROOT / "docker-compose.yml"
VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` against `env`."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"{name}: {rest}")
        return rest or ""

    return VARIABLE.sub(one, value)


def compose_service_env(service: str, env: dict[str, str]) -> dict[str, str]:
    compose = yaml.safe_load(COMPOSE.read_text())
    raw = compose["services"][service]["environment"]
    return {key: interpolate(str(value), env) for key, value in raw.items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def production_web() -> Iterator[tuple[int, dict[str, str]]]:
    """gunicorn with the web service's environment from docker-compose.yml (production).

    Only the database and Redis addresses are this test run's instead of the compose network's.
    """
    compose_env = compose_service_env(
        "web", {"SECRET_KEY": "compose-test-" + "k" * 50, "PEERGRID_DOMAIN": "peergrid.example"}
    )
    assert compose_env["DJANGO_ENV"] == "production"
    dropped = {"DATABASE_URL", "REDIS_URL", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    env.update(compose_env)
    for name in ("DATABASE_URL", "REDIS_URL"):
        if os.environ.get(name):
            env[name] = os.environ[name]
        else:
            del env[name]  # the embedded default stands in for the compose network's servers
    port = free_port()
    env["PORT"] = str(port)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "config.wsgi:application", "--config", str(GUNICORN_CONF),
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the worker has loaded the app and answers
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).close()
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.2)
        yield port, env
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_compose_health_check_passes_against_production_settings(
    production_web: tuple[int, dict[str, str]],
) -> None:
    port, env = production_web
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    check = services["web"]["healthcheck"]["test"]
    assert check[:2] == ["CMD", "python"]
    result = subprocess.run(
        [sys.executable, *check[2:]], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    # Why the check sends Host and X-Forwarded-Proto: production refuses a bare request.
    def status(headers: dict[str, str]) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers=headers)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    assert status({}) == 400  # 127.0.0.1 is not an allowed host
    assert status({"Host": "peergrid.example"}) == 301  # to https
    assert status({"Host": "peergrid.example", "X-Forwarded-Proto": "https"}) == 200


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_compose_puts_a_tls_proxy_in_front_of_web() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    proxy = services["proxy"]
    assert proxy["image"].startswith("caddy:")
    assert {"80:80", "443:443"} <= set(proxy["ports"])
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"
    assert "ports" not in services["web"], "gunicorn must be reachable only through the proxy"
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "reverse_proxy web:8000" in caddyfile
    assert "tls {$PEERGRID_TLS:internal}" in caddyfile
    assert "--bind 0.0.0.0:8000" in services["web"]["command"]
    env = compose_service_env("web", {"SECRET_KEY": "s", "PEERGRID_DOMAIN": "peergrid.example"})
    assert env["ALLOWED_HOSTS"] == "peergrid.example"
    assert env["CSRF_TRUSTED_ORIGINS"] == "https://peergrid.example"
    with pytest.raises(KeyError, match="SECRET_KEY"):
        compose_service_env("web", {})


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="needs Debian's docker-compose (apt-get install docker-compose); CI installs it",
)
def test_docker_compose_accepts_the_file() -> None:
    def config(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker-compose", "-f", str(COMPOSE), "config", "-q"], cwd=ROOT,
            env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip

    assert config(SECRET_KEY="compose-validation-only").returncode == 0
    refused = config()
    assert refused.returncode != 0
    assert "SECRET_KEY" in refused.stderr
