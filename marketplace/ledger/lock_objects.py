"""The one lock that serialises appends to the ledger's hash chain.

It is taken last, after any marketplace locks (``marketplace/lock_objects.py``: interval, meter
points, postings, bids), so the fixed lock order there still holds and nothing can deadlock on it.
"""

from __future__ import annotations

from django.db import connection

# A fixed 64-bit key for PostgreSQL's transaction-level advisory lock ("PGLEDGER" in ASCII).
LEDGER_CHAIN_LOCK_KEY = 0x50474C4544474552


def lock_ledger_chain() -> None:
    """Hold the chain head until the surrounding transaction ends.

    On PostgreSQL an advisory lock, so two settlements cannot read the same chain head and fork
    it (the unique ``prev_hash`` would refuse the second one anyway, but as an error, not a wait).
    On SQLite every transaction is opened IMMEDIATE (see settings), which already serialises all
    writers, so there is nothing more to take.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("lock_ledger_chain() must run inside a transaction")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LEDGER_CHAIN_LOCK_KEY])
