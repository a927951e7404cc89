"""Creating communities and versioning their market rules."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from config.errors import ApplicationError, ErrorCode
from marketplace.models import Community, MarketRules, validate_time_zone


def _check_timezone(name: str) -> None:
    try:
        validate_time_zone(name)
    except ValidationError as exc:
        raise ApplicationError(
            ErrorCode.UNKNOWN_CHOICE, f"Unknown time zone {name[:64]!r}.", field="timezone"
        ) from exc


@transaction.atomic
def community_create(
    *,
    name: str,
    slug: str,
    timezone: str = "Europe/Berlin",
    currency: str = "EUR",
    description: str = "",
    created_by: User | None = None,
    **rules: Any,
) -> Community:
    """Create a community with its first version of the market rules."""
    _check_timezone(timezone)
    if Community.objects.filter(slug=slug).exists():
        raise ApplicationError(ErrorCode.DUPLICATE, "That slug is taken.", field="slug")
    community = Community.objects.create(
        name=name, slug=slug, timezone=timezone, currency=currency.upper(), description=description
    )
    MarketRules.objects.create(community=community, created_by=created_by, **rules)
    return community


@transaction.atomic
def community_rules_ensure(*, community: Community, created_by: User | None = None) -> MarketRules:
    """The community's current rules, creating the default version if it has none.

    A community added in the admin starts with the defaults (bilateral market, the model's
    tariffs and limits), so its rules page, board and interval pipeline work from the start;
    the manager changes them as a new version.
    """
    Community.objects.select_for_update().filter(pk=community.pk).first()
    existing = (
        MarketRules.objects.filter(community=community).order_by("-created_at", "-pk").first()
    )
    if existing is not None:
        return existing
    return MarketRules.objects.create(community=community, created_by=created_by)
