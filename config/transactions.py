"""One durable transaction per action, which an idempotent API request may widen to include
its idempotency record.

A service that writes money or energy commits once, in ``action_transaction()``: a durable
block, so it is never silently nested in someone else's transaction. The one exception is
``request_transaction()``, which the API's ``Idempotency-Key`` handling opens around the view:
inside it, a service's block joins that transaction (no savepoint: an error raised by the
service leaves through the request's block, which rolls everything back), so the order and the
record of its answer commit together or not at all, and a retry can never find the order
without the answer nor the answer without the order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import transaction

_in_request = ContextVar("peergrid_request_transaction", default=False)


def action_transaction() -> transaction.Atomic:
    """The block a service's writes run in (see the module's docstring)."""
    if _in_request.get():
        return transaction.atomic(savepoint=False)
    return transaction.atomic(durable=True)


@contextmanager
def request_transaction() -> Iterator[None]:
    """A durable transaction the services called inside it join."""
    with transaction.atomic(durable=True):
        token = _in_request.set(True)
        try:
            yield
        finally:
            _in_request.reset(token)
