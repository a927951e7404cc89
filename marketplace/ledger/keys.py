"""The ledger's HMAC key: read from the environment or a key file, never from the database."""

from __future__ import annotations

import contextlib
import os
import secrets
from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MIN_KEY_CHARS = 32


@cache
def ledger_key() -> bytes:
    """The key every entry hash and checkpoint is signed with.

    ``PEERGRID_LEDGER_KEY`` when set; otherwise ``LEDGER_KEY_FILE``, which is created with a
    random key (owner-only permissions) the first time PeerGrid starts without one. Losing the
    key makes the history unverifiable, so it belongs in the operator's secret store and backups,
    kept apart from the database's.
    """
    configured: str = settings.LEDGER_KEY
    if configured:
        if len(configured) < MIN_KEY_CHARS:
            raise ImproperlyConfigured(
                f"PEERGRID_LEDGER_KEY must be at least {MIN_KEY_CHARS} characters long."
            )
        return configured.encode()
    return _key_file(Path(settings.LEDGER_KEY_FILE))


def _key_file(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        # A hard link appears complete or not at all, and refuses to replace a key another
        # process created a moment earlier: the loser of that race reads the winner's key.
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    key = path.read_text().strip()
    if len(key) < MIN_KEY_CHARS:
        raise ImproperlyConfigured(f"The ledger key file {path} is empty or too short.")
    return key.encode()
