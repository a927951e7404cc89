"""docker-compose.yml runs the same Celery app and settings module as the Makefile."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _makefile_value(name: str) -> str:
    match = re.search(rf"^(?:export )?{name}\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert match, f"{name} not set in the Makefile"
    return match.group(1)


def test_compose_services_match_the_makefile() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis"} <= set(services)
    celery_app = _makefile_value("CELERY_APP")
    settings_module = _makefile_value("DJANGO_SETTINGS_MODULE")
    for name in ("web", "worker", "beat"):
        assert services[name]["environment"]["DJANGO_SETTINGS_MODULE"] == settings_module
        assert "DATABASE_URL" in services[name]["environment"]
        assert "REDIS_URL" in services[name]["environment"]
    assert services["worker"]["command"].startswith(f"celery -A {celery_app} worker")
    assert services["beat"]["command"].startswith(f"celery -A {celery_app} beat")
    assert "gunicorn config.wsgi:application" in services["web"]["command"]
    makefile = (ROOT / "Makefile").read_text()
    assert "celery -A $(CELERY_APP) worker" in makefile
    assert "celery -A $(CELERY_APP) beat" in makefile
    assert "healthcheck" in services["postgres"]
    assert services["postgres"]["volumes"]
