"""``{% manager_today as rows %}``: the admin home's summary (the admin index is not our view)."""

from __future__ import annotations

from typing import Any

from django import template

from marketplace.selectors.manager import CommunityToday, manager_home

register = template.Library()


@register.simple_tag(takes_context=True)
def manager_today(context: Any) -> list[CommunityToday]:
    return manager_home(user=context["request"].user)
