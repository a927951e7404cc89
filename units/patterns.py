"""Regular expressions for decimal text within a closed range, for schemas and parsers alike.

The API's OpenAPI schema can only bound a decimal string by a pattern (``minimum`` applies to
JSON numbers), so the pattern itself carries the range; the server applies the same pattern, so
what the schema says is exactly what is accepted. Written form: an optional minus, the whole
part without leading zeros, and optionally a point with 1 to ``places`` digits (trailing zeros
are fine: ``1.500`` is 1.5).
"""

from __future__ import annotations

from decimal import Decimal

_Classes = list[str]  # one character class (or a literal digit) per position


def _digit_class(low: int, high: int) -> str:
    if low == high:
        return str(low)
    if low == 0 and high == 9:
        return r"\d"
    return f"[{low}-{high}]"


def _fixed_width(low: str, high: str) -> list[_Classes]:
    """Sequences of classes matching exactly the digit strings from ``low`` to ``high``
    (same length, compared as numbers)."""
    if not low:
        return [[]]
    first_low, first_high = int(low[0]), int(high[0])
    rest_low, rest_high = low[1:], high[1:]
    if first_low == first_high:
        return [[low[0], *tail] for tail in _fixed_width(rest_low, rest_high)]
    width = len(rest_low)
    if rest_low == "0" * width and rest_high == "9" * width:
        return [[_digit_class(first_low, first_high)] + [r"\d"] * width]
    # The first digits whose every continuation is in range share one class.
    full_from = first_low if rest_low == "0" * width else first_low + 1
    full_to = first_high if rest_high == "9" * width else first_high - 1
    out = []
    if full_from > first_low:
        out += [[low[0], *tail] for tail in _fixed_width(rest_low, "9" * width)]
    if full_from <= full_to:
        out.append([_digit_class(full_from, full_to)] + [r"\d"] * width)
    if full_to < first_high:
        out += [[high[0], *tail] for tail in _fixed_width("0" * width, rest_high)]
    return out


def _whole(low: int, high: int) -> str:
    """Whole numbers from ``low`` to ``high``, written without leading zeros."""
    parts = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        start = max(low, 10 ** (digits - 1) if digits > 1 else 0)
        end = min(high, 10**digits - 1)
        if start <= end:
            parts += ["".join(c) for c in _fixed_width(str(start), str(end))]
    return _alternatives(parts)


def _fraction(classes: _Classes) -> str:
    """A fraction written with 1 to len(classes) digits whose zero-padded value matches
    ``classes``: a shorter fraction stands for trailing zeros, allowed where they match."""
    text = ""
    for index in range(len(classes) - 1, -1, -1):
        # The fraction may stop here when every later position takes a 0.
        rest_zero = all(c in ("0", r"\d") or c.startswith("[0") for c in classes[index + 1 :])
        tail = f"(?:{text})?" if text and rest_zero else text
        text = classes[index] + tail
    return text


def _fractions(low: str, high: str) -> str:
    return _alternatives([_fraction(c) for c in _fixed_width(low, high)])


def _alternatives(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def _non_negative(low: Decimal, high: Decimal, places: int) -> list[str]:
    scale = 10**places
    lo, hi = int(low * scale), int(high * scale)
    whole_lo, frac_lo = divmod(lo, scale)
    whole_hi, frac_hi = divmod(hi, scale)
    pad = f"0{places}d"

    def with_fraction(whole: str, frac_low: int, frac_high: int) -> str:
        if not places:
            return whole
        fraction = _fractions(format(frac_low, pad), format(frac_high, pad))
        optional = "?" if frac_low == 0 else ""
        return f"{whole}(?:\\.{fraction}){optional}"

    if not places:
        return [_whole(whole_lo, whole_hi)]
    if whole_lo == whole_hi:
        return [with_fraction(str(whole_lo), frac_lo, frac_hi)]
    parts = [with_fraction(str(whole_lo), frac_lo, scale - 1)]
    if whole_hi - whole_lo > 1:
        parts.append(f"{_whole(whole_lo + 1, whole_hi - 1)}(?:\\.\\d{{1,{places}}})?")
    parts.append(with_fraction(str(whole_hi), 0, frac_hi))
    return parts


def decimal_range_pattern(low: Decimal, high: Decimal, places: int) -> str:
    """An anchored pattern for the decimals from ``low`` to ``high`` (both in steps of
    ``10**-places``) written as described above; ``-0`` counts as 0."""
    if low > high:
        raise ValueError("an empty range")
    parts: list[str] = []
    if low < 0:
        parts += [f"-{p}" for p in _non_negative(max(-high, Decimal(0)), -low, places)]
    if high >= 0:
        parts += _non_negative(max(low, Decimal(0)), high, places)
    return f"^(?:{'|'.join(parts)})$"
