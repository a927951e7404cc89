"""Ledger checkpoints: written after every posting to a table and to an append-only file.

Both copies are signed with the ledger key (``marketplace.ledger.keys``). The table row is
written in the posting's own transaction, so it is exactly as durable as the entries it
describes; the file line is appended once that transaction has committed, so a rolled-back
posting never leaves a checkpoint for entries that do not exist. The file lives outside the
database (one per database, under ``LEDGER_CHECKPOINT_DIR``): someone who can rewrite every
table, including the checkpoints, still cannot make the file forget how far the chain reached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from marketplace.ledger.chain import Checkpoint, checkpoint_mac, mac_matches
from marketplace.ledger.keys import ledger_key
from marketplace.ledger.models import LedgerCheckpoint, LedgerEntry

logger = logging.getLogger(__name__)


def checkpoint_file() -> Path:
    """This database's checkpoint file: a new database never inherits another's checkpoints."""
    db = connection.settings_dict
    identity = f"{connection.vendor}|{db.get('HOST') or ''}|{db.get('PORT') or ''}|{db['NAME']}"
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(db["NAME"])).name)[:60]
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return Path(settings.LEDGER_CHECKPOINT_DIR) / f"{connection.vendor}-{readable}-{digest}.jsonl"


class ChainEntry(Protocol):
    """What a checkpoint reads of an entry: a stored one or one just appended."""

    @property
    def sequence(self) -> int: ...

    @property
    def hash(self) -> str: ...

    @property
    def amount(self) -> Decimal: ...


def checkpoint_write(*, head: ChainEntry, added: Sequence[ChainEntry], at: datetime) -> None:
    """Record the chain's state after ``added`` were appended ending at ``head``.

    The caller holds the chain lock, so the previous checkpoint is still the latest.
    """
    previous = LedgerCheckpoint.objects.order_by("-head_sequence").first()
    if previous is None:
        # The first checkpoint of a ledger that already had entries counts them once.
        older = LedgerEntry.objects.filter(sequence__lt=added[0].sequence)
        count = older.count()
        positive = older.filter(amount__gt=0).values_list("amount", flat=True)
        credits = sum(positive, Decimal(0))
    else:
        count, credits = previous.entry_count, previous.credit_total
    checkpoint = Checkpoint(
        head_sequence=head.sequence,
        head_hash=head.hash,
        entry_count=count + len(added),
        credit_total=credits + sum((e.amount for e in added if e.amount > 0), Decimal(0)),
        at=at,
    )
    mac = checkpoint_mac(checkpoint, ledger_key())
    LedgerCheckpoint.objects.create(
        at=at,
        head_sequence=checkpoint.head_sequence,
        head_hash=checkpoint.head_hash,
        entry_count=checkpoint.entry_count,
        credit_total=checkpoint.credit_total,
        mac=mac,
    )
    line = json.dumps({**json.loads(checkpoint.canonical()), "mac": mac}, sort_keys=True)
    path = checkpoint_file()
    transaction.on_commit(lambda: _append_line(path, line), robust=True)


def _append_line(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # One write() of one short line with O_APPEND: concurrent workers never interleave lines.
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, (line + "\n").encode())
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class CheckpointEvidence:
    """The latest signed checkpoint from each copy, and whether either holds a forgery."""

    table: Checkpoint | None
    file: Checkpoint | None
    forged: str = ""  # why a checkpoint was refused, when one was

    @property
    def latest(self) -> Checkpoint | None:
        candidates = [c for c in (self.table, self.file) if c is not None]
        return max(candidates, key=lambda c: c.head_sequence, default=None)


def _parse(data: Mapping[str, Any]) -> Checkpoint:
    at = parse_datetime(str(data["at"]))
    if at is None:
        raise ValueError("bad time")
    return Checkpoint(
        head_sequence=int(str(data["head_sequence"])),
        head_hash=str(data["head_hash"]),
        entry_count=int(str(data["entry_count"])),
        credit_total=Decimal(str(data["credit_total"])),
        at=at,
    )


def checkpoint_evidence() -> CheckpointEvidence:
    """Read both copies and check every signature; a bad one is reported, never trusted."""
    key = ledger_key()
    forged = ""
    table_latest: Checkpoint | None = None
    for row in LedgerCheckpoint.objects.order_by("-head_sequence").values()[:1]:
        checkpoint = _parse(row)
        if not mac_matches(checkpoint_mac(checkpoint, key), row["mac"]):
            forged = f"the database checkpoint at sequence {row['head_sequence']} is not signed"
        else:
            table_latest = checkpoint
    file_latest: Checkpoint | None = None
    path = checkpoint_file()
    if path.exists():
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    data = json.loads(text)
                    checkpoint = _parse(data)
                    signed = mac_matches(checkpoint_mac(checkpoint, key), str(data["mac"]))
                except (ValueError, KeyError, TypeError, InvalidOperation):
                    signed = False
                if not signed:
                    forged = forged or f"line {number} of the checkpoint file is not signed"
                    continue
                if file_latest is None or checkpoint.head_sequence > file_latest.head_sequence:
                    file_latest = checkpoint
    return CheckpointEvidence(table=table_latest, file=file_latest, forged=forged)
