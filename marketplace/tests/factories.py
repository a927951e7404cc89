"""Factories for market tests: communities, approved members with meter points, intervals.

Everything is built through the real services (``community_create``, ``membership_request`` /
``membership_approve``, ``meter_point_register``, ``intervals_open_horizon``), so tests start from
states the application itself can reach. Self-contained on purpose (no other app's factories).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import factory

from accounts.models import Membership, MeterPoint, User
from accounts.services import (
    membership_approve,
    membership_request,
    meter_point_approve,
    meter_point_register,
)
from marketplace.models import Community, Interval
from marketplace.services.communities import community_create
from marketplace.services.intervals import intervals_open_horizon

# A quarter-hour boundary; the first interval opened from here starts at 09:15 (gate 09:10).
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"member{n}@market.test")

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        return User.objects.create_user(kwargs.pop("email"), "pw", **kwargs)


class CommunityFactory(factory.Factory[Community]):
    """A community with its first rules; rule fields go straight to ``community_create``."""

    class Meta:
        model = Community

    name = factory.Sequence(lambda n: f"Market community {n}")
    slug = factory.Sequence(lambda n: f"market-{n}")
    timezone = "Europe/Berlin"
    # A short horizon keeps each test's interval count small.
    opening_horizon_hours = 2

    @classmethod
    def _create(cls, model_class: type[Community], *args: Any, **kwargs: Any) -> Community:
        return community_create(**kwargs)


class MembershipFactory(factory.Factory[Membership]):
    """An approved prosumer of ``community`` with one meter point (``meter_point_of``)."""

    class Meta:
        model = Membership

    community = factory.SubFactory(CommunityFactory)
    user = factory.SubFactory(UserFactory)
    import_capacity_kw = Decimal("20")
    export_capacity_kw = Decimal("20")

    @classmethod
    def _create(cls, model_class: type[Membership], *args: Any, **kwargs: Any) -> Membership:
        membership = membership_request(user=kwargs["user"], community=kwargs["community"])
        membership = membership_approve(membership=membership, decided_by=None)
        meter_point = meter_point_register(
            membership=membership,
            label="home",
            import_capacity_kw=kwargs["import_capacity_kw"],
            export_capacity_kw=kwargs["export_capacity_kw"],
        )
        # As the community's manager would: a declared meter point does not trade until approved.
        meter_point_approve(meter_point=meter_point, approved_by=None)
        return membership


@dataclass(frozen=True)
class Member:
    membership: Membership
    meter_point: MeterPoint


def member(community: Community, **kwargs: Any) -> Member:
    membership = MembershipFactory(community=community, **kwargs)
    assert isinstance(membership, Membership)
    return Member(membership, membership.meter_points.get())


def open_interval(community: Community, now: datetime = T0) -> Interval:
    """Open the community's horizon at ``now`` and return the first interval taking orders."""
    intervals_open_horizon(community=community, now=now)
    interval = (
        Interval.objects.select_related("rules")
        .filter(community=community, gate_closure_at__gt=now)
        .order_by("start")
        .first()
    )
    assert interval is not None, "no interval opened"
    return interval


def new_community(**kwargs: Any) -> Community:
    """``CommunityFactory(...)`` with its real return type for the type checker."""
    community = CommunityFactory(**kwargs)
    assert isinstance(community, Community)
    return community
