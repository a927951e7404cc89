"""The Celery app: configured from Django settings (CELERY_ namespace), tasks autodiscovered."""

from __future__ import annotations

import os

from celery import Celery, shared_task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("peergrid")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@shared_task(name="config.celery.heartbeat")
def heartbeat() -> str:
    """Proves the worker and beat are alive; `healthz` and the tests call it too."""
    return "ok"
