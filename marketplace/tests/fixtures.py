"""Fixtures and helpers for market tests: a community, an open interval, members, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest

from config.errors import ApplicationError, ErrorCode
from marketplace.models import Bid, Community, Interval, Posting
from marketplace.services.bids import bid_create
from marketplace.services.postings import posting_create
from marketplace.tests.factories import T0, Member, member, new_community, open_interval


@pytest.fixture
def community(db: None) -> Community:
    return new_community()


@pytest.fixture
def interval(community: Community) -> Interval:
    return open_interval(community)


@pytest.fixture
def alice(community: Community) -> Member:
    return member(community)


@pytest.fixture
def bob(community: Community) -> Member:
    return member(community)


@pytest.fixture
def carol(community: Community) -> Member:
    return member(community)


@contextmanager
def refused(code: ErrorCode, field: str | None) -> Iterator[pytest.ExceptionInfo[ApplicationError]]:
    """Expect an ``ApplicationError`` with exactly this code and field."""
    with pytest.raises(ApplicationError) as info:
        yield info
    assert info.value.code == code, info.value
    assert info.value.field == field, info.value


def post(who: Member, interval: Interval, side: str = "sell", quantity: str = "2",
         price: str = "0.2000", **kwargs: Any) -> Posting:  # fmt: skip
    return posting_create(
        membership=who.membership,
        meter_point=who.meter_point,
        interval=interval,
        side=side,
        quantity_kwh=Decimal(quantity),
        limit_price_per_kwh=Decimal(price),
        now=kwargs.pop("now", T0),
        **kwargs,
    )


def bid(who: Member, posting: Posting, quantity: str = "1", price: str = "0.3000",
        **kwargs: Any) -> Bid:  # fmt: skip
    return bid_create(
        membership=who.membership,
        meter_point=who.meter_point,
        posting=posting,
        quantity_kwh=Decimal(quantity),
        price_per_kwh=Decimal(price),
        now=kwargs.pop("now", T0),
        **kwargs,
    )
