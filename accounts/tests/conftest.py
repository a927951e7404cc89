"""Fixtures for accounts tests: a private cache namespace and a small world of every role."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings as django_settings

from accounts.models import ApiToken, Membership, MeterPoint, User
from accounts.tests import factories
from marketplace.models import Community


@pytest.fixture(autouse=True)
def _private_cache(settings: Any) -> None:
    # A fresh key prefix per test isolates throttling state without flushing a shared Redis
    # (clearing it would also drop other sessions' keys).
    caches = {name: dict(config) for name, config in django_settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"
    settings.CACHES = caches


@dataclass
class World:
    community: Community
    other_community: Community
    prosumer: User
    membership: Membership
    meter_point: MeterPoint
    other_prosumer: User
    other_membership: Membership
    other_meter_point: MeterPoint
    suspended: User
    suspended_membership: Membership
    pending: User
    pending_membership: Membership
    manager: User
    other_manager: User
    regulator: User
    superuser: User
    tokens: dict[str, str]
    token_objects: dict[str, ApiToken]


@pytest.fixture
def world(db: None) -> World:
    community = factories.CommunityFactory.create(name="Sonnenfeld", slug="sonnenfeld")
    other = factories.CommunityFactory.create(name="Windhof", slug="windhof")
    factories.grid_model_for(community, buses=(1, 2, 3))
    factories.grid_model_for(other, buses=(7, 8))
    membership = factories.member_of(community)
    other_membership = factories.member_of(other)
    suspended_membership = factories.member_of(community)
    meter_point = factories.meter_point_for(membership)
    factories.meter_point_for(suspended_membership)
    from accounts import services

    services.membership_suspend(
        membership=suspended_membership, decided_by=None, reason="unpaid statements"
    )
    suspended_membership.refresh_from_db()
    pending = factories.UserFactory.create()
    from accounts.services import membership_request

    pending_membership = membership_request(user=pending, community=community)
    manager = factories.manager_of(community)
    other_manager = factories.manager_of(other)
    tokens: dict[str, str] = {}
    token_objects: dict[str, ApiToken] = {}
    for scope in ("read", "trade", "meter"):
        token_objects[scope], tokens[scope] = factories.token_for(membership.user, [scope])
    token_objects["manage"], tokens["manage"] = factories.token_for(manager, ["manage"])
    return World(
        community=community,
        other_community=other,
        prosumer=membership.user,
        membership=membership,
        meter_point=meter_point,
        other_prosumer=other_membership.user,
        other_membership=other_membership,
        other_meter_point=factories.meter_point_for(other_membership),
        suspended=suspended_membership.user,
        suspended_membership=suspended_membership,
        pending=pending,
        pending_membership=pending_membership,
        manager=manager,
        other_manager=other_manager,
        regulator=factories.UserFactory.create(is_regulator=True),
        superuser=factories.UserFactory.create(is_staff=True, is_superuser=True),
        tokens=tokens,
        token_objects=token_objects,
    )
