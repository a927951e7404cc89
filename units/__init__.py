"""The units PeerGrid counts in, their steps, and the one parser of decimal input.

Energy is in kWh with a step of 0.001 (one Wh), power in kW with a step of 0.001 (one W), prices
per kWh with a step of 0.0001 (a hundredth of a cent) and money in the ledger with a step of
0.01. Every form, serializer, CSV import, command and service that reads a number from outside
parses it with ``parse_decimal``, so a float, a NaN or one digit too many is refused the same way
everywhere. Plain Python, no Django and no other PeerGrid package: the clearing core and the grid
may use it as well as every Django layer.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

KWH = Decimal("0.001")
KW = Decimal("0.001")
PRICE = Decimal("0.0001")
CENT = Decimal("0.01")

# Digits the database stores for each (max_digits of the model fields).
KWH_DIGITS = 12
KW_DIGITS = 10
PRICE_DIGITS = 10
MONEY_DIGITS = 14


def places(step: Decimal) -> int:
    """Decimal places of a step: 3 for ``KWH``."""
    exponent = step.as_tuple().exponent
    assert isinstance(exponent, int)  # a step is finite
    return -exponent


class UnitError(ValueError):
    """A number from outside that is not one; ``code`` is an ``ErrorCode`` value."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_decimal(value: object, *, step: Decimal | None = None) -> Decimal:
    """``value`` (text, int or Decimal) as a Decimal with no more places than ``step``.

    Floats are refused: their binary value is not the decimal the sender meant, and an amount
    must not carry that error. Surrounding spaces are ignored; trailing zeros beyond the step
    are fine (``1.0000`` kWh is 1 kWh).
    """
    if isinstance(value, bool | float):
        raise UnitError("not_a_number", "Give a decimal number (as text or Decimal), not a float.")
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise UnitError("required", "Give a number.")
    if not isinstance(value, str | int | Decimal):
        raise UnitError("not_a_number", "Not a decimal number.")
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        raise UnitError("not_a_number", "Not a decimal number.") from None
    if not number.is_finite():
        raise UnitError("not_a_number", "Must be a finite number.")
    if step is not None and _places_used(number) > places(step):
        raise UnitError("too_precise", f"At most {places(step)} decimal places.")
    return number


def _places_used(number: Decimal) -> int:
    """Decimal places without trailing zeros, exactly (``normalize`` rounds beyond 28 digits)."""
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite, checked by the caller
    trailing = 0
    for digit in reversed(digits):
        if digit != 0 or exponent + trailing >= 0:
            break
        trailing += 1
    return max(0, -(exponent + trailing))


def quantize(value: Decimal, step: Decimal) -> Decimal:
    """``value`` rounded to ``step``, half to even (the ledger's rounding of money)."""
    return value.quantize(step, rounding=ROUND_HALF_EVEN)
