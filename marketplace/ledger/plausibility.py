"""Plausibility checks every meter reading passes before it can settle money: plain functions.

A reading is refused when it cannot be true of the connection (negative, or more energy than
the approved capacity can carry in the interval) and flagged when it is possible but far above
what this meter has measured before: a flagged reading is stored with its reason and settles
nothing until a manager accepts it (``meter_reading_accept``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from config.errors import ErrorCode
from units import KWH

# A jump: more than JUMP_FACTOR times the highest value of the meter's recent history, once it
# has at least MIN_HISTORY readings, and above JUMP_FLOOR_SHARE of what the connection can carry
# in the interval (small values are never a jump: a cloudy week followed by sun is not fraud).
JUMP_FACTOR = Decimal("4")
JUMP_FLOOR_SHARE = Decimal("0.25")
MIN_HISTORY = 96  # a day of quarter-hours: a new PV meter's first sunrise is no jump
HISTORY_READINGS = 672  # a week of quarter-hours


class Outcome(StrEnum):
    REFUSED = "refused"
    FLAGGED = "flagged"


@dataclass(frozen=True, slots=True)
class ReadingHistory:
    """What the checks use of a meter's recent accepted readings: how many, and the highest of
    each column (a database can compute it without sending the readings themselves)."""

    count: int
    highest_imported_kwh: Decimal
    highest_exported_kwh: Decimal

    @classmethod
    def of(cls, rows: Sequence[tuple[Decimal, Decimal]]) -> ReadingHistory:
        """The summary of (imported, exported) readings."""
        zero = Decimal("0")
        return cls(
            count=len(rows),
            highest_imported_kwh=max((row[0] for row in rows), default=zero),
            highest_exported_kwh=max((row[1] for row in rows), default=zero),
        )


@dataclass(frozen=True, slots=True)
class Finding:
    outcome: Outcome
    code: ErrorCode
    reason: str


def jump_floor_kwh(capacity_kw: Decimal, hours: Decimal) -> Decimal:
    """At or below this a value is never a jump, whatever the meter's history."""
    return (capacity_kw * hours * JUMP_FLOOR_SHARE).quantize(KWH)


def history_matters(
    *,
    imported_kwh: Decimal,
    exported_kwh: Decimal,
    import_capacity_kw: Decimal,
    export_capacity_kw: Decimal,
    hours: Decimal,
) -> bool:
    """Could the meter's history change ``reading_check``'s answer for this reading? Only a
    value above its jump floor is compared with the history, so a caller may skip reading the
    history of the others (their check is the same with an empty one)."""
    return imported_kwh > jump_floor_kwh(import_capacity_kw, hours) or exported_kwh > (
        jump_floor_kwh(export_capacity_kw, hours)
    )


def reading_check(
    *,
    imported_kwh: Decimal,
    exported_kwh: Decimal,
    import_capacity_kw: Decimal,
    export_capacity_kw: Decimal,
    hours: Decimal,
    history: Sequence[tuple[Decimal, Decimal]] | ReadingHistory,
) -> Finding | None:
    """The first thing wrong with a reading, or None if it may settle.

    ``history``: the meter's recent accepted (imported, exported) readings, newest first, or
    their ``ReadingHistory``.
    """
    summary = history if isinstance(history, ReadingHistory) else ReadingHistory.of(history)
    for name, value in (("imported_kwh", imported_kwh), ("exported_kwh", exported_kwh)):
        if value < 0:
            return Finding(
                Outcome.REFUSED,
                ErrorCode.NEGATIVE_READING,
                f"{name} must not be negative ({value}).",
            )
    checks = (
        ("imported_kwh", imported_kwh, import_capacity_kw, summary.highest_imported_kwh),
        ("exported_kwh", exported_kwh, export_capacity_kw, summary.highest_exported_kwh),
    )
    for name, value, capacity_kw, _ in checks:
        limit = (capacity_kw * hours).quantize(KWH)
        if value > limit:
            return Finding(
                Outcome.REFUSED,
                ErrorCode.OVER_CAPACITY,
                f"{name} {value} is beyond the meter point's approved capacity "
                f"({capacity_kw} kW x {hours.normalize()} h = {limit} kWh).",
            )
    if summary.count < MIN_HISTORY:
        return None
    for name, value, capacity_kw, highest in checks:
        floor = jump_floor_kwh(capacity_kw, hours)
        if value > floor and value > highest * JUMP_FACTOR:
            return Finding(
                Outcome.FLAGGED,
                ErrorCode.READING_JUMP,
                f"{name} {value} jumps above this meter's history (at most {highest} kWh in its "
                f"last {summary.count} readings); it settles once a manager accepts it.",
            )
    return None
