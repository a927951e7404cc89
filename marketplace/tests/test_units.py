"""The one decimal parser: what it keeps, what it refuses, and that the channels share it."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.fields import DecimalFormField, DecimalInput
from units import CENT, KWH, PRICE, UnitError, parse_decimal, places, quantize
from units.patterns import decimal_range_pattern

D = Decimal


def _refused(value: object, step: Decimal | None = KWH) -> str:
    with pytest.raises(UnitError) as refused:
        parse_decimal(value, step=step)
    return refused.value.code


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=3, min_value=-(10**9), max_value=10**9
    )
)
def test_text_of_a_kwh_value_reads_back_exactly(value: Decimal) -> None:
    assert parse_decimal(str(value), step=KWH) == value
    assert parse_decimal(f"  {value}  ", step=KWH) == value


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-1000, max_value=1000)
)
def test_one_place_beyond_the_step_is_refused(value: Decimal) -> None:
    if value == value.quantize(KWH):
        assert parse_decimal(value, step=KWH) == value
    else:
        assert _refused(value) == "too_precise"


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_floats_are_refused(value: float) -> None:
    assert _refused(value) == "not_a_number"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("NaN", "not_a_number"),
        ("-Infinity", "not_a_number"),
        ("1,5", "not_a_number"),
        ([1], "not_a_number"),
        (True, "not_a_number"),
        ("", "required"),
        ("   ", "required"),
        ("0.0001", "too_precise"),
        # 30 significant digits: normalize() would round this to 1 and accept it.
        ("1.00000000000000000000000000001", "too_precise"),
    ],
)
def test_refusals(value: object, code: str) -> None:
    assert _refused(value) == code


def test_trailing_zeros_and_huge_exponents() -> None:
    assert parse_decimal("1.0000", step=KWH) == 1
    assert parse_decimal("1e30", step=KWH) == D("1e30")
    assert parse_decimal("12.3456789") == D("12.3456789")  # no step: any places


def test_steps_and_money() -> None:
    assert (places(KWH), places(PRICE), places(CENT)) == (3, 4, 2)
    assert quantize(D("0.125"), CENT) == D("0.12")  # half to even
    assert quantize(D("-0.125"), CENT) == D("-0.12")  # symmetric: a line and its mirror cancel


def test_the_form_and_the_api_refuse_like_the_parser() -> None:
    from django import forms
    from rest_framework import serializers

    form_field = DecimalFormField(step=KWH, max_digits=12)
    api_field = DecimalInput(step=KWH, max_digits=12)
    for value in ("1.0001", "abc"):
        code = _refused(value)
        with pytest.raises(forms.ValidationError) as on_page:
            form_field.clean(value)
        assert on_page.value.code == code
        with pytest.raises(serializers.ValidationError) as in_api:
            api_field.run_validation(value)
        assert in_api.value.get_codes() == [code]
    assert form_field.clean(" 2.500 ") == D("2.5")
    # The API takes exactly the schema's pattern: a JSON string of plain digits, no padding.
    assert api_field.run_validation("2.5") == D("2.500")
    for written in (0.1, " 2.500 ", "2.5000", "02.5", "1e3", ".5"):
        with pytest.raises(serializers.ValidationError) as in_api:
            api_field.run_validation(written)
        codes = in_api.value.get_codes()
        assert codes in (["not_a_number"], ["max_decimal_places"]), written


@settings(max_examples=400, deadline=None)
@given(
    st.integers(-3000, 3000), st.integers(-3000, 3000), st.integers(0, 3),
    st.integers(-20000, 20000), st.sampled_from(["as is", "trimmed", "padded"]),
)  # fmt: skip
def test_a_range_pattern_matches_exactly_the_decimals_in_its_range(
    a: int, b: int, decimal_places: int, number: int, form: str
) -> None:
    """The schema's pattern and the server's check are one regex: it must mean the range."""
    low_steps, high_steps = min(a, b), max(a, b)
    step = D(1).scaleb(-decimal_places)
    low, high = low_steps * step, high_steps * step
    pattern = re.compile(decimal_range_pattern(low, high, decimal_places))
    text = format(number * step, "f")
    if form == "trimmed" and "." in text:
        text = text.rstrip("0").rstrip(".")
    elif form == "padded":
        text += "0" if "." in text else ".0"
    written_places = len(text.split(".")[1]) if "." in text else 0
    expected = low <= D(text) <= high and written_places <= decimal_places
    assert bool(pattern.fullmatch(text)) == expected, (low, high, text)
    assert not pattern.fullmatch(text + "\n")
