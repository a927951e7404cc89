"""Reads of communities by what people type: a slug in a URL or a query, a choice in a form."""

from __future__ import annotations

from django.db.models import QuerySet

from marketplace.models import Community


def community_by_slug(*, slug: str) -> Community | None:
    return Community.objects.filter(slug=slug).first()


def communities_by_name() -> QuerySet[Community]:
    """Every community, for a regulator's choice of scope."""
    return Community.objects.order_by("name")
