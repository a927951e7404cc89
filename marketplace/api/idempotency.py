"""`Idempotency-Key` on POST: a retried request replays the first answer and creates nothing.

Design. The record is keyed by who calls (the token, or the user for a session) and a hash of
the key, so two clients cannot see each other's answers. It holds a fingerprint of the request
(method, path and the parsed body in canonical JSON, so whitespace and key order do not matter),
the status and the response body, for 24 hours, in the database
(``marketplace.services.idempotency``): a cache flush or a Redis restart never turns a retry into
a second order. While the first request runs, the record is a placeholder claimed with one
insert on a unique index, so a concurrent duplicate gets 409 ``idempotency_in_progress``
instead of a second order. A reused key with another body is 409 ``idempotency_key_reused``.

What is stored: every answer the view itself produced, success or domain refusal (a retry of a
refused order is refused the same way). A success is stored in the view's own transaction, so
the order and its answer commit together; a refusal wrote nothing and is stored after. Not
stored: answers before the view ran (401, 403 for a missing scope, 429), so a client may fix
its credentials and retry with the same key; and server errors, whose placeholder is removed
so a retry can run (unless the commit itself failed and may have gone through: then the
placeholder stays until it expires, so the key cannot make a second order).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.db import transaction
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import APIView

from accounts.tokens import TokenAuth
from config.errors import ApplicationError, ErrorCode
from config.transactions import request_transaction
from marketplace.api.schema import IDEMPOTENCY_KEY_MAX_LENGTH, IDEMPOTENCY_KEY_PATTERN
from marketplace.models import IdempotencyRecord
from marketplace.services.idempotency import (
    idempotency_claim,
    idempotency_complete,
    idempotency_release,
    key_digest,
)

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = IDEMPOTENCY_KEY_MAX_LENGTH
# The schema's pattern, applied as written (``fullmatch``: no trailing newline slips through).
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN.removeprefix("^").removesuffix("$"))

Handler = TypeVar("Handler", bound=Callable[..., Response])


class IdempotencyConflictError(ApplicationError):
    """A 409 with its own code, so clients can tell it from a market conflict."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message, field=HEADER)


def caller_of(request: Request) -> str:
    auth = request.auth
    if isinstance(auth, TokenAuth):
        return f"t{auth.token_id}"
    return f"u{request.user.pk}"


def _fingerprint(request: Request) -> str:
    data = request.data  # parsed here; a malformed body is a 400 before any key is touched
    if hasattr(data, "lists"):  # a QueryDict from a form body
        data = dict(data.lists())
    body = json.dumps(data, cls=JSONEncoder, sort_keys=True, separators=(",", ":"))
    text = f"{request.method} {request.path}\n{body}"
    return hashlib.sha256(text.encode()).hexdigest()


def _check_header(raw: str) -> None:
    if not _KEY.fullmatch(raw):
        raise ApplicationError(
            ErrorCode.INVALID_IDEMPOTENCY_KEY,
            f"The {HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters, no spaces.",
            field=HEADER,
        )


class _Unstored(Exception):  # noqa: N818 - a signal, not an error: roll back, answer as given
    def __init__(self, response: Response) -> None:
        self.response = response


def idempotent(handler: Handler) -> Handler:
    """Decorate a view's POST handler (it runs after authentication, permissions, throttles).

    The view runs in one durable transaction (``config.transactions.request_transaction``)
    that the services it calls join, and a successful answer is stored in that same
    transaction: the order and its record commit together. Tasks the services queue run
    after the commit (``transaction.on_commit``), so a broker that refuses them cannot undo
    or hide a committed order, and a retry replays the stored answer.
    """

    @functools.wraps(handler)
    def wrapper(view: APIView, request: Request, *args: Any, **kwargs: Any) -> Response:
        raw = request.headers.get(HEADER)
        if raw is None:
            return handler(view, request, *args, **kwargs)
        _check_header(raw)
        fingerprint = _fingerprint(request)
        claim = idempotency_claim(
            caller=caller_of(request), digest=key_digest(raw), fingerprint=fingerprint
        )
        if claim.record_id is None:
            assert claim.existing is not None
            return _replay(claim.existing, fingerprint)
        record_id = claim.record_id
        state = {"body_done": False, "committed": False}
        response: Response | None = None
        try:
            with request_transaction():
                # Registered first, so it runs first once the commit is through.
                transaction.on_commit(lambda: state.update(committed=True))
                response = handler(view, request, *args, **kwargs)
                if response.status_code >= 400:
                    raise _Unstored(response)
                idempotency_complete(
                    record_id=record_id,
                    status=response.status_code,
                    response=response.data,
                    encoder=JSONEncoder,
                )
                state["body_done"] = True
        except _Unstored as refused:  # rolled back: nothing of it was written
            return _refusal(record_id, refused.response)
        except Exception as exc:
            if state["committed"]:
                # The order and its record are committed; what failed came after (a task that
                # could not be queued). The client gets the answer a retry would replay.
                logger.exception("idempotent request: after-commit step failed")
                assert response is not None
                return response
            if state["body_done"]:
                # The commit itself failed: it may or may not have gone through, so the
                # placeholder stays (it expires in a minute) rather than freeing the key for a
                # second order; a retry meanwhile is told the request is in progress.
                raise
            try:
                rendered = view.handle_exception(exc)
            except Exception:
                idempotency_release(record_id=record_id)  # a server error: a retry runs
                raise
            return _refusal(record_id, rendered)
        return response

    return cast(Handler, wrapper)


def _refusal(record_id: int, response: Response) -> Response:
    """Store a refusal (a retry is refused alike), or free the key after a server error."""
    if response.status_code >= 500:
        idempotency_release(record_id=record_id)
        return response
    idempotency_complete(
        record_id=record_id,
        status=response.status_code,
        response=response.data,
        encoder=JSONEncoder,
    )
    return response


def _replay(stored: IdempotencyRecord, fingerprint: str) -> Response:
    if stored.status is None:
        raise IdempotencyConflictError(
            ErrorCode.IDEMPOTENCY_IN_PROGRESS,
            "A request with this Idempotency-Key is still being processed; retry shortly.",
        )
    if stored.fingerprint != fingerprint:
        raise IdempotencyConflictError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "This Idempotency-Key was used with a different request; use a new key.",
        )
    return Response(stored.response, status=stored.status, headers={REPLAYED_HEADER: "true"})
