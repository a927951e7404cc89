"""interval_clear per market structure, with hand-checked numbers, and its invariants."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import MeterPoint
from config.errors import ErrorCode
from marketplace.clearing import MECHANISMS
from marketplace.models import (
    Bid,
    BidStatus,
    Interval,
    IntervalState,
    Posting,
    PostingStatus,
    Trade,
    TradeSource,
)
from marketplace.services.bids import bid_accept
from marketplace.services.clearing import Connection, exclusion_reason, interval_clear
from marketplace.tests.factories import T0, member, new_community, open_interval
from marketplace.tests.fixtures import bid, post, refused

D = Decimal
AFTER_GATE = T0 + timedelta(minutes=11)


def close_gate(interval: Interval) -> Interval:
    Interval.objects.filter(pk=interval.pk).update(state=IntervalState.GATE_CLOSED)
    interval.refresh_from_db()
    return interval


def trades(source: str) -> list[tuple]:
    return list(
        Trade.objects.filter(source=source)
        .order_by("sequence")
        .values_list("buyer_id", "seller_id", "quantity_kwh", "price_per_kwh",
                     "seller_price_per_kwh")
    )  # fmt: skip


def pool_book(structure: str, close: bool = True, **rules):
    """Sellers A 2 kWh @0.10, B 3 @0.20; buyers C 4 @0.30, D 2 @0.15 (one second apart).

    Supply 2@0.10, 5@0.20; demand 4@0.30, 6@0.15: they cross at 4 kWh with C's bid 0.30 and
    B's ask 0.20 marginal; the best excluded bid is D's 0.15, the best excluded ask B's own
    0.20, so the market-clearing interval is [max(0.20, 0.15), min(0.30, 0.20)] = [0.20, 0.20].
    """
    community = new_community(market_structure=structure, **rules)
    interval = open_interval(community)
    a, b, c, d = (member(community) for _ in range(4))
    post(a, interval, "sell", "2", "0.10", now=T0)
    post(b, interval, "sell", "3", "0.20", now=T0 + timedelta(seconds=1))
    post(c, interval, "buy", "4", "0.30", now=T0 + timedelta(seconds=2))
    post(d, interval, "buy", "2", "0.15", now=T0 + timedelta(seconds=3))
    ids = tuple(m.membership.pk for m in (a, b, c, d))
    return (close_gate(interval) if close else interval), ids


@pytest.mark.django_db
def test_pool_uniform_midpoint_with_grid_residual():
    interval, (a, b, c, d) = pool_book("pool")
    summary = interval_clear(interval=interval, now=AFTER_GATE)
    assert trades(TradeSource.POOL) == [
        (c, a, D("2"), D("0.20"), D("0.20")),
        (c, b, D("2"), D("0.20"), D("0.20")),
    ]
    # B's last kWh goes to the grid at feed-in, D's 2 kWh come from it at retail.
    assert sorted(trades(TradeSource.GRID), key=str) == sorted(
        [(None, b, D("1"), D("0.08"), D("0.08")), (d, None, D("2"), D("0.32"), D("0.32"))],
        key=str,
    )
    assert summary.clearing_price == D("0.20")
    assert (summary.pool_kwh, summary.grid_import_kwh, summary.grid_export_kwh) == (
        D("4"), D("2"), D("1"),
    )  # fmt: skip
    assert (summary.pool_trades, summary.grid_trades, summary.bilateral_trades) == (2, 2, 0)
    assert summary.postings == 4
    assert set(Posting.objects.values_list("status", flat=True)) == {PostingStatus.FILLED}
    grid = Trade.objects.filter(source=TradeSource.GRID).first()
    assert grid is not None
    assert grid.posting_id is not None


@pytest.mark.django_db
@pytest.mark.parametrize("k", ["1", "0", "0.25"])
def test_pool_uniform_k_pricing_on_a_point_interval(k):
    # [a, b] = [0.20, 0.20]: every k gives 0.20 (B would sell more at any higher price).
    interval, _ = pool_book("pool", pricing_rule="k", pricing_k=D(k))
    summary = interval_clear(interval=interval, now=AFTER_GATE)
    assert summary.clearing_price == D("0.20")
    assert {t[3] for t in trades(TradeSource.POOL)} == {D("0.20")}


@pytest.mark.django_db
@pytest.mark.parametrize(("k", "prices"), [("0.5", ("0.20", "0.25")), ("0.25", ("0.15", "0.225"))])
def test_pool_discriminatory_k_pricing(k, prices):
    interval, _ = pool_book(
        "pool", clearing_mechanism="discriminatory", pricing_rule="k", pricing_k=D(k)
    )
    interval_clear(interval=interval, now=AFTER_GATE)
    # Each pair at ask + k (bid - ask): C-A 0.10 + k 0.20, C-B 0.20 + k 0.10.
    assert [t[3] for t in trades(TradeSource.POOL)] == [D(p) for p in prices]


@pytest.mark.django_db
def test_pool_pay_as_bid():
    interval, (a, b, c, _) = pool_book("pool", clearing_mechanism="pay-as-bid")
    summary = interval_clear(interval=interval, now=AFTER_GATE)
    # Each pair at the buyer's bid: C's 0.30.
    assert trades(TradeSource.POOL) == [
        (c, a, D("2"), D("0.30"), D("0.30")),
        (c, b, D("2"), D("0.30"), D("0.30")),
    ]
    assert summary.clearing_price is None


@pytest.mark.django_db
def test_pool_trade_reduction():
    interval, (a, b, c, d) = pool_book("pool", clearing_mechanism="trade-reduction")
    summary = interval_clear(interval=interval, now=AFTER_GATE)
    # p0 = (0.15 + 0.20) / 2 = 0.175 < s_k = 0.20: the marginal 0.001 kWh step (of C-B) is
    # dropped; C pays b_k = 0.30, A and B receive s_k = 0.20, the community keeps 3.999 x 0.10.
    assert trades(TradeSource.POOL) == [
        (c, a, D("2"), D("0.30"), D("0.20")),
        (c, b, D("1.999"), D("0.30"), D("0.20")),
    ]
    assert summary.surplus == D("0.3999")
    grid = {(t[0], t[1]): t[2] for t in trades(TradeSource.GRID)}
    assert grid == {(c, None): D("0.001"), (d, None): D("2"), (None, b): D("1.001")}


@pytest.mark.django_db
def test_bilateral_auto_accepts_best_bids_and_expires_the_rest():
    community = new_community(market_structure="bilateral")
    interval = open_interval(community)
    s, x, y, z, w = (member(community) for _ in range(5))
    offer = post(s, interval, "sell", "5", "0.10")
    bx = bid(x, offer, "2", "0.15", now=T0 + timedelta(seconds=1))
    by = bid(y, offer, "4", "0.12", now=T0 + timedelta(seconds=2))
    bz = bid(z, offer, "1", "0.15", now=T0 + timedelta(seconds=3))
    manual = post(w, interval, "sell", "1", "0.10", auto_accept_best_bids=False)
    bw = bid(x, manual, "1", "0.20")
    lonely = post(y, interval, "buy", "1", "0.30")
    summary = interval_clear(interval=close_gate(interval), now=AFTER_GATE)
    # Best price first, ties by time: X 2 and Z 1 at 0.15, then Y the 2 kWh left at 0.12.
    assert trades(TradeSource.BILATERAL) == [
        (x.membership.pk, s.membership.pk, D("2"), D("0.15"), D("0.15")),
        (z.membership.pk, s.membership.pk, D("1"), D("0.15"), D("0.15")),
        (y.membership.pk, s.membership.pk, D("2"), D("0.12"), D("0.12")),
    ]
    assert not Trade.objects.exclude(source=TradeSource.BILATERAL).exists()
    assert (summary.bids_accepted, summary.bids_expired, summary.bilateral_kwh) == (3, 1, D("5"))
    statuses = {p.pk: (p.status, p.allocated_kwh) for p in Posting.objects.all()}
    assert statuses[offer.pk] == (PostingStatus.FILLED, D("5"))
    assert statuses[manual.pk] == (PostingStatus.CLOSED, D("0"))
    assert statuses[lonely.pk] == (PostingStatus.CLOSED, D("0"))
    for one, status, kwh in ((bx, "accepted", "2"), (by, "accepted", "2"), (bz, "accepted", "1"),
                             (bw, "expired", "0")):  # fmt: skip
        one.refresh_from_db()
        assert (one.status, one.accepted_kwh) == (status, D(kwh))


@pytest.mark.django_db
def test_composite_bilateral_then_pool_then_grid():
    interval, (a, _b, _c, _d) = pool_book("composite", close=False)
    e = member(interval.community)
    offer_a = Posting.objects.get(membership_id=a)
    made = bid(e, offer_a, "1", "0.12")
    # A manual acceptance before the gate takes bilateral sequence 1; clearing continues at 2.
    f = member(interval.community)
    offer_f = post(f, interval, "sell", "1", "0.30")
    manual = bid(e, offer_f, "0.5", "0.30")
    bid_accept(bid=manual, by_membership=f.membership, now=T0)
    interval = close_gate(interval)
    summary = interval_clear(interval=interval, now=AFTER_GATE)
    bilateral = list(
        Trade.objects.filter(source=TradeSource.BILATERAL)
        .order_by("sequence")
        .values_list("sequence", "seller_id", "quantity_kwh", "price_per_kwh")
    )
    assert bilateral == [(1, f.membership.pk, D("0.5"), D("0.30")), (2, a, D("1"), D("0.12"))]
    # Pool: A 1 @0.10, B 3 @0.20, F 0.5 @0.30 against C 4 @0.30, D 2 @0.15: 4 kWh cross
    # (A 1, B 3); best excluded bid D 0.15, ask F 0.30: [max(0.20, 0.15), min(0.30, 0.30)],
    # midpoint 0.25.
    assert summary.pool_kwh == D("4")
    assert summary.clearing_price == D("0.25")
    assert summary.grid_export_kwh == D("0.5")  # F's rest
    assert summary.grid_import_kwh == D("2")  # D
    made.refresh_from_db()
    assert made.status == BidStatus.ACCEPTED


@pytest.mark.django_db
def test_clearing_refuses_open_interval_and_second_run():
    interval, _ = pool_book("pool")
    Interval.objects.filter(pk=interval.pk).update(state=IntervalState.OPEN)
    with refused(ErrorCode.INVALID_STATE, "interval"):
        interval_clear(interval=interval, now=AFTER_GATE)
    close_gate(interval)
    interval_clear(interval=interval, now=AFTER_GATE)
    with refused(ErrorCode.CONFLICT, "interval"):
        interval_clear(interval=interval, now=AFTER_GATE)


@pytest.mark.django_db
def test_empty_interval_clears_to_nothing():
    community = new_community()
    summary = interval_clear(interval=close_gate(open_interval(community)), now=AFTER_GATE)
    assert summary.postings == summary.pool_trades == summary.grid_trades == 0
    assert summary.clearing_price is None


_slugs = itertools.count()
order_strategy = st.tuples(
    st.sampled_from(["buy", "sell"]),
    st.integers(1, 4000).map(lambda m: D(m) / 1000),  # kWh, within 5 kWh capacity
    st.integers(0, 50).map(lambda t: D(t) / 100),  # 0.00 .. 0.50 per kWh
    st.booleans(),  # auto accept
)


@pytest.mark.django_db
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    structure=st.sampled_from(["bilateral", "pool", "composite"]),
    mechanism=st.sampled_from(sorted(MECHANISMS)),
    book=st.lists(order_strategy, min_size=0, max_size=8),
    bid_picks=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 3), st.integers(1, 100)),
                       max_size=6),
)  # fmt: skip
def test_random_books_keep_energy_and_limits(structure, mechanism, book, bid_picks):
    community = new_community(
        slug=f"prop-{next(_slugs)}", market_structure=structure, clearing_mechanism=mechanism
    )
    interval = open_interval(community)
    members = [member(community) for _ in range(len(book))]
    bidders = [member(community) for _ in range(4)]
    postings = [
        post(m, interval, side, str(q), str(p), auto_accept_best_bids=auto,
             now=T0 + timedelta(seconds=i))
        for i, (m, (side, q, p, auto)) in enumerate(zip(members, book, strict=True))
    ]  # fmt: skip
    if structure != "pool":
        for n, (which, who, share) in enumerate(bid_picks):
            if not postings:
                break
            target = postings[which % len(postings)]
            quantity = max(D("0.001"), (target.quantity_kwh * share / 100).quantize(D("0.001")))
            price = target.limit_price_per_kwh
            try:
                bid(bidders[who], target, str(quantity), str(price),
                    now=T0 + timedelta(seconds=100 + n))  # fmt: skip
            except Exception:  # noqa: S112 - over capacity draws are simply skipped
                continue
    interval_clear(interval=close_gate(interval), now=AFTER_GATE)

    saved = list(Trade.objects.filter(interval=interval).select_related("posting", "bid"))
    limits = {p.pk: p for p in Posting.objects.filter(interval=interval)}
    traded_by_posting: dict[int, Decimal] = {}
    for trade in saved:
        assert trade.quantity_kwh > 0
        if trade.source == TradeSource.GRID:
            continue
        assert trade.price_per_kwh >= trade.seller_price_per_kwh
    for p in limits.values():
        assert p.allocated_kwh <= p.quantity_kwh
    # Per posting: bilateral and pool trades naming it never exceed its quantity, and prices
    # respect its limit from both sides.
    for trade in saved:
        if trade.source == TradeSource.BILATERAL:
            assert trade.posting_id is not None
            posting = limits[trade.posting_id]
            traded_by_posting[posting.pk] = traded_by_posting.get(posting.pk, D(0)) + (
                trade.quantity_kwh
            )
            if posting.side == "sell":
                assert trade.seller_price_per_kwh >= posting.limit_price_per_kwh
            else:
                assert trade.price_per_kwh <= posting.limit_price_per_kwh
    # Every order that can reach the pool, by (member, side): postings, and in a composite
    # market the bids that were still pending at gate closure.
    pool_orders: dict[tuple[int | None, str], list[tuple[Decimal, Decimal]]] = defaultdict(list)
    for p in limits.values():
        pool_orders[p.membership_id, p.side].append((p.limit_price_per_kwh, p.quantity_kwh))
    bids = list(Bid.objects.filter(posting__interval=interval).select_related("posting"))
    for b in bids:
        side = "buy" if b.posting.side == "sell" else "sell"
        if b.status == BidStatus.POOLED:
            assert structure == "composite"
            assert 0 < b.accepted_kwh <= b.quantity_kwh
        pool_orders[b.membership_id, side].append((b.price_per_kwh, b.quantity_kwh))
        assert b.status in (BidStatus.ACCEPTED, BidStatus.POOLED, BidStatus.EXPIRED)
    by_member_side: dict[tuple[int | None, str], Decimal] = {}
    for trade in saved:
        if trade.source == TradeSource.POOL:
            assert trade.price_per_kwh <= max(lim for lim, _ in pool_orders[trade.buyer_id, "buy"])
            assert trade.seller_price_per_kwh >= min(
                lim for lim, _ in pool_orders[trade.seller_id, "sell"]
            )
        for key in ((trade.buyer_id, "buy"), (trade.seller_id, "sell")):
            if key[0] is not None:
                by_member_side[key] = by_member_side.get(key, D(0)) + trade.quantity_kwh
    for pk, kwh in traded_by_posting.items():
        assert kwh <= limits[pk].quantity_kwh
    # A bidder trades exactly what its bids were accepted or pooled for.
    posters = {p.membership_id for p in limits.values()}
    for who in {b.membership_id for b in bids} - posters:
        for side in ("buy", "sell"):
            done = sum(
                (b.accepted_kwh for b in bids
                 if b.membership_id == who and b.posting.side != side),
                D(0),
            )  # fmt: skip
            assert by_member_side.get((who, side), D(0)) == done
    # Each poster trades at most what they posted (bidders are separate members).
    for p in limits.values():
        assert by_member_side.get((p.membership_id, p.side), D(0)) <= p.quantity_kwh
        if structure != "bilateral":
            # Peers or the grid took every posted kWh.
            assert by_member_side.get((p.membership_id, p.side), D(0)) == p.quantity_kwh
    peer = [t for t in saved if t.source != TradeSource.GRID]
    sold = sum((t.quantity_kwh for t in peer if t.seller_id), D(0))
    bought = sum((t.quantity_kwh for t in peer if t.buyer_id), D(0))
    assert sold == bought
    money_paid = sum((t.quantity_kwh * t.price_per_kwh for t in peer), D(0))
    money_received = sum((t.quantity_kwh * t.seller_price_per_kwh for t in peer), D(0))
    assert money_paid >= money_received  # the difference is trade reduction's surplus
    sequences = [(t.source, t.sequence) for t in saved]
    assert len(sequences) == len(set(sequences))


def test_order_ids_sort_as_the_rows_were_inserted() -> None:
    # Exact ties in time priority break by id; "p10" before "p9" would make the same orders
    # clear differently once the database held ten rows more.
    from marketplace.services.clearing import order_key

    keys = [order_key("p", pk) for pk in (9, 10, 99, 100, 2**62)]
    assert sorted(keys) == keys


# --- One bad order never blocks an interval ---------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("structure", ["pool", "composite", "bilateral"])
def test_an_order_clearing_cannot_take_is_excluded_and_the_rest_clears(structure):
    interval, (a, b, c, _d) = pool_book(structure, close=False)
    fraud = member(interval.community)
    # Written around the services (posting refuses both): 2,000,000 kWh on a 20 kW meter, and
    # an offer from a meter point its manager has not approved.
    huge = Posting.objects.create(
        interval=interval, membership=fraud.membership, meter_point=fraud.meter_point,
        side="sell", quantity_kwh=D("2000000"), limit_price_per_kwh=D("0.0100"),
        submitted_at=T0,
    )  # fmt: skip
    unapproved = member(interval.community)
    MeterPoint.objects.filter(pk=unapproved.meter_point.pk).update(status="pending")
    pending = Posting.objects.create(
        interval=interval, membership=unapproved.membership, meter_point=unapproved.meter_point,
        side="sell", quantity_kwh=D("1"), limit_price_per_kwh=D("0.0100"), submitted_at=T0,
    )  # fmt: skip
    summary = interval_clear(interval=close_gate(interval), now=AFTER_GATE)
    huge.refresh_from_db()
    pending.refresh_from_db()
    assert (huge.status, pending.status) == (PostingStatus.EXCLUDED, PostingStatus.EXCLUDED)
    assert "approved capacity" in huge.exclusion_reason
    assert "5.000 kWh" in huge.exclusion_reason
    assert "not approved" in pending.exclusion_reason
    assert summary.excluded_postings == 2
    assert Posting.objects.filter(status=PostingStatus.EXCLUDED).count() == 2  # only those
    assert not Trade.objects.filter(posting__in=[huge, pending]).exists()
    assert not Trade.objects.filter(seller=fraud.membership).exists()
    if structure != "bilateral":
        # The others clear exactly as they would have without the two.
        assert trades(TradeSource.POOL) == [
            (c, a, D("2"), D("0.20"), D("0.20")),
            (c, b, D("2"), D("0.20"), D("0.20")),
        ]


def test_exclusion_reason_is_a_plain_function():
    ok = Connection(True, D("10"), D("4"))
    assert exclusion_reason(side="sell", quantity_kwh=D("1"), connection=ok, hours=D("0.25")) == ""
    assert exclusion_reason(side="buy", quantity_kwh=D("2.5"), connection=ok, hours=D("0.25")) == ""
    assert "1.000 kWh" in exclusion_reason(
        side="sell", quantity_kwh=D("1.001"), connection=ok, hours=D("0.25")
    )
    assert "not approved" in exclusion_reason(
        side="buy", quantity_kwh=D("1"), connection=Connection(False, D("10"), D("4")),
        hours=D("0.25"),
    )  # fmt: skip
    assert "not approved" in exclusion_reason(
        side="buy", quantity_kwh=D("1"), connection=None, hours=D("0.25")
    )
