"""Form and serializer fields for decimal input, both parsing with ``units``.

So a page's form, the API and a service refuse the same input with the same code and message.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from rest_framework import serializers

from units import UnitError, parse_decimal, places


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


class DecimalInput(serializers.DecimalField):
    """An API decimal in steps of ``step``, read from a string or a JSON number."""

    def __init__(self, *, step: Decimal, max_digits: int, **kwargs: Any) -> None:
        self.step = step
        super().__init__(max_digits=max_digits, decimal_places=places(step), **kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, float):
            # JSON has no decimal type: the parser turned the client's decimal text into a float,
            # and its shortest repr is that text again (0.1 stays 0.1, not 0.1000000000000000055).
            data = repr(data)
        try:
            number = parse_decimal(data, step=self.step)
        except UnitError as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from None
        return self.quantize(self.validate_precision(number))
