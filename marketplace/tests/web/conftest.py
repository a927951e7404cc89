"""Fixtures for the web page tests: a community with an open interval and two members."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import time_machine
from django.test import Client

from marketplace.tests.factories import T0, Member
from marketplace.tests.fixtures import alice, bob, carol, community, interval

__all__ = ["alice", "bob", "carol", "community", "interval"]


@pytest.fixture
def frozen() -> Iterator[time_machine.Traveller]:
    """The pages read the clock; freeze it where the market factories opened the intervals."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def client_for(who: Member) -> Client:
    client = Client()
    client.force_login(who.membership.user)
    return client


def form_token() -> str:
    """A fresh one-time token, as the page puts in each form that creates something."""
    return secrets.token_urlsafe(18)
