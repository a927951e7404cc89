"""postings_create_batch: the same refusals as posting_create, row by row, in one transaction."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Membership, MembershipStatus
from config.errors import ApplicationError
from marketplace.models import Interval, Posting
from marketplace.services.bids import bid_create
from marketplace.services.postings import (
    PostingRequest,
    posting_create,
    postings_create_batch,
)
from marketplace.tests.factories import T0, Member, member, new_community

D = Decimal


def _two_intervals(community: Any) -> tuple[Interval, Interval]:
    from marketplace.services.intervals import intervals_open_horizon

    intervals_open_horizon(community=community, now=T0)
    first, second = (
        Interval.objects.select_related("rules")
        .filter(community=community, gate_closure_at__gt=T0)
        .order_by("start")[:2]
    )
    return first, second


def _one_by_one(interval: Interval, requests: list[PostingRequest]) -> list[tuple[object, ...]]:
    outcomes: list[tuple[object, ...]] = []
    for request in requests:
        try:
            posting = posting_create(
                membership=request.membership,
                meter_point=request.meter_point,
                interval=interval,
                side=request.side,
                quantity_kwh=request.quantity_kwh,
                limit_price_per_kwh=request.limit_price_per_kwh,
                auto_accept_best_bids=request.auto_accept_best_bids,
                flexible=request.flexible,
                now=T0,
            )
        except ApplicationError as exc:
            outcomes.append((exc.code, exc.field))
        else:
            outcomes.append(_fields(posting))
    return outcomes


def _batch(interval: Interval, requests: list[PostingRequest]) -> list[tuple[object, ...]]:
    outcomes = postings_create_batch(interval=interval, requests=requests, now=T0)
    assert [o.request for o in outcomes] == requests
    return [
        (o.error.code, o.error.field) if o.error is not None else _fields(o.posting)
        for o in outcomes
    ]


def _fields(posting: Posting | None) -> tuple[object, ...]:
    assert posting is not None
    assert posting.pk is not None
    stored = Posting.objects.get(pk=posting.pk)
    return (
        stored.membership_id,
        stored.meter_point_id,
        stored.side,
        stored.quantity_kwh,
        stored.limit_price_per_kwh,
        stored.flexible,
        stored.auto_accept_best_bids,
        stored.submitted_at,
        stored.autopilot,
    )


def _request(who: Member, side: str = "sell", quantity: str = "1", price: str = "0.2",
             **kwargs: Any) -> PostingRequest:  # fmt: skip
    return PostingRequest(
        membership=who.membership,
        meter_point=who.meter_point,
        side=side,
        quantity_kwh=quantity,
        limit_price_per_kwh=price,
        **kwargs,
    )


def test_every_refusal_of_posting_create_and_nothing_else(db: None) -> None:
    community = new_community()
    one_by_one, batched = _two_intervals(community)
    alice, bob, carol, dave = (member(community) for _ in range(4))
    limit = str((D("20") * one_by_one.hours).quantize(D("0.001")))
    for interval in (one_by_one, batched):
        # Commitments from before the batch count: carol's own request and her bid on bob's
        # offer (a purchase) take most of her import capacity.
        posting_create(membership=carol.membership, meter_point=carol.meter_point,
                       interval=interval, side="buy", quantity_kwh=D("2"),
                       limit_price_per_kwh=D("0.3"), now=T0)  # fmt: skip
        offer = posting_create(membership=bob.membership, meter_point=bob.meter_point,
                               interval=interval, side="sell", quantity_kwh=D("2"),
                               limit_price_per_kwh=D("0.1"), now=T0)  # fmt: skip
        bid_create(posting=offer, membership=carol.membership, meter_point=carol.meter_point,
                   quantity_kwh=D("2"), price_per_kwh=D("0.2"), now=T0)  # fmt: skip
    Membership.objects.filter(pk=dave.membership.pk).update(status=MembershipStatus.SUSPENDED)
    requests = [
        _request(alice, "sell", "1.5", "0.12"),
        _request(alice, "buy", "2", "0.3", flexible=True, auto_accept_best_bids=False),
        _request(alice, "sell", "1", flexible=True),  # only a purchase can be flexible
        _request(alice, "hold"),  # no such side
        _request(alice, "sell", "0"),  # nothing
        _request(alice, "sell", "1.0004"),  # more places than a kWh has
        _request(alice, "sell", "1", "0.9"),  # above the cap
        _request(alice, "sell", "1", "abc"),  # not a number
        PostingRequest(alice.membership, bob.meter_point, "sell", "1", "0.2"),  # not hers
        _request(dave, "sell", "1"),  # suspended
        _request(carol, "buy", str(D(limit) - D("4"))),  # exactly what is left of import
        _request(carol, "buy", "0.001"),  # beyond: the request just before counts
        _request(bob, "sell", limit),  # his earlier offer counts against export
        _request(bob, "sell", str(D(limit) - D("2"))),
    ]
    expected = _one_by_one(one_by_one, requests)
    got = _batch(batched, requests)
    # The same outcome row by row; the postings differ only in their interval.
    assert got == expected
    sizes = [len(row) for row in got]
    assert sizes.count(2) == 10  # (code, field): refused
    assert len(sizes) - sizes.count(2) == 4  # posted


def test_a_closed_gate_refuses_every_row_and_writes_nothing(db: None) -> None:
    community = new_community()
    interval, _ = _two_intervals(community)
    alice, bob = member(community), member(community)
    outcomes = postings_create_batch(
        interval=interval,
        requests=[_request(alice), _request(bob, "buy")],
        now=interval.gate_closure_at,
    )
    assert [o.error.code if o.error else None for o in outcomes] == ["interval_closed"] * 2
    assert not Posting.objects.filter(interval=interval).exists()


def test_a_batch_costs_the_same_few_statements_at_any_size(
    db: None, django_assert_max_num_queries: Any
) -> None:
    community = new_community()
    interval, _ = _two_intervals(community)
    members = [member(community) for _ in range(25)]
    postings_create_batch(interval=interval, requests=[_request(members[0])], now=T0)  # warm
    # The interval, the meter points, their commitments, one insert; a savepoint pair.
    with django_assert_max_num_queries(7):
        outcomes = postings_create_batch(
            interval=interval, requests=[_request(m, "buy") for m in members], now=T0
        )
    assert all(o.posting is not None for o in outcomes)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.sampled_from(["buy", "sell"]),
            st.decimals(min_value=D("0.001"), max_value=D("4"), places=3),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_capacity_is_counted_in_turn_as_separate_posts_would(db: None, rows: list) -> None:
    community = new_community()
    one_by_one, batched = _two_intervals(community)
    people = [member(community) for _ in range(3)]
    requests = [_request(people[who], side, str(q)) for who, side, q in rows]
    assert _batch(batched, requests) == _one_by_one(one_by_one, requests)
