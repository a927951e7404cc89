"""Known-answer tests for the pooled mechanisms, each worked by hand in the comments."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from marketplace.clearing import (
    ClearingError,
    Order,
    Side,
    clear,
    pay_as_bid,
    trade_reduction,
    uniform_price,
)
from marketplace.tests.clearing.helpers import T0, buy, sell, triples

D = Decimal

# Book A: the marginal bid and ask have the same price.
#   demand: b1 3 kWh @ 0.30 (cum 3), b2 2 kWh @ 0.20 (cum 5)
#   supply: s1 2 kWh @ 0.10 (cum 2), s2 4 kWh @ 0.20 (cum 6)
#   units 1-2: 0.30 vs 0.10 trade; unit 3: 0.30 vs 0.20 trade; units 4-5: 0.20 vs 0.20 trade
#   (equal prices trade); unit 6 has no bid. Volume 5 kWh; marginal bid = ask = 0.20.
#   Merit-order walk: b1-s1 2, b1-s2 1, b2-s2 2.
#   Welfare = 2*(0.30-0.10) + 1*(0.30-0.20) + 2*(0.20-0.20) = 0.40 + 0.10 + 0 = 0.50.
BOOK_A = [
    buy("b1", "3", "0.30"),
    buy("b2", "2", "0.20", 1),
    sell("s1", "2", "0.10"),
    sell("s2", "4", "0.20"),
]

# Book B: partial fill of the marginal seller.
#   demand: b1 5 @ 0.40 (cum 5), b2 1 @ 0.25 (cum 6)
#   supply: s1 2 @ 0.10 (cum 2), s2 2 @ 0.20 (cum 4), s3 3 @ 0.30 (cum 7)
#   units 1-2: 0.40/0.10, 3-4: 0.40/0.20, 5: 0.40/0.30 trade; unit 6: 0.25 < 0.30 stops.
#   Volume 5; marginal bid 0.40 (b1), marginal ask 0.30 (s3, 1 of its 3 kWh).
#   Welfare = 2*0.30 + 2*0.20 + 1*0.10 = 1.10.
BOOK_B = [
    buy("b1", "5", "0.40"),
    buy("b2", "1", "0.25"),
    sell("s1", "2", "0.10"),
    sell("s2", "2", "0.20"),
    sell("s3", "3", "0.30"),
]


def test_uniform_trades_when_marginal_bid_equals_ask() -> None:
    result = uniform_price(BOOK_A)
    # Midpoint of 0.20 and 0.20 is 0.20.
    assert result.price == D("0.2000")
    assert triples(result) == [
        ("b1", "s1", D("2"), D("0.2"), D("0.2")),
        ("b1", "s2", D("1"), D("0.2"), D("0.2")),
        ("b2", "s2", D("2"), D("0.2"), D("0.2")),
    ]
    assert result.volume == D(5)
    assert result.welfare == D("0.5")
    # 5 kWh * 0.20 = 1.00 each way; no surplus.
    assert result.buyer_payments == result.seller_receipts == D("1.00")
    assert result.surplus == 0


def test_uniform_partial_fill_midpoint() -> None:
    result = uniform_price(BOOK_B)
    # (0.40 + 0.30) / 2 = 0.35
    assert result.price == D("0.35")
    assert [(m.buyer, m.seller, m.quantity) for m in result.trades] == [
        ("b1", "s1", D(2)),
        ("b1", "s2", D(2)),
        ("b1", "s3", D(1)),
    ]
    assert result.welfare == D("1.10")
    # 5 kWh * 0.35 = 1.75
    assert result.buyer_payments == D("1.75")


@pytest.mark.parametrize(
    ("k", "price"),
    [
        ("0", "0.30"),  # k = 0: 0*0.40 + 1*0.30 = 0.30, the marginal ask
        ("1", "0.40"),  # k = 1: the marginal bid
        ("0.25", "0.325"),  # 0.25*0.40 + 0.75*0.30 = 0.100 + 0.225 = 0.325
    ],
)
def test_uniform_k_pricing(k: str, price: str) -> None:
    assert uniform_price(BOOK_B, pricing="k", k=D(k)).price == D(price)
    assert clear("uniform", BOOK_B, k=D(k)).price == D(price)


def test_uniform_price_rounds_half_even_to_the_tick() -> None:
    # bid 0.4003, ask 0.3000: midpoint 3501.5 ticks -> half-even -> 3502 ticks = 0.3502
    assert uniform_price([buy("b", "1", "0.4003"), sell("s", "1", "0.3")]).price == D("0.3502")
    # bid 0.4001, ask 0.3000: 3500.5 ticks -> 3500 = 0.3500
    assert uniform_price([buy("b", "1", "0.4001"), sell("s", "1", "0.3")]).price == D("0.35")


def test_pay_as_bid_prices_each_pair_at_its_own_midpoint() -> None:
    result = pay_as_bid(BOOK_A)
    # b1-s1: (0.30+0.10)/2 = 0.20; b1-s2: (0.30+0.20)/2 = 0.25; b2-s2: (0.20+0.20)/2 = 0.20
    assert triples(result) == [
        ("b1", "s1", D("2"), D("0.2"), D("0.2")),
        ("b1", "s2", D("1"), D("0.25"), D("0.25")),
        ("b2", "s2", D("2"), D("0.2"), D("0.2")),
    ]
    assert result.price is None
    # 2*0.20 + 1*0.25 + 2*0.20 = 1.05
    assert result.buyer_payments == D("1.05")
    assert result.welfare == uniform_price(BOOK_A).welfare


def test_trade_reduction_with_exhausted_demand_drops_marginal_pair() -> None:
    # Book A: all demand trades, so there is no b_{k+1}: no p0, reduction branch.
    # Marginal pair b2-s2 (2 kWh) is dropped; buyers pay b_k = 0.20, sellers get s_k = 0.20.
    result = trade_reduction(BOOK_A)
    assert triples(result) == [
        ("b1", "s1", D("2"), D("0.2"), D("0.2")),
        ("b1", "s2", D("1"), D("0.2"), D("0.2")),
    ]
    assert result.price is None
    assert result.volume == D(3)


def test_trade_reduction_partial_fill_pays_surplus_to_community() -> None:
    # Book B: b_k = 0.40, s_k = 0.30; first untraded units: bid 0.25 (b2), ask 0.30 (rest of s3)
    # p0 = (0.25 + 0.30)/2 = 0.275 < s_k = 0.30, so reduce: drop b1-s3 (1 kWh).
    # b1-s1 2 kWh and b1-s2 2 kWh: buyer pays 0.40, sellers receive 0.30.
    result = trade_reduction(BOOK_B)
    assert triples(result) == [
        ("b1", "s1", D("2"), D("0.4"), D("0.3")),
        ("b1", "s2", D("2"), D("0.4"), D("0.3")),
    ]
    # payments 4*0.40 = 1.60, receipts 4*0.30 = 1.20, surplus 0.40
    assert result.buyer_payments == D("1.6")
    assert result.seller_receipts == D("1.2")
    assert result.surplus == D("0.4")
    # welfare 2*(0.40-0.10) + 2*(0.40-0.20) = 0.60 + 0.40 = 1.00
    assert result.welfare == D("1.0")


def test_trade_reduction_p0_branch_keeps_every_trade() -> None:
    # bids 0.50, 0.40, 0.20; asks 0.10, 0.30, 0.45 (1 kWh each).
    # k = 2 (0.40 >= 0.30, 0.20 < 0.45); p0 = (0.20 + 0.45)/2 = 0.325 in [0.30, 0.40]:
    # both pairs trade at 0.325.
    book = [
        buy("b1", "1", "0.50"),
        buy("b2", "1", "0.40"),
        buy("b3", "1", "0.20"),
        sell("s1", "1", "0.10"),
        sell("s2", "1", "0.30"),
        sell("s3", "1", "0.45"),
    ]
    result = trade_reduction(book)
    assert result.price == D("0.325")
    assert triples(result) == [
        ("b1", "s1", D(1), D("0.325"), D("0.325")),
        ("b2", "s2", D(1), D("0.325"), D("0.325")),
    ]
    # Uniform on the same book: (0.40 + 0.30)/2 = 0.35
    assert uniform_price(book).price == D("0.35")


def test_trade_reduction_single_pair_reduces_to_nothing() -> None:
    # One pair only: no excluded units, reduction drops the only pair.
    assert trade_reduction([buy("b", "1", "0.3"), sell("s", "1", "0.2")]).trades == ()


@pytest.mark.parametrize("mechanism", ["uniform", "pay-as-bid", "trade-reduction"])
@pytest.mark.parametrize(
    "orders",
    [
        [],
        [buy("b", "1", "0.3")],
        [sell("s", "1", "0.1")],
        # no cross: best bid 0.10 below best ask 0.20
        [buy("b", "1", "0.10"), sell("s", "1", "0.20")],
    ],
    ids=["empty", "buy-only", "sell-only", "no-cross"],
)
def test_no_trade(mechanism: str, orders: list[Order]) -> None:
    result = clear(mechanism, orders)
    assert result.trades == ()
    assert result.price is None
    assert result.volume == 0
    assert result.welfare == 0


def test_time_then_id_priority_on_equal_prices() -> None:
    # Three sellers at 0.10 for a 1 kWh bid: s-late is later; s-a and s-b tie on time, so id
    # decides: s-a wins.
    book = [
        buy("b", "1", "0.20"),
        sell("s-late", "1", "0.10", 5),
        sell("s-b", "1", "0.10"),
        sell("s-a", "1", "0.10"),
    ]
    assert [m.seller for m in uniform_price(book).trades] == ["s-a"]


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (Order("x", "hold", D(1), D(1), T0), "unknown side"),  # type: ignore[arg-type]
        (Order("x", Side.BUY, D(0), D(1), T0), "quantity must be > 0"),
        (Order("x", Side.BUY, D(-1), D(1), T0), "quantity must be > 0"),
        (Order("x", Side.BUY, D("0.0001"), D(1), T0), "decimal places"),
        (Order("x", Side.BUY, D("1E+999999"), D(1), T0), "exceeds"),
        (Order("x", Side.BUY, D(1), D("0.00001"), T0), "decimal places"),
        (Order("x", Side.BUY, D(1), D(-1), T0), "price must be >= 0"),
        (Order("x", Side.BUY, D(1), D("NaN"), T0), "finite"),
        (Order("x", Side.BUY, D(1), D("Infinity"), T0), "finite"),
        (Order("x", Side.BUY, D(1), 0.5, T0), "must be a Decimal"),  # type: ignore[arg-type]
        (Order("x", Side.BUY, D(1), D(1), datetime(2026, 1, 1)), "timezone-aware"),
    ],
)
def test_invalid_orders_raise_clearing_error(order: Order, message: str) -> None:
    with pytest.raises(ClearingError, match=message):
        uniform_price([order])


def test_duplicate_ids_and_bad_arguments() -> None:
    with pytest.raises(ClearingError, match="duplicate order id 'x'"):
        uniform_price([buy("x", "1", "1"), sell("x", "1", "1")])
    with pytest.raises(ClearingError, match="unknown mechanism"):
        clear("vickrey", [])
    with pytest.raises(ClearingError, match="uniform auction only"):
        clear("pay-as-bid", [], k=D("0.5"))
    with pytest.raises(ClearingError, match=r"k must be in \[0, 1\]"):
        uniform_price([], pricing="k", k=D("1.5"))
    with pytest.raises(ClearingError, match="unknown pricing"):
        uniform_price([], pricing="vwap")  # type: ignore[arg-type]
