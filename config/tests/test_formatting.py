"""The one formatting rule for numbers, money, prices, times and curtailment reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.template import Context, Template
from hypothesis import given
from hypothesis import strategies as st

from config import formatting


class Place:
    timezone = "Europe/Berlin"
    currency = "EUR"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("5.86800000000000"), "5.868 kWh"),
        (Decimal("0"), "0.000 kWh"),
        (Decimal("-0.0004"), "0.000 kWh"),  # rounds to nothing: no sign
        (Decimal("0.0005"), "0.001 kWh"),  # half up, as people round
        (Decimal("-0.0005"), "-0.001 kWh"),
        (Decimal("1234567.5"), "1,234,567.500 kWh"),
        ("2.5", "2.500 kWh"),
        (3, "3.000 kWh"),
        (1.1, "1.100 kWh"),
        (None, "—"),
        ("", "—"),
        ("not a number", "—"),
        (Decimal("NaN"), "—"),
        (Decimal("Infinity"), "—"),
        (True, "—"),
    ],
)
def test_kwh_edges(value: object, text: str) -> None:
    assert formatting.kwh(value) == text


def test_prices_money_and_cents() -> None:
    place = Place()
    assert formatting.price(Decimal("0.230000000000000"), place) == "0.2300 EUR/kWh"
    assert formatting.cents(Decimal("0.23"), place) == "23.00 ct/kWh"
    assert formatting.cents(Decimal("0.12345"), "GBP") == "12.35 p/kWh"
    assert formatting.cents(Decimal("0.1"), "SEK") == "10.00 ct/kWh"
    assert formatting.money(Decimal("-0.005"), place) == "-0.01 EUR"
    assert formatting.money(Decimal("-0.004"), place) == "0.00 EUR"
    assert formatting.money(Decimal("12.345"), "EUR") == "12.35 EUR"
    assert formatting.money(None, place) == "—"
    assert formatting.percent(Decimal("0.2512")) == "25.1 %"
    assert formatting.kw(Decimal("10")) == "10.00 kW"


def test_times_are_in_the_community_zone_with_the_zone_shown() -> None:
    winter = datetime(2026, 12, 1, 19, 15, tzinfo=UTC)
    summer = datetime(2026, 7, 1, 19, 15, tzinfo=UTC)
    assert formatting.when(winter, Place()) == "Tue 01 Dec 20:15 CET"
    assert formatting.when(summer, Place()) == "Wed 01 Jul 21:15 CEST"
    assert formatting.when(winter.replace(tzinfo=None), "UTC") == "Tue 01 Dec 19:15 UTC"
    assert formatting.when(None, Place()) == "—"
    assert formatting.when(winter, "No/Such_Zone").endswith("UTC")
    end = datetime(2026, 12, 1, 19, 30, tzinfo=UTC)
    assert formatting.span(winter, end, Place()) == "Tue 01 Dec 20:15\u201320:30 CET"
    # Across midnight the end names its day.
    late = datetime(2026, 12, 1, 22, 45, tzinfo=UTC)
    assert formatting.span(late, late + timedelta(minutes=15), Place()) == (
        "Tue 01 Dec 23:45\u2013Wed 02 Dec 00:00 CET"
    )


@given(st.decimals(allow_nan=True, allow_infinity=True, places=None))
def test_any_decimal_formats_with_exactly_three_places_or_a_dash(value: Decimal) -> None:
    text = formatting.kwh(value, unit=False)
    if text != "—":
        fraction = text.partition(".")[2]
        assert len(fraction) == 3
        assert fraction.isdigit()
        assert Decimal(text.replace(",", "")) == value.quantize(Decimal("0.001"), "ROUND_HALF_UP")


@pytest.mark.parametrize(
    ("technical", "plain"),
    [
        ("trafo overload at trafo 0: 101.0 % > 100.0; sensitivity 0.266 %/kW", "transformer"),
        ("overvoltage at bus 12: 1.112 p.u. > 1.100", "risen too high"),
        ("undervoltage at bus 3: 0.889 p.u. < 0.900", "dropped too low"),
        ("line overload at line 7: 104.2 % > 100.0", "a cable"),
        ("power flow did not converge with the scheduled trades", "could not safely carry"),
        ("something new", "could not carry all of this trade"),
    ],
)
def test_curtailment_reasons_in_household_words(technical: str, plain: str) -> None:
    reason = formatting.curtailment_reason(technical)
    assert plain in reason.plain
    assert "%" not in reason.plain
    assert "p.u." not in reason.plain
    assert reason.technical == technical


def test_no_reason_stays_empty() -> None:
    assert formatting.curtailment_reason("") == formatting.Reason("", "")


def test_the_template_filters_use_the_same_rule() -> None:
    template = Template(
        "{% load peergrid %}{{ q|kwh }}|{{ q|kwh:'bare' }}|{{ p|price:place }}|{{ p|ct:place }}|"
        "{{ m|money:place }}|{{ t|when:place }}|{{ t|clock:place }}"
    )
    text = template.render(
        Context(
            {
                "q": Decimal("5.86800000000000"),
                "p": Decimal("0.230000000000000"),
                "m": Decimal("-0.01"),
                "t": datetime(2026, 12, 1, 19, 15, tzinfo=UTC),
                "place": Place(),
            }
        )
    )
    assert text == (
        "5.868 kWh|5.868|0.2300 EUR/kWh|23.00 ct/kWh|-0.01 EUR|Tue 01 Dec 20:15 CET|20:15 CET"
    )
