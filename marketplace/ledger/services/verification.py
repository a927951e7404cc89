"""Walking the hash chain: recompute every entry's hash and check the links and the balances."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db import transaction

from marketplace.ledger.chain import EntryContent, entry_hash
from marketplace.ledger.models import GENESIS_HASH, LedgerEntry, LedgerVerification
from marketplace.models import Community

_FIELDS = (
    "pk", "sequence", "transaction_id", "account_id", "kind", "amount", "energy_kwh",
    "price_per_kwh", "interval_id", "memo", "created_at", "prev_hash", "hash",
)  # fmt: skip


def _check(row: dict, expected_prev: str) -> str:
    """Why the entry does not match, or "" when it does."""
    if row["prev_hash"] != expected_prev:
        return "its prev_hash is not the previous entry's hash (an entry was removed or inserted)"
    content = EntryContent(
        sequence=row["sequence"],
        transaction_id=row["transaction_id"],
        account_id=row["account_id"],
        kind=row["kind"],
        amount=row["amount"],
        energy_kwh=row["energy_kwh"],
        price_per_kwh=row["price_per_kwh"],
        interval_id=row["interval_id"],
        memo=row["memo"],
        created_at=row["created_at"],
    )
    if entry_hash(content, row["prev_hash"]) != row["hash"]:
        return "its content does not match its hash (the entry was edited)"
    return ""


def ledger_verify(*, community: Community | None = None) -> LedgerVerification:
    """Walk the chain, record and return the result (the first bad entry, if any).

    Without a community, the whole chain in sequence order. With one, that community's entries,
    each checked against its own hash and its predecessor's stored hash (which may belong to
    another community; that community's walk checks its content). Then every transaction of the
    scope must sum to zero. Reads only, apart from the one verification row it records.
    """
    entries = LedgerEntry.objects.order_by("sequence").values(*_FIELDS)
    if community is not None:
        entries = entries.filter(account__community=community)
    checked = 0
    bad: dict | None = None
    reason = ""
    previous: dict | None = None
    # Summed here rather than by the database: SQLite would add the decimals as floats.
    totals: dict[int, Decimal] = defaultdict(Decimal)
    first_of: dict[int, dict] = {}
    for row in entries.iterator(chunk_size=2000):
        checked += 1
        totals[row["transaction_id"]] += row["amount"]
        first_of.setdefault(row["transaction_id"], row)
        if previous is not None and previous["sequence"] == row["sequence"] - 1:
            expected_prev = previous["hash"]
        elif row["sequence"] == 1:
            expected_prev = GENESIS_HASH
        elif community is None:
            expected_prev = ""  # a gap: the entry before this one is missing
        else:
            expected_prev = (
                LedgerEntry.objects.filter(sequence=row["sequence"] - 1)
                .values_list("hash", flat=True)
                .first()
                or ""
            )
        reason = _check(row, expected_prev)
        if reason:
            bad = row
            break
        previous = row
    if bad is None:
        unbalanced = sorted(pk for pk, total in totals.items() if total != 0)
        if unbalanced:
            bad = first_of[unbalanced[0]]
            reason = f"its transaction does not sum to zero ({totals[unbalanced[0]]})"
    with transaction.atomic():
        return LedgerVerification.objects.create(
            community=community,
            ok=bad is None,
            entries_checked=checked,
            first_bad_entry_id=bad["pk"] if bad else None,
            first_bad_sequence=bad["sequence"] if bad else None,
            reason=reason[:300],
        )
