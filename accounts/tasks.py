"""Accounts' periodic housekeeping (scheduled in ``config.settings.CELERY_BEAT_SCHEDULE``)."""

from __future__ import annotations

import time

from celery import shared_task

from accounts.signin import rate_counters_expire


@shared_task(name="accounts.rate_counters_expire", ignore_result=True)
def rate_counters_expire_task() -> int:
    """Delete the sign-in and password-reset counters and locks that have run out."""
    return rate_counters_expire(now=time.time())
