"""API test fixtures: the accounts world of every role, open intervals and a second trader."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Membership, MeterPoint, User
from accounts.tests import factories
from accounts.tests.conftest import World, _private_cache, world
from marketplace.models import Interval
from marketplace.services.intervals import intervals_open_horizon

__all__ = ["World", "_private_cache", "api", "world"]

# Every role the permission matrix knows, and how each authenticates.
ROLES = (
    "anonymous", "prosumer", "token_read", "token_trade", "token_meter", "other_prosumer",
    "suspended", "manager", "token_manage", "other_manager", "regulator",
)  # fmt: skip


@dataclass
class Api:
    world: World
    interval: Interval
    other_interval: Interval
    bob: Membership
    bob_meter_point: MeterPoint
    bob_token: str
    full_token: str  # the prosumer's token with read, trade and meter
    # The community's metering source: a meter_data token its manager issued for it.
    meter_data_token: str

    def client(self, role: str) -> APIClient:
        client = APIClient()
        w = self.world
        if role.startswith("token_"):
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {w.tokens[role.removeprefix('token_')]}")
        elif role != "anonymous":
            client.force_login(self.user(role))
        return client

    def bearer(self, token: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    def user(self, role: str) -> User:
        w = self.world
        token_users = {"token_read", "token_trade", "token_meter"}
        if role in token_users:
            return w.prosumer
        if role == "token_manage":
            return w.manager
        user: User = getattr(w, role)
        return user

    def meter_point_of(self, role: str) -> MeterPoint | None:
        user = self.user(role) if role != "anonymous" else None
        if user is None:
            return None
        return MeterPoint.objects.filter(membership__user=user).order_by("pk").first()


@pytest.fixture
def api(world: World) -> Api:
    now = timezone.now()
    intervals_open_horizon(community=world.community, now=now)
    intervals_open_horizon(community=world.other_community, now=now)
    bob = factories.member_of(world.community)
    bob_mp = factories.meter_point_for(bob)
    _, bob_token = factories.token_for(bob.user, ["read", "trade", "meter"])
    _, full = factories.token_for(world.prosumer, ["read", "trade", "meter"])
    _, meter_data = factories.token_for(world.manager, ["meter_data"], community=world.community)

    def first_open(community: Any) -> Interval:
        # A margin before gate closure, so a slow run never sees its interval close mid-test.
        return Interval.objects.filter(
            community=community, gate_closure_at__gt=now + timedelta(minutes=10)
        ).earliest("start")

    return Api(
        world=world,
        interval=first_open(world.community),
        other_interval=first_open(world.other_community),
        bob=bob,
        bob_meter_point=bob_mp,
        bob_token=bob_token,
        full_token=full,
        meter_data_token=meter_data,
    )


def posting_body(api: Api, mp: MeterPoint | None = None, **overrides: Any) -> dict:
    body = {
        "interval": api.interval.pk,
        "meter_point": (mp or api.world.meter_point).pk,
        "side": "sell",
        "quantity_kwh": "1.000",
        "limit_price_per_kwh": "0.1200",
    }
    body.update(overrides)
    return body
