"""The market events members are told about, and the one call services make to announce one.

A service calls ``announce(Event.X, object_id)`` inside its transaction; the Celery task that
builds and delivers the messages is queued only when that transaction commits, so nobody is
told about a bid that was rolled back, and the request never waits for an e-mail server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from enum import StrEnum

from django.db import transaction

from config.celery import app as celery_app

logger = logging.getLogger(__name__)
TASK_NAME = "notifications.event"
MANY_TASK_NAME = "notifications.events"  # one event of many objects


class Event(StrEnum):
    MEMBERSHIP_APPROVED = "membership_approved"  # a membership id
    METER_POINT_APPROVED = "meter_point_approved"  # a meter point id: tell its member
    BID_RECEIVED = "bid_received"  # a bid id: tell the poster
    BID_ACCEPTED = "bid_accepted"  # a bid id: tell the bidder
    BID_REJECTED = "bid_rejected"  # a bid id: tell the bidder
    INTERVAL_CLEARED = "interval_cleared"  # bids accepted automatically at gate closure
    INTERVAL_CONFIRMED = "interval_confirmed"  # trades the grid check curtailed
    INTERVAL_SETTLED = "interval_settled"  # each settled member
    STATEMENTS_DUE = "statements_due"  # the last month's statements (beat, daily; id 0)


def announce(event: Event, object_id: int) -> None:
    """Queue the notifications of ``event`` for after the current transaction commits."""
    transaction.on_commit(lambda: _send(event, object_id))


def announce_many(event: Event, object_ids: Iterable[int]) -> None:
    """``announce`` for many objects of one event (the pipeline's steps for a clock step's
    intervals at once): one task for all of them, queued after the transaction commits. A
    replayed month is 288,000 intervals for a hundred communities; a message per interval and
    event was more of the replay's time than clearing them."""
    ids = list(object_ids)
    if ids:
        transaction.on_commit(lambda: _send_many(event, ids))


def _send_many(event: Event, object_ids: list[int]) -> None:
    try:
        celery_app.send_task(MANY_TASK_NAME, args=[str(event), object_ids])
    except Exception:  # as in ``_send``: the write is committed
        logger.exception("notifications: could not queue %s for %s objects", event, len(object_ids))


def _send(event: Event, object_id: int) -> None:
    # By the task's name: the services that announce (accounts' too) never import what builds
    # the messages, which reads the market and the ledger.
    try:
        celery_app.send_task(TASK_NAME, args=[str(event), object_id])
    except Exception:  # the market's write is committed; a lost message must not undo it
        logger.exception("notifications: could not queue %s %s", event, object_id)
