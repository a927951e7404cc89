"""Plausibility of meter readings: refused when impossible, flagged when a jump; a flagged reading
settles nothing until a manager accepts it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.errors import ErrorCode
from marketplace.ledger.models import MeterReading, ReadingSource, ReadingStatus, Settlement
from marketplace.ledger.plausibility import MIN_HISTORY, Outcome, reading_check
from marketplace.ledger.services import interval_settle, meter_reading_accept
from marketplace.ledger.services.readings import meter_readings_submit
from marketplace.ledger.tests.conftest import AFTER_WINDOW, after_end, meter_operator, reading
from marketplace.models import Interval
from marketplace.tests.factories import Member

QUARTER = Decimal("0.25")
energies = st.decimals(min_value=Decimal("0"), max_value=Decimal("1000"), places=3)
capacities = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("30"), places=3)
histories = st.lists(st.tuples(energies, energies), max_size=120)


@given(imported=energies, exported=energies, cap_in=capacities, cap_out=capacities, h=histories)
def test_nothing_beyond_the_capacity_ever_passes(
    imported: Decimal, exported: Decimal, cap_in: Decimal, cap_out: Decimal, h: list
) -> None:
    finding = reading_check(
        imported_kwh=imported,
        exported_kwh=exported,
        import_capacity_kw=cap_in,
        export_capacity_kw=cap_out,
        hours=QUARTER,
        history=h,
    )
    beyond = imported > (cap_in * QUARTER).quantize(Decimal("0.001")) or exported > (
        cap_out * QUARTER
    ).quantize(Decimal("0.001"))
    if beyond:
        assert finding is not None
        assert (finding.outcome, finding.code) == (Outcome.REFUSED, ErrorCode.OVER_CAPACITY)
    elif finding is not None:  # within capacity: only ever a flag, never a refusal
        assert (finding.outcome, finding.code) == (Outcome.FLAGGED, ErrorCode.READING_JUMP)


@given(value=st.decimals(max_value=Decimal("-0.001"), min_value=Decimal("-1e6"), places=3))
def test_a_negative_reading_is_refused(value: Decimal) -> None:
    finding = reading_check(
        imported_kwh=value,
        exported_kwh=Decimal("0"),
        import_capacity_kw=Decimal("30"),
        export_capacity_kw=Decimal("30"),
        hours=QUARTER,
        history=[],
    )
    assert finding is not None
    assert (finding.outcome, finding.code) == (Outcome.REFUSED, ErrorCode.NEGATIVE_READING)


def _check(exported: str, history: list) -> object:
    return reading_check(
        imported_kwh=Decimal("0"),
        exported_kwh=Decimal(exported),
        import_capacity_kw=Decimal("20"),
        export_capacity_kw=Decimal("20"),
        hours=QUARTER,
        history=history,
    )


def test_a_jump_needs_a_days_history_and_a_real_size() -> None:
    quiet = [(Decimal("0.1"), Decimal("0.2"))] * MIN_HISTORY
    flagged = _check("4.000", quiet)  # 20x the highest export, 80 % of the connection
    assert flagged is not None
    assert (flagged.outcome, flagged.code) == (Outcome.FLAGGED, ErrorCode.READING_JUMP)  # type: ignore[attr-defined]
    assert "0.2" in flagged.reason  # type: ignore[attr-defined]
    assert _check("4.000", quiet[:-1]) is None  # a new meter has no history to jump against
    assert _check("0.800", quiet) is None  # 4x, not above it
    assert _check("1.000", [(Decimal("0"), Decimal("0"))] * MIN_HISTORY) is None  # small values


def _history(alice: Member, interval: Interval) -> None:
    """A day of quiet readings before the test intervals."""
    rules = interval.rules
    past = [
        Interval(
            community=interval.community,
            rules=rules,
            start=interval.start - timedelta(minutes=15 * k),
            end=interval.start - timedelta(minutes=15 * (k - 1)),
            gate_closure_at=interval.start - timedelta(minutes=15 * k + 5),
            state="settled",
        )
        for k in range(1, MIN_HISTORY + 1)
    ]
    Interval.objects.bulk_create(past)
    MeterReading.objects.bulk_create(
        MeterReading(
            meter_point=alice.meter_point,
            interval=i,
            imported_kwh=Decimal("0.100"),
            exported_kwh=Decimal("0.200"),
            source=ReadingSource.CSV,
        )
        for i in Interval.objects.filter(community=interval.community, start__lt=interval.start)
    )


def test_a_flagged_reading_settles_only_once_a_manager_accepts_it(interval, alice, manager):
    _history(alice, interval)
    report = meter_readings_submit(
        submitted_by=meter_operator(alice),
        readings=[{**reading(alice, "0", "4.000"), "interval": interval.pk}],
        now=after_end(interval),
    )
    (row,) = report.rows
    assert (row.accepted, row.flagged, row.code) == (True, True, "reading_jump")
    stored = MeterReading.objects.get(pk=row.reading_id or 0)
    assert stored.status == ReadingStatus.FLAGGED
    assert "history" in stored.flag_reason

    # Not counted: the interval settles on the schedule (nothing traded) as if it were missing.
    assert interval_settle(interval=interval, now=interval.end + AFTER_WINDOW).settled
    settled = Settlement.objects.get(interval=interval, membership=alice.membership)
    assert (settled.metered_export_kwh, settled.estimated) == (Decimal("0"), True)

    with pytest.raises(Exception, match="manager"):
        meter_reading_accept(reading=stored, accepted_by=alice.membership.user)
    accepted = meter_reading_accept(reading=stored, accepted_by=manager)
    assert len(accepted.adjustment_ids) == 1  # the feed-in for 4 kWh, booked as an adjustment
    stored.refresh_from_db()
    assert (stored.status, stored.reviewed_by) == (ReadingStatus.ACCEPTED, manager)
