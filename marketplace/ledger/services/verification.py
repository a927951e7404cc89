"""Walking the hash chain: recompute every entry's keyed hash, check the links, hold the chain
against the latest signed checkpoint and check that every transaction sums to zero."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction

from marketplace.ledger.chain import Checkpoint, EntryContent, entry_hash
from marketplace.ledger.checkpoints import checkpoint_evidence
from marketplace.ledger.keys import ledger_key
from marketplace.ledger.models import GENESIS_HASH, LedgerEntry, LedgerProblem, LedgerVerification
from marketplace.models import Community

_FIELDS = (
    "pk", "sequence", "transaction_id", "account_id", "kind", "amount", "energy_kwh",
    "price_per_kwh", "interval_id", "memo", "created_at", "prev_hash", "hash",
)  # fmt: skip


@dataclass
class _Finding:
    problem: LedgerProblem
    reason: str
    row: dict[str, Any] | None = None


def _signed(row: dict[str, Any], key: bytes) -> bool:
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
    return entry_hash(content, row["prev_hash"], key) == row["hash"]


def _unsigned(
    row: dict[str, Any], next_row: dict[str, Any] | None, head: int, key: bytes
) -> _Finding:
    """Name an entry whose content does not match its keyed hash, looking at its successor."""
    if row["sequence"] > head:
        return _Finding(
            LedgerProblem.FORGED_APPEND,
            "it comes after the last checkpoint and is not signed with the ledger key "
            "(a forged append)",
            row,
        )
    if next_row is not None and next_row["prev_hash"] == row["hash"] and not _signed(next_row, key):
        # An edit leaves the successor intact; a rewrite re-hashes it too, without the key.
        return _Finding(
            LedgerProblem.REWRITTEN,
            "the chain was rewritten from this entry on without the ledger key "
            "(its hash does not match its content)",
            row,
        )
    return _Finding(
        LedgerProblem.EDITED, "its content does not match its hash (the entry was edited)", row
    )


def _against_checkpoint(
    checkpoint: Checkpoint, *, head_row: dict[str, Any] | None, last_sequence: int
) -> _Finding | None:
    """Does the chain still reach the checkpoint's head, and end there as it did then?"""
    recorded = (
        f"the checkpoint of {checkpoint.at:%Y-%m-%d %H:%M:%S} UTC recorded "
        f"{checkpoint.entry_count} entries up to sequence {checkpoint.head_sequence}"
    )
    if last_sequence == 0:
        return _Finding(LedgerProblem.TRUNCATED, f"the ledger is empty but {recorded}")
    if head_row is None:
        return _Finding(
            LedgerProblem.TAIL_DELETED,
            f"the chain ends at sequence {last_sequence} but {recorded} (entries were deleted)",
        )
    if head_row["hash"] != checkpoint.head_hash:
        return _Finding(
            LedgerProblem.REWRITTEN,
            f"the entry at sequence {checkpoint.head_sequence} is not the one the checkpoint "
            f"signed (the chain was rewritten)",
            head_row,
        )
    return None


def ledger_verify(*, community: Community | None = None) -> LedgerVerification:
    """Walk the chain, record and return the result (the first problem found, named).

    Without a community, the whole chain in sequence order, then its count and credit total up to
    the latest signed checkpoint (from the table or the checkpoint file, whichever reaches
    further). With one, that community's entries, each checked against its own hash and its
    predecessor's stored hash (which may belong to another community; that community's walk
    checks its content), and the checkpoint's head. Then every transaction of the scope must
    sum to zero. Reads only, apart from the one verification row it records.
    """
    key = ledger_key()
    evidence = checkpoint_evidence()
    checkpoint = evidence.latest
    head = checkpoint.head_sequence if checkpoint else 0
    entries = LedgerEntry.objects.order_by("sequence").values(*_FIELDS)
    if community is not None:
        entries = entries.filter(account__community=community)
    checked = 0
    count_to_head = 0
    credits_to_head = Decimal(0)
    finding: _Finding | None = None
    pending: dict[str, Any] | None = None  # an unsigned entry, named once its successor is seen
    previous: dict[str, Any] | None = None
    # Summed here rather than by the database: SQLite would add the decimals as floats.
    totals: dict[int, Decimal] = defaultdict(Decimal)
    first_of: dict[int, dict[str, Any]] = {}
    for row in entries.iterator(chunk_size=2000):
        if pending is not None:
            finding = _unsigned(pending, row, head, key)
            break
        checked += 1
        totals[row["transaction_id"]] += row["amount"]
        first_of.setdefault(row["transaction_id"], row)
        if row["sequence"] <= head:
            count_to_head += 1
            credits_to_head += max(row["amount"], Decimal(0))
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
        if row["prev_hash"] != expected_prev:
            beyond = row["sequence"] > head
            finding = _Finding(
                LedgerProblem.FORGED_APPEND if beyond else LedgerProblem.LINK_BROKEN,
                "its prev_hash is not the previous entry's hash (an entry was removed or inserted)",
                row,
            )
            break
        if not _signed(row, key):
            pending = row
            continue
        previous = row
    if finding is None and pending is not None:
        finding = _unsigned(pending, None, head, key)
    if finding is None and checkpoint is not None:
        head_row = (
            LedgerEntry.objects.filter(sequence=checkpoint.head_sequence).values(*_FIELDS).first()
        )
        last = LedgerEntry.objects.order_by("-sequence").values_list("sequence", flat=True).first()
        finding = _against_checkpoint(checkpoint, head_row=head_row, last_sequence=last or 0)
        if (
            finding is None
            and community is None
            and (
                (count_to_head, credits_to_head)
                != (checkpoint.entry_count, checkpoint.credit_total)
            )
        ):
            finding = _Finding(
                LedgerProblem.REWRITTEN,
                f"up to sequence {checkpoint.head_sequence} the chain holds {count_to_head} "
                f"entries crediting {credits_to_head}; the checkpoint signed "
                f"{checkpoint.entry_count} crediting {checkpoint.credit_total}",
            )
    if finding is None and evidence.forged:
        finding = _Finding(LedgerProblem.CHECKPOINT_FORGED, evidence.forged)
    if (
        finding is None
        and evidence.file is not None
        and (evidence.table is None or evidence.table.head_sequence < evidence.file.head_sequence)
    ):
        finding = _Finding(
            LedgerProblem.CHECKPOINT_REMOVED,
            f"the checkpoint file reaches sequence {evidence.file.head_sequence} but the "
            f"database's checkpoints stop "
            + (f"at {evidence.table.head_sequence}" if evidence.table else "before it"),
        )
    if finding is None:
        unbalanced = sorted(pk for pk, total in totals.items() if total != 0)
        if unbalanced:
            finding = _Finding(
                LedgerProblem.UNBALANCED,
                f"its transaction does not sum to zero ({totals[unbalanced[0]]})",
                first_of[unbalanced[0]],
            )
    bad = finding.row if finding else None
    with transaction.atomic():
        return LedgerVerification.objects.create(
            community=community,
            ok=finding is None,
            entries_checked=checked,
            first_bad_entry_id=bad["pk"] if bad else None,
            first_bad_sequence=bad["sequence"] if bad else None,
            reason=finding.reason[:300] if finding else "",
            problem=finding.problem if finding else "",
            checkpoint_sequence=checkpoint.head_sequence if checkpoint else None,
        )
