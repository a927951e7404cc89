"""Tests for automatic bid acceptance on the bilateral board and the grid residual."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.clearing import (
    ClearingError,
    GridTrade,
    Match,
    Order,
    Side,
    bilateral_accept,
    grid_residual,
    uniform_price,
)
from marketplace.tests.clearing.helpers import T0, books, buy, sell

D = Decimal


def test_sell_posting_accepts_highest_bids_first_at_bid_price() -> None:
    posting = sell("post", "5", "0.20")
    bids = [
        buy("low", "3", "0.19"),  # below the posting's limit: never accepted
        buy("mid-late", "2", "0.25", 9),
        buy("high", "2", "0.30", 5),
        buy("mid-early", "2", "0.25", 1),
    ]
    # remaining 5: high 2 @0.30, mid-early 2 @0.25 (earlier than mid-late), mid-late 1 of 2.
    assert bilateral_accept(posting, bids, remaining=D(5)) == (
        Match("high", "post", D(2), D("0.30"), D("0.30")),
        Match("mid-early", "post", D(2), D("0.25"), D("0.25")),
        Match("mid-late", "post", D(1), D("0.25"), D("0.25")),
    )


def test_buy_posting_accepts_cheapest_offers_up_to_remaining() -> None:
    posting = buy("post", "4", "0.25")
    bids = [sell("a", "3", "0.22"), sell("b", "3", "0.18"), sell("c", "1", "0.26")]
    # remaining 3.5 of 4: b 3 @0.18, then a 0.5 @0.22; c is above the posting's limit.
    assert bilateral_accept(posting, bids, remaining=D("3.5")) == (
        Match("post", "b", D(3), D("0.18"), D("0.18")),
        Match("post", "a", D("0.5"), D("0.22"), D("0.22")),
    )
    assert bilateral_accept(posting, bids, remaining=D(0)) == ()


def test_bilateral_rejects_bad_input() -> None:
    posting = sell("post", "1", "0.2")
    with pytest.raises(ClearingError, match="same side"):
        bilateral_accept(posting, [sell("x", "1", "0.3")], remaining=D(1))
    with pytest.raises(ClearingError, match="remaining"):
        bilateral_accept(posting, [], remaining=D(2))
    with pytest.raises(ClearingError, match="duplicate bid id"):
        bilateral_accept(posting, [buy("x", "1", "1"), buy("x", "1", "1")], remaining=D(1))


@settings(max_examples=60, deadline=None)
@given(book=books(), remaining_milli=st.integers(0, 20_000), sell_posting=st.booleans())
def test_bilateral_properties(book: list[Order], remaining_milli: int, sell_posting: bool) -> None:
    bid_side = Side.BUY if sell_posting else Side.SELL
    bids = [o for o in book if o.side == bid_side]
    posting_side = Side.SELL if sell_posting else Side.BUY
    posting = Order("posting", posting_side, D(20), D("0.07"), T0)
    remaining = D(remaining_milli).scaleb(-3)
    matches = bilateral_accept(posting, bids, remaining=remaining)
    assert sum((m.quantity for m in matches), D(0)) <= remaining
    by_id = {b.id: b for b in bids}
    accepted = []
    for m in matches:
        bid = by_id[m.buyer if sell_posting else m.seller]
        accepted.append(bid.id)
        assert m.price == m.seller_price == bid.price
        assert 0 < m.quantity <= bid.quantity
        assert bid.price >= posting.price if sell_posting else bid.price <= posting.price
    # Any qualifying bid left out entirely must rank no better than every accepted one.
    if matches:
        worst = by_id[accepted[-1]]
        for bid in bids:
            qualifies = bid.price >= posting.price if sell_posting else bid.price <= posting.price
            if qualifies and bid.id not in accepted:
                assert (bid.price <= worst.price) if sell_posting else (bid.price >= worst.price)


def test_grid_residual_known_answer() -> None:
    # b 5 kWh @0.40 vs s 2 kWh @0.10: 2 kWh trade; b's other 3 kWh come from the grid at retail.
    # s2 @0.50 does not trade: all 1 kWh goes to the grid at feed-in.
    orders = [buy("b", "5", "0.40"), sell("s", "2", "0.10"), sell("s2", "1", "0.50")]
    result = uniform_price(orders)
    assert grid_residual(orders, result, retail=D("0.30"), feed_in=D("0.05")) == (
        GridTrade("b", Side.BUY, D(3), D("0.30")),
        GridTrade("s2", Side.SELL, D(1), D("0.05")),
    )


def test_grid_residual_rejects_foreign_trades() -> None:
    orders = [buy("b", "1", "0.40"), sell("s", "1", "0.10")]
    result = uniform_price(orders)
    with pytest.raises(ClearingError, match="not a sell order"):
        grid_residual(orders[:1], result, retail=D("0.3"), feed_in=D("0.05"))
