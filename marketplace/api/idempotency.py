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
refused order is refused the same way). Not stored: answers before the view ran (401, 403 for a
missing scope, 429), so a client may fix its credentials and retry with the same key; and
server errors, whose placeholder is removed so a retry can run.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import APIView

from accounts.tokens import TokenAuth
from config.errors import ApplicationError, ErrorCode
from marketplace.models import IdempotencyRecord
from marketplace.services.idempotency import (
    idempotency_claim,
    idempotency_complete,
    idempotency_release,
    key_digest,
)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255

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
    if not raw or len(raw) > MAX_KEY_LENGTH or not raw.isprintable():
        raise ApplicationError(
            ErrorCode.INVALID_IDEMPOTENCY_KEY,
            f"The {HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters.",
            field=HEADER,
        )


def idempotent(handler: Handler) -> Handler:
    """Decorate a view's POST handler (it runs after authentication, permissions, throttles)."""

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
        try:
            response = handler(view, request, *args, **kwargs)
        except Exception as exc:  # rendered (and stored) as the client sees it
            try:
                response = view.handle_exception(exc)
            except Exception:
                idempotency_release(record_id=claim.record_id)  # a server error: a retry runs
                raise
        if response.status_code >= 500:
            idempotency_release(record_id=claim.record_id)
            return response
        data = json.loads(json.dumps(response.data, cls=JSONEncoder))
        idempotency_complete(record_id=claim.record_id, status=response.status_code, response=data)
        return response

    return cast(Handler, wrapper)


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
