"""Form and serializer fields for decimal input, both parsing with ``units``.

So a page's form, the API and a service refuse the same input with the same code and message.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import forms
from rest_framework import serializers

from units import UnitError, parse_decimal, places
from units.patterns import decimal_range_pattern


class DecimalFormField(forms.DecimalField):
    """A form's decimal in steps of ``step`` (3 places for kWh and kW, 4 for prices)."""

    def __init__(self, *, step: Decimal, max_digits: int, **kwargs: Any) -> None:
        self.step = step
        super().__init__(max_digits=max_digits, decimal_places=places(step), **kwargs)

    def to_python(self, value: Any) -> Decimal | None:  # type: ignore[override] # stubs say int
        if value in self.empty_values:
            return None
        try:
            return parse_decimal(value, step=self.step)
        except UnitError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None


def decimal_pattern(*, whole_digits: int, decimal_places: int, sign: str = "any") -> str:
    """The written form the API accepts for a decimal: plain digits, no leading zeros, at most
    ``decimal_places`` after one point; ``sign`` "any" (a minus allowed), "non_negative" or
    "positive" (not zero either). The OpenAPI schema states this pattern and the server applies
    the same one, so what a client reads is what is enforced."""
    whole = f"(?:0|[1-9]\\d{{0,{whole_digits - 1}}})" if whole_digits > 1 else "\\d"
    fraction = f"(?:\\.\\d{{1,{decimal_places}}})?" if decimal_places else ""
    if sign == "positive":
        above_one = (
            f"[1-9]\\d{{0,{whole_digits - 1}}}{fraction}"
            if whole_digits > 1
            else f"[1-9]{fraction}"
        )
        # 0.xxx with at least one non-zero digit among at most ``decimal_places``.
        tails = [
            "0" * zeros
            + "[1-9]"
            + (f"\\d{{0,{decimal_places - zeros - 1}}}" if zeros < decimal_places - 1 else "")
            for zeros in range(decimal_places)
        ]
        below_one = f"0\\.(?:{'|'.join(tails)})" if decimal_places else ""
        body = f"{above_one}|{below_one}" if below_one else above_one
        return f"^(?:{body})$"
    minus = "-?" if sign == "any" else ""
    return f"^{minus}{whole}{fraction}$"


class DecimalInput(serializers.DecimalField):
    """An API decimal in steps of ``step``, written as a JSON string of plain digits.

    JSON numbers are refused: a JSON parser reads them as binary floats, and an amount must not
    depend on how a float prints. ``min_value`` of 0 or of one ``step`` narrows the pattern to
    non-negative or positive numbers, so the schema says it too.
    """

    def __init__(self, *, step: Decimal, max_digits: int, **kwargs: Any) -> None:
        self.step = step
        super().__init__(max_digits=max_digits, decimal_places=places(step), **kwargs)
        whole_digits = max_digits - places(step)
        if self.max_value is None and self.min_value in (None, Decimal(0), step):
            self.pattern = decimal_pattern(
                whole_digits=whole_digits, decimal_places=places(step), sign=self.sign
            )
        else:  # a bounded range: the pattern carries the bounds (strings have no minimum)
            largest = Decimal(10) ** whole_digits - step
            low = Decimal(self.min_value) if self.min_value is not None else -largest
            high = Decimal(self.max_value) if self.max_value is not None else largest
            self.pattern = decimal_range_pattern(low, high, places(step))
        self._regex = re.compile(self.pattern.removeprefix("^").removesuffix("$"))

    @property
    def sign(self) -> str:
        if self.min_value is None or self.min_value < 0:
            return "any"
        return "positive" if self.min_value > 0 else "non_negative"

    def to_internal_value(self, data: Any) -> Decimal:
        if not isinstance(data, str):
            raise serializers.ValidationError(
                'Give the number as a decimal string, e.g. "1.500".', code="not_a_number"
            )
        try:
            number = parse_decimal(data, step=self.step)
        except UnitError as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from None
        number = self.quantize(self.validate_precision(number))
        if self.min_value is not None and number < self.min_value:
            raise serializers.ValidationError(
                f"Ensure this value is greater than or equal to {self.min_value}.",
                code="min_value",
            )
        if self.max_value is not None and number > self.max_value:
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {self.max_value}.", code="max_value"
            )
        if not self._regex.fullmatch(data):
            raise serializers.ValidationError(
                "Write plain decimal digits with at most one point and no leading zeros "
                f'(at most {self.decimal_places} places), e.g. "1.500".',
                code="not_a_number",
            )
        return number
