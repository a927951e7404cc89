"""How PeerGrid writes numbers, money, times and curtailment reasons for people.

One place for every page, the admin, e-mails and error messages: energy in kWh to 3 decimals,
power in kW to 2, prices in the community's currency per kWh to 4 (and in cents per kWh to 2 for
households), money to the cent, times in the community's zone with the zone shown. Values are
rounded half-up, as people round; a value that is missing or not a number shows as a dash, never
as ``None`` or ``NaN``.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol

MISSING = "—"

# The minor unit's symbol per currency; anything else is written as "ct".
_MINOR_UNIT = {"EUR": "ct", "USD": "¢", "GBP": "p", "CHF": "Rp."}


class HasZoneAndCurrency(Protocol):
    timezone: str
    currency: str


def as_decimal(value: Any) -> Decimal | None:
    """``value`` as a finite Decimal, or None when it is missing or not a number."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


def number(value: Any, places: int) -> str:
    """``value`` rounded half-up to ``places`` decimals, with thousands separated by commas.

    Rounding to zero never shows a sign ("-0.000" reads like a debt of nothing).
    """
    amount = as_decimal(value)
    if amount is None:
        return MISSING
    step = Decimal(1).scaleb(-places)
    try:
        rounded = amount.quantize(step, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than the decimal context holds: not a reading
        return MISSING
    if rounded.is_zero():
        rounded = abs(rounded)
    return f"{rounded:,.{places}f}"


def kwh(value: Any, *, unit: bool = True) -> str:
    text = number(value, 3)
    return f"{text} kWh" if unit and text != MISSING else text


def kw(value: Any, *, unit: bool = True) -> str:
    text = number(value, 2)
    return f"{text} kW" if unit and text != MISSING else text


def currency_of(where: HasZoneAndCurrency | str | None) -> str:
    if where is None:
        return ""
    return where if isinstance(where, str) else where.currency


def money(value: Any, where: HasZoneAndCurrency | str | None = None) -> str:
    """An amount to the cent with the currency code: ``-0.01 EUR``."""
    text = number(value, 2)
    code = currency_of(where)
    return f"{text} {code}" if code and text != MISSING else text


def price(value: Any, where: HasZoneAndCurrency | str | None = None) -> str:
    """A price in currency per kWh to 1/100 of a cent: ``0.2300 EUR/kWh``."""
    text = number(value, 4)
    code = currency_of(where)
    if text == MISSING:
        return text
    return f"{text} {code}/kWh" if code else f"{text} /kWh"


def cents(value: Any, where: HasZoneAndCurrency | str | None = None) -> str:
    """A price in the currency's minor unit per kWh, as households read it: ``23.00 ct/kWh``."""
    amount = as_decimal(value)
    if amount is None:
        return MISSING
    minor = _MINOR_UNIT.get(currency_of(where).upper(), "ct")
    return f"{number(amount * 100, 2)} {minor}/kWh"


def percent(value: Any, places: int = 1) -> str:
    """A fraction (0.25) as a percentage (``25.0 %``)."""
    amount = as_decimal(value)
    return MISSING if amount is None else f"{number(amount * 100, places)} %"


def zone_of(where: HasZoneAndCurrency | tzinfo | str | None) -> tzinfo:
    if where is None:
        return UTC
    if isinstance(where, tzinfo):
        return where
    name = where if isinstance(where, str) else where.timezone
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


def when(
    moment: datetime | None,
    where: HasZoneAndCurrency | tzinfo | str | None = None,
    *,
    style: str = "%a %d %b %H:%M",
) -> str:
    """``moment`` in the community's zone with the zone's abbreviation: ``Tue 01 Dec 20:15 CET``."""
    if moment is None:
        return MISSING
    if moment.tzinfo is None:
        # Stored times are UTC; a naive one can only have come from there.
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone_of(where))
    return f"{local.strftime(style)} {local.tzname()}"


def span(
    start: datetime | None,
    end: datetime | None,
    where: HasZoneAndCurrency | tzinfo | str | None = None,
    *,
    short: bool = False,
) -> str:
    """An interval as members name it: ``Tue 01 Dec 20:15-20:30 CET`` (with an en dash)."""
    if start is None or end is None:
        return MISSING
    zone = zone_of(where)
    first, last = start.astimezone(zone), end.astimezone(zone)
    start_style = "%a %H:%M" if short else "%a %d %b %H:%M"
    end_style = "%H:%M" if first.date() == last.date() else start_style
    return f"{first.strftime(start_style)}\u2013{last.strftime(end_style)} {last.tzname()}"


@dataclass(frozen=True, slots=True)
class Reason:
    """A curtailment reason: what a household reads, and the grid check's own words."""

    plain: str
    technical: str


# The grid check's finding kinds (grid/check.py ``Finding.describe``), in a household's words.
_NEAR_YOU = "in your part of the network"
_PLAIN_REASONS = (
    (re.compile(r"overvoltage"), f"the voltage {_NEAR_YOU} would have risen too high"),
    (re.compile(r"undervoltage"), f"the voltage {_NEAR_YOU} would have dropped too low"),
    (re.compile(r"trafo|transformer"), "the local transformer would have been overloaded"),
    (re.compile(r"line"), f"a cable {_NEAR_YOU} would have been overloaded"),
    (
        re.compile(r"short.circuit|system strength|scr"),
        "the network would have been too weak for more inverter power",
    ),
    (
        re.compile(r"converge"),
        "the network could not safely carry all the trades planned for this interval",
    ),
)


def curtailment_reason(technical: str) -> Reason:
    """The household-language reason for a curtailment, with the technical text kept."""
    text = technical.strip()
    found: list[str] = []
    for pattern, plain in _PLAIN_REASONS:
        if pattern.search(text.lower()) and plain not in found:
            found.append(plain)
    if not found:
        if not text:
            return Reason("", "")
        found.append("the network could not carry all of this trade safely")
    sentence = " and ".join(found)
    return Reason(
        f"Part of this trade was called off because {sentence}. The grid check reduces trades "
        "until the network stays within its safe limits.",
        text,
    )


# Why clearing left an order out (``marketplace.services.clearing.exclusion_reason``), in a
# member's words. Posting refuses both cases, so a member meets them only when the manager sent
# a meter point back to approval, or lowered its capacity, after the order was posted.
_PLAIN_EXCLUSIONS = (
    (
        re.compile(r"not approved"),
        "your meter point was not approved by your community's manager when the gate closed "
        "(only approved meter points trade)",
    ),
    (
        re.compile(r"approved capacity"),
        "it asked for more energy than your meter point's approved connection carries in one "
        "interval",
    ),
)


def exclusion_reason(technical: str) -> Reason:
    """The member-language reason an order was excluded at clearing, with clearing's own words."""
    text = technical.strip()
    because = next(
        (plain for pattern, plain in _PLAIN_EXCLUSIONS if pattern.search(text.lower())),
        "clearing could not take it",
    )
    return Reason(
        f"This order was left out of clearing because {because}. Nothing was bought or sold "
        "for it and no money moved; the rest of the interval cleared as usual.",
        text,
    )
