"""The hash chain's canonical serialisation: pure functions, shared by posting and verifying."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal


@dataclass(frozen=True)
class EntryContent:
    """Everything an entry's hash covers, apart from the previous hash."""

    sequence: int
    transaction_id: int
    account_id: int
    kind: str
    amount: Decimal
    energy_kwh: Decimal | None
    price_per_kwh: Decimal | None
    interval_id: int | None
    memo: str
    created_at: datetime


def _fixed(value: Decimal | None, places: int) -> str | None:
    # Fixed places, so "1.5" and "1.50" (as two databases may return them) hash the same.
    return None if value is None else f"{value:.{places}f}"


def canonical(content: EntryContent) -> str:
    """A stable JSON text of the content: sorted keys, no spaces, decimals as fixed strings."""
    return json.dumps(
        {
            "sequence": content.sequence,
            "transaction": content.transaction_id,
            "account": content.account_id,
            "kind": content.kind,
            "amount": _fixed(content.amount, 2),
            "energy_kwh": _fixed(content.energy_kwh, 3),
            "price_per_kwh": _fixed(content.price_per_kwh, 4),
            "interval": content.interval_id,
            "memo": content.memo,
            "created_at": content.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def entry_hash(content: EntryContent, prev_hash: str) -> str:
    """sha256 of the previous hash and the canonical content: editing either changes it."""
    return hashlib.sha256(f"{prev_hash}\n{canonical(content)}".encode()).hexdigest()
