"""Factories for accounts tests; everything is built through the real services."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import factory

from accounts import services
from accounts.models import ApiToken, Membership, MeterPoint, User
from grid.models import GridModel, NetworkSource
from marketplace.models import Community
from marketplace.services.communities import community_create

PASSWORD = "correct-horse-battery-staple"
_numbers = itertools.count(1)


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    display_name = factory.Sequence(lambda n: f"User {n}")

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        extra = {key: kwargs.pop(key) for key in ("is_staff", "is_superuser") if key in kwargs}
        is_regulator = kwargs.pop("is_regulator", False)
        user = services.user_create(
            email=kwargs["email"],
            password=kwargs.get("password", PASSWORD),
            display_name=kwargs.get("display_name", ""),
        )
        if extra:
            User.objects.filter(pk=user.pk).update(**extra)
            user.refresh_from_db()
        if is_regulator:
            user = services.regulator_grant(user=user, granted_by=None)
        return user


class CommunityFactory(factory.django.DjangoModelFactory[Community]):
    class Meta:
        model = Community

    name = factory.Sequence(lambda n: f"Community {n}")
    slug = factory.Sequence(lambda n: f"community-{n}")

    @classmethod
    def _create(cls, model_class: type[Community], *args: Any, **kwargs: Any) -> Community:
        return community_create(**kwargs)


def grid_model_for(community: Community, buses: tuple[int, ...] = (1, 2, 3)) -> GridModel:
    """A stand-in grid model: only its connection buses matter to accounts."""
    return GridModel.objects.create(
        community=community,
        source=NetworkSource.REFERENCE,
        reference_name="test",
        network_json="{}",
        connection_buses=list(buses),
    )


def member_of(community: Community, *, user: User | None = None) -> Membership:
    """An approved prosumer of the community."""
    user = user or UserFactory.create()
    membership = services.membership_request(user=user, community=community)
    return services.membership_approve(membership=membership, decided_by=None)


def suspended_member_of(community: Community) -> Membership:
    membership = member_of(community)
    return services.membership_suspend(
        membership=membership, decided_by=None, reason="unpaid statements"
    )


def manager_of(community: Community, *, user: User | None = None) -> User:
    user = user or UserFactory.create()
    services.community_manager_add(user=user, community=community, added_by=None)
    user.refresh_from_db()
    return user


def meter_point_for(membership: Membership, **overrides: Any) -> MeterPoint:
    values: dict[str, Any] = {
        "label": f"Home {next(_numbers)}",
        "import_capacity_kw": Decimal("17"),
        "export_capacity_kw": Decimal("10"),
        "pv_kwp": Decimal("5"),
    }
    values.update(overrides)
    approve = values.pop("approve", True)
    meter_point = services.meter_point_register(membership=membership, **values)
    # In a community with a network a meter point trades only once placed on it; tests place it
    # on the connection buses in turn, as a manager would.
    grid_model = GridModel.objects.filter(community_id=membership.community_id).first()
    if grid_model is not None and grid_model.connection_buses:
        buses = grid_model.connection_buses
        meter_point.bus = buses[meter_point.pk % len(buses)]
        meter_point.save(update_fields=["bus"])
    if approve:  # as the manager would; ``approve=False`` leaves the member's declaration pending
        meter_point = services.meter_point_approve(meter_point=meter_point, approved_by=None)
    return meter_point


def token_for(user: User, scopes: list[str], **kwargs: Any) -> tuple[ApiToken, str]:
    return services.api_token_create(user=user, name="test token", scopes=scopes, **kwargs)
