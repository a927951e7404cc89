"""Market rules versions and validation; opening intervals on the rolling horizon."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from config.errors import ErrorCode
from marketplace.models import Interval, MarketRules
from marketplace.services.intervals import (
    align_up,
    interval_is_open_for_orders,
    intervals_open_horizon,
)
from marketplace.services.rules import market_rules_preview, market_rules_update
from marketplace.tests.factories import T0, new_community
from marketplace.tests.fixtures import refused

D = Decimal


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"interval_minutes": 20}, "interval_minutes", ErrorCode.OUT_OF_RANGE),
        ({"price_floor": D("-0.01")}, "price_floor", ErrorCode.OUT_OF_RANGE),
        ({"price_floor": D("0.5")}, "price_cap", ErrorCode.OUT_OF_RANGE),
        ({"feed_in_tariff": D("0.4")}, "feed_in_tariff", ErrorCode.OUT_OF_RANGE),
        ({"fee_per_kwh": D("-0.001")}, "fee_per_kwh", ErrorCode.OUT_OF_RANGE),
        ({"pricing_k": D("1.1")}, "pricing_k", ErrorCode.OUT_OF_RANGE),
        ({"voltage_min_pu": D("0.7")}, "voltage_min_pu", ErrorCode.OUT_OF_RANGE),
        ({"voltage_max_pu": D("1.25")}, "voltage_max_pu", ErrorCode.OUT_OF_RANGE),
        ({"voltage_min_pu": D("1.1")}, "voltage_max_pu", ErrorCode.OUT_OF_RANGE),
        ({"max_line_loading_percent": D("0")}, "max_line_loading_percent",
         ErrorCode.OUT_OF_RANGE),
        ({"max_trafo_loading_percent": D("200.1")}, "max_trafo_loading_percent",
         ErrorCode.OUT_OF_RANGE),
        ({"gate_closure_lead_minutes": 120}, "gate_closure_lead_minutes", ErrorCode.OUT_OF_RANGE),
        ({"pricing_rule": "k", "clearing_mechanism": "pay-as-bid"}, "pricing_rule",
         ErrorCode.INCONSISTENT_RULES),
        ({"market_structure": "anarchy"}, "market_structure", ErrorCode.UNKNOWN_CHOICE),
        ({"price_cap": 0.4}, "price_cap", ErrorCode.NOT_A_NUMBER),
        ({"price_cap": D("0.12345")}, "price_cap", ErrorCode.TOO_PRECISE),
        ({"created_at": None}, "created_at", ErrorCode.NOT_EDITABLE),
    ],
)  # fmt: skip
def test_rules_validation(db, changes, field, code):
    community = new_community()  # horizon 2 h, lead 5 min
    with refused(code, field):
        market_rules_update(community=community, changed_by=None, **changes)
    assert MarketRules.objects.filter(community=community).count() == 1


def test_edit_creates_a_version_and_open_intervals_keep_theirs(db):
    community = new_community()
    intervals_open_horizon(community=community, now=T0)
    old = MarketRules.objects.get(community=community)
    new = market_rules_update(
        community=community, changed_by=None, price_cap="0.4", fee_per_kwh=D("0.01")
    )
    assert new.pk != old.pk
    assert new.price_cap == D("0.4")
    assert set(Interval.objects.values_list("rules_id", flat=True)) == {old.pk}
    intervals_open_horizon(community=community, now=T0 + timedelta(hours=1))
    later = Interval.objects.filter(start__gte=T0 + timedelta(hours=2))
    assert later.exists()
    assert set(later.values_list("rules_id", flat=True)) == {new.pk}
    # No-op edits do not pile up versions.
    assert market_rules_update(community=community, changed_by=None, price_cap="0.4") == new


def test_preview_lists_differences_warnings_and_when(db):
    community = new_community()
    intervals_open_horizon(community=community, now=T0)
    preview = market_rules_preview(
        community=community, changes={"price_cap": "0.3000", "price_floor": "0.1"}, now=T0
    )
    assert {c.field for c in preview.changes} == {"price_cap", "price_floor"}
    assert any("retail" in w for w in preview.warnings)
    assert any("feed-in" in w for w in preview.warnings)
    assert preview.applies_from == T0 + timedelta(hours=2)
    assert preview.intervals_unaffected == Interval.objects.count() == 7
    assert MarketRules.objects.filter(community=community).count() == 1


def test_open_horizon_aligned_and_idempotent(db):
    community = new_community(opening_horizon_hours=24)
    now = datetime(2026, 3, 2, 9, 7, 30, tzinfo=UTC)
    opened = intervals_open_horizon(community=community, now=now)
    assert intervals_open_horizon(community=community, now=now) == 0
    starts = list(Interval.objects.order_by("start").values_list("start", "end", "gate_closure_at"))
    assert opened == len(starts) == 96
    assert starts[0] == (
        datetime(2026, 3, 2, 9, 15, tzinfo=UTC),
        datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        datetime(2026, 3, 2, 9, 10, tzinfo=UTC),
    )
    assert all(s.minute % 15 == 0 and s.second == 0 for s, _, _ in starts)
    assert all(a[1] == b[0] for a, b in itertools_pairwise(starts))


def itertools_pairwise(rows):
    return itertools.pairwise(rows)


def test_daylight_saving_day_has_92_quarter_hours(db):
    berlin = ZoneInfo("Europe/Berlin")
    community = new_community(opening_horizon_hours=48)
    intervals_open_horizon(community=community, now=datetime(2026, 3, 28, 12, tzinfo=UTC))
    day_start = datetime(2026, 3, 29, tzinfo=berlin)
    day_end = datetime(2026, 3, 30, tzinfo=berlin)
    assert Interval.objects.filter(start__gte=day_start, start__lt=day_end).count() == 92


def test_interval_whose_gate_closed_is_not_opened(db):
    community = new_community(gate_closure_lead_minutes=20)
    intervals_open_horizon(community=community, now=T0)
    first = Interval.objects.order_by("start").first()
    assert first is not None
    assert first.start == T0 + timedelta(minutes=30)
    assert interval_is_open_for_orders(first, T0)
    assert not interval_is_open_for_orders(first, first.gate_closure_at)


def test_length_change_fills_the_gap_on_the_old_grid(db):
    community = new_community()
    # Opened at 08:45 with a 2 h horizon: quarter-hours from 09:00, the last ending 10:45.
    intervals_open_horizon(community=community, now=T0 - timedelta(minutes=15))
    market_rules_update(community=community, changed_by=None, interval_minutes=60)
    intervals_open_horizon(community=community, now=T0 + timedelta(minutes=50))
    rows = list(Interval.objects.order_by("start").values_list("start", "end"))
    lengths = [(e - s).seconds // 60 for s, e in rows]
    assert rows[-1] == (T0 + timedelta(hours=2), T0 + timedelta(hours=3))
    assert lengths[-3:] == [15, 15, 60]  # 10:45-11:00 fills the gap, then whole hours
    assert all(a[1] == b[0] for a, b in itertools_pairwise(rows))


def test_align_up():
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert align_up(at, 15) == at
    assert align_up(at + timedelta(seconds=1), 60) == at + timedelta(hours=1)
