"""The region's market over communities' residuals: hand-worked books and its invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.clearing import ClearingError, Side
from marketplace.clearing.region import (
    REGION_MECHANISMS,
    Residual,
    region_clear,
    residual_order,
    tariff_position,
)

D = Decimal
T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def residual(name: str, imp: str, exp: str, retail: str = "0.32", feed_in: str = "0.08",
             second: int = 0) -> Residual:  # fmt: skip
    return Residual(name, D(imp), D(exp), D(retail), D(feed_in), T + timedelta(seconds=second))


def test_the_manager_offers_the_net_surplus_at_the_tariff_position() -> None:
    # Exports 5, imports 2: offers 3 kWh at 0.08 + 0.25 * 0.24 = 0.14.
    order = residual_order(residual("c1", "2", "5"), offer_k=D("0.25"), request_k=D("0.75"))
    assert order is not None
    assert (order.side, order.quantity, order.price) == (Side.SELL, D("3.000"), D("0.1400"))
    # Imports 4, exports 1: requests 3 kWh at 0.08 + 0.75 * 0.24 = 0.26.
    order = residual_order(residual("c2", "4", "1"), offer_k=D("0.25"), request_k=D("0.75"))
    assert order is not None
    assert (order.side, order.quantity, order.price) == (Side.BUY, D("3.000"), D("0.2600"))
    assert residual_order(residual("c3", "2", "2"), offer_k=D(0), request_k=D(1)) is None
    # A feed-in above retail leaves no price between the tariffs.
    assert residual_order(residual("c4", "1", "0", "0.05", "0.08"), offer_k=D(0),
                          request_k=D(1)) is None  # fmt: skip


def test_positions_round_inwards_so_they_stay_between_the_tariffs() -> None:
    # 0.0801 + 0.333 * 0.2399 = 0.1599867: an ask rounds up, a bid down.
    assert tariff_position(D("0.0801"), D("0.32"), D("0.333"), up=True) == D("0.1600")
    assert tariff_position(D("0.0801"), D("0.32"), D("0.333"), up=False) == D("0.1599")
    assert tariff_position(D("0.0801"), D("0.32"), D(0), up=True) == D("0.0801")
    assert tariff_position(D("0.0801"), D("0.32"), D(1), up=False) == D("0.3200")


def test_three_communities_meet_before_the_grid() -> None:
    """A offers 4 kWh, B requests 3 and C requests 2; equal tariffs 0.08 / 0.32.

    Truthful positions (k_offer 0, k_request 1): ask 0.08, bids 0.32 and 0.32. All 4 kWh of
    supply trade (m = 4,000 steps of 0.001 kWh); the best excluded bid is C's 0.32 (1 kWh
    unserved), and no ask is excluded: [a, b] = [max(0.08, 0.32), min(0.32, +inf)] =
    [0.32, 0.32], p = 0.32: demand exceeds supply, so the buyers' limit sets the price. B came
    first (time priority) and is served in full. With k_request 0.75 the bids are 0.26,
    [a, b] = [0.26, 0.26].
    """
    books = [residual("a", "0", "4"), residual("b", "3", "0", second=1),
             residual("c", "2", "0", second=2)]  # fmt: skip
    result = region_clear(books, request_k=D(1))
    assert result.clearing.price == D("0.3200")
    assert result.traded_kwh == {"a": D("4.000"), "b": D("3.000"), "c": D("1.000")}
    assert result.outside_kwh("c") == D("1.000")  # C's last kWh comes from the grid
    assert result.outside_kwh("a") == D(0)
    result = region_clear(books, offer_k=D("0.25"), request_k=D("0.75"))
    assert result.clearing.price == D("0.2600")


def test_the_region_price_falls_between_the_marginal_communities_tariffs() -> None:
    """A offers 3 at its feed-in 0.10; B requests 3 at its retail 0.30: [a, b] = [0.10, 0.30],
    p = 0.20 at k = 1/2 (no excluded order on either side)."""
    result = region_clear(
        [residual("a", "0", "3", "0.35", "0.10"), residual("b", "3", "0", "0.30", "0.06")]
    )
    assert result.clearing.price == D("0.2000")
    assert [(m.buyer, m.seller, m.quantity) for m in result.trades] == [("b", "a", D("3.000"))]


def test_bad_region_inputs_are_refused() -> None:
    with pytest.raises(ClearingError, match="region clears with one of"):
        region_clear([], mechanism="trade-reduction")
    with pytest.raises(ClearingError, match="one residual"):
        region_clear([residual("a", "1", "0"), residual("a", "0", "1")])
    with pytest.raises(ClearingError, match="k must be in"):
        region_clear([], offer_k=D("1.5"))
    with pytest.raises(ClearingError, match="takes no k"):
        region_clear([], mechanism="pay-as-bid", k=D("0.5"))


kwh = st.integers(min_value=0, max_value=9000).map(lambda n: D(n) / 1000)
tick = st.integers(min_value=0, max_value=5000).map(lambda n: D(n) / 10000)
ks = st.integers(min_value=0, max_value=1000).map(lambda n: D(n) / 1000)


@st.composite
def residual_books(draw: st.DrawFn) -> list[Residual]:
    count = draw(st.integers(min_value=1, max_value=6))
    books = []
    for i in range(count):
        low, high = sorted((draw(tick), draw(tick)))
        books.append(
            Residual(
                f"c{i}",
                draw(kwh),
                draw(kwh),
                high,
                low,
                T + timedelta(seconds=draw(st.integers(0, 3))),
            )
        )
    return books


@settings(max_examples=150, deadline=None)
@given(
    books=residual_books(),
    mechanism=st.sampled_from(REGION_MECHANISMS),
    k=ks,
    offer_k=ks,
    request_k=ks,
)
def test_the_region_never_overfills_a_residual_and_balances_its_budget(
    books: list[Residual], mechanism: str, k: D, offer_k: D, request_k: D
) -> None:
    result = region_clear(
        books,
        mechanism=mechanism,
        k=None if mechanism == "pay-as-bid" else k,
        offer_k=offer_k,
        request_k=request_k,
    )
    by_name = {r.community: r for r in books}
    bought: dict[str, D] = {}
    sold: dict[str, D] = {}
    for match in result.trades:
        buyer, seller = by_name[match.buyer], by_name[match.seller]
        assert match.buyer != match.seller
        assert match.quantity > 0
        bought[match.buyer] = bought.get(match.buyer, D(0)) + match.quantity
        sold[match.seller] = sold.get(match.seller, D(0)) + match.quantity
        # Budget balance: what the buyer community pays, the seller community receives.
        assert match.price == match.seller_price
        # Never worse than the grid for either community.
        assert seller.feed_in <= match.price <= buyer.retail
    for name, quantity in bought.items():
        assert quantity <= by_name[name].net_kwh  # never more than the deficit
        assert name not in sold  # one side per community
    for name, quantity in sold.items():
        assert quantity <= -by_name[name].net_kwh  # never more than the surplus
    assert result.clearing.buyer_payments == result.clearing.seller_receipts
    assert sum(bought.values(), D(0)) == sum(sold.values(), D(0))
    for residual_ in books:
        outside = result.outside_kwh(residual_.community)
        assert outside >= 0
        traded = result.traded_kwh.get(residual_.community, D(0))
        assert traded + outside == abs(residual_.net_kwh)
