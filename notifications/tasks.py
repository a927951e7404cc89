"""Thin Celery tasks: build and deliver the notifications of one event."""

from __future__ import annotations

from celery import shared_task

from notifications.events import TASK_NAME, Event
from notifications.services import notification_event_handle


@shared_task(
    name=TASK_NAME,
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=10,
    max_retries=5,
    ignore_result=True,
)
def notification_event_task(event: str, object_id: int) -> int:
    """Idempotent: a message already delivered is not delivered again (unique event key)."""
    return notification_event_handle(event=Event(event), object_id=object_id)


@shared_task(name="notifications.statements_due", acks_late=True, ignore_result=True)
def statements_due_task() -> int:
    """Beat, daily: last month's statements, once per member and month."""
    return notification_event_handle(event=Event.STATEMENTS_DUE, object_id=0)
