"""Thin Celery tasks: build and deliver the notifications of one event."""

from __future__ import annotations

from celery import shared_task

from notifications.events import MANY_TASK_NAME, TASK_NAME, Event
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


@shared_task(
    name=MANY_TASK_NAME,
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=10,
    max_retries=5,
    ignore_result=True,
)
def notification_events_task(event: str, object_ids: list[int]) -> int:
    """One event of many objects, each handled as ``notification_event_task`` handles one; a
    retry after a failure handles them all again, exactly as retrying each one would."""
    return sum(
        notification_event_handle(event=Event(event), object_id=object_id)
        for object_id in object_ids
    )


@shared_task(name="notifications.statements_due", acks_late=True, ignore_result=True)
def statements_due_task() -> int:
    """Beat, daily: last month's statements, once per member and month."""
    return notification_event_handle(event=Event.STATEMENTS_DUE, object_id=0)
