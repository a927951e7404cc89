"""The template filters of ``config.formatting``: ``{% load peergrid %}`` on every page.

``{{ trade.quantity_kwh|kwh }}``, ``{{ price|price:community }}``, ``{{ price|ct:community }}``,
``{{ amount|money:community }}``, ``{{ moment|when:community }}``,
``{{ interval|span:community }}``.
The argument is the community (or its currency code or zone name).
"""

from __future__ import annotations

from typing import Any

from django import template

from config import formatting

register = template.Library()


@register.filter
def kwh(value: Any, arg: str = "") -> str:
    """``5.868 kWh``; ``|kwh:"bare"`` leaves the unit to the column title."""
    return formatting.kwh(value, unit=arg != "bare")


@register.filter
def kw(value: Any, arg: str = "") -> str:
    return formatting.kw(value, unit=arg != "bare")


@register.filter
def price(value: Any, where: Any = None) -> str:
    return formatting.price(value, where)


@register.filter
def ct(value: Any, where: Any = None) -> str:
    return formatting.cents(value, where)


@register.filter
def money(value: Any, where: Any = None) -> str:
    return formatting.money(value, where)


@register.filter
def pct(value: Any) -> str:
    return formatting.percent(value)


@register.filter
def when(value: Any, where: Any = None) -> str:
    return formatting.when(value, where)


@register.filter
def clock(value: Any, where: Any = None) -> str:
    """Only the time of day, with the zone: ``20:15 CET``."""
    return formatting.when(value, where, style="%H:%M")


@register.filter
def span(interval: Any, where: Any = None) -> str:
    """An interval (anything with ``start`` and ``end``) as members name it."""
    return formatting.span(getattr(interval, "start", None), getattr(interval, "end", None), where)


@register.filter
def span_short(interval: Any, where: Any = None) -> str:
    """``Tue 20:15-20:30 CET``: for tables of the coming hours, where the date is obvious."""
    start, end = getattr(interval, "start", None), getattr(interval, "end", None)
    return formatting.span(start, end, where, short=True)


@register.filter
def plain_reason(technical: str) -> formatting.Reason:
    return formatting.curtailment_reason(technical or "")


@register.filter
def plain_exclusion(technical: str) -> formatting.Reason:
    return formatting.exclusion_reason(technical or "")
