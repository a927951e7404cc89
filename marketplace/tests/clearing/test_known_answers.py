"""Known-answer tests for the pooled mechanisms, each worked by hand in the comments."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from marketplace.clearing import (
    MECHANISMS,
    ClearingError,
    Order,
    Side,
    clear,
    discriminatory,
    order_trade_reduction,
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


def test_uniform_partial_fill_prices_on_the_clearing_interval() -> None:
    result = uniform_price(BOOK_B)
    # m = 5 kWh: bid_m 0.40 (b1), ask_m 0.30 (s3); best excluded bid 0.25 (b2), best excluded
    # ask 0.30 (s3's other 2 kWh). [a, b] = [max(0.30, 0.25), min(0.40, 0.30)] = [0.30, 0.30]:
    # at any price above 0.30 s3 would sell more than is demanded. Price 0.30 for every k.
    assert result.price == D("0.30")
    assert [(m.buyer, m.seller, m.quantity) for m in result.trades] == [
        ("b1", "s1", D(2)),
        ("b1", "s2", D(2)),
        ("b1", "s3", D(1)),
    ]
    assert result.welfare == D("1.10")
    # 5 kWh * 0.30 = 1.50
    assert result.buyer_payments == D("1.50")
    assert clear("uniform", BOOK_B, k=D(1)).price == D("0.30")


# The book: bids 10 and 9, asks 1 and 9.5, 1 kWh each. m = 1 (10 >= 1, 9 < 9.5);
# [a, b] = [max(ask_1, bid_2), min(bid_1, ask_2)] = [max(1, 9), min(10, 9.5)] = [9, 9.5].
# The old marginal-pair midpoint (10 + 1) / 2 = 5.5 left the buyer at 9 wanting to buy.
BOOK_RSW = [
    buy("b1", "1", "10"),
    buy("b2", "1", "9", 1),
    sell("s1", "1", "1"),
    sell("s2", "1", "9.5", 1),
]


@pytest.mark.parametrize(
    ("k", "price"),
    [
        ("0", "9"),  # a
        ("1", "9.5"),  # b
        ("0.5", "9.25"),  # 9 + 0.5 * 0.5
        ("0.25", "9.125"),  # 9 + 0.25 * 0.5
    ],
)
def test_k_double_auction_on_the_market_clearing_interval(k: str, price: str) -> None:
    result = uniform_price(BOOK_RSW, k=D(k))
    assert result.price == D(price)
    assert triples(result) == [("b1", "s1", D(1), D(price), D(price))]
    assert clear("uniform", BOOK_RSW, k=D(k)) == result


def test_uniform_default_k_is_one_half() -> None:
    assert uniform_price(BOOK_RSW).price == D("9.25")


def test_uniform_price_rounds_half_even_to_the_tick() -> None:
    # No excluded orders: [a, b] = [0.3000, 0.4003]; midpoint 3501.5 ticks -> 3502 = 0.3502
    assert uniform_price([buy("b", "1", "0.4003"), sell("s", "1", "0.3")]).price == D("0.3502")
    # [0.3000, 0.4001]: 3500.5 ticks -> 3500 = 0.3500
    assert uniform_price([buy("b", "1", "0.4001"), sell("s", "1", "0.3")]).price == D("0.35")


def test_pay_as_bid_prices_each_pair_at_the_buyers_bid() -> None:
    result = pay_as_bid(BOOK_A)
    # b1-s1 and b1-s2 at b1's bid 0.30; b2-s2 at b2's bid 0.20.
    assert triples(result) == [
        ("b1", "s1", D("2"), D("0.3"), D("0.3")),
        ("b1", "s2", D("1"), D("0.3"), D("0.3")),
        ("b2", "s2", D("2"), D("0.2"), D("0.2")),
    ]
    assert result.price is None
    # 3*0.30 + 2*0.20 = 1.30, all of it to sellers
    assert result.buyer_payments == result.seller_receipts == D("1.30")
    assert result.welfare == uniform_price(BOOK_A).welfare


@pytest.mark.parametrize(
    ("k", "prices"),
    [
        # ask + k (bid - ask): b1-s1 0.10 + k 0.20, b1-s2 0.20 + k 0.10, b2-s2 0.20
        ("0.5", ["0.2", "0.25", "0.2"]),
        ("0.25", ["0.15", "0.225", "0.2"]),
        ("1", ["0.3", "0.3", "0.2"]),
        ("0", ["0.1", "0.2", "0.2"]),
    ],
)
def test_discriminatory_prices_each_pair_with_k(k: str, prices: list[str]) -> None:
    result = discriminatory(BOOK_A, k=D(k))
    assert [(m.buyer, m.seller, m.quantity) for m in result.trades] == [
        ("b1", "s1", D(2)),
        ("b1", "s2", D(1)),
        ("b2", "s2", D(2)),
    ]
    assert [m.price for m in result.trades] == [D(p) for p in prices]
    assert [m.seller_price for m in result.trades] == [D(p) for p in prices]
    assert clear("discriminatory", BOOK_A, k=D(k)) == result


def test_discriminatory_rounds_half_even() -> None:
    # ask 0.3000, bid 0.3003, k 0.5: 3000 + 1.5 ticks -> 3002 (half to even); k 1/3 of 3 ticks
    # is exactly 1 tick.
    book = [buy("b", "1", "0.3003"), sell("s", "1", "0.3")]
    assert discriminatory(book).trades[0].price == D("0.3002")
    assert discriminatory(book, k=D(1) / D(3)).trades[0].price == D("0.3001")


def test_trade_reduction_with_exhausted_demand_drops_the_marginal_step() -> None:
    # Book A: all demand trades, so there is no b_{k+1}: no p0, reduction branch. Only the
    # marginal 0.001 kWh step (of b2-s2) is dropped; buyers pay b_k = 0.20, sellers get
    # s_k = 0.20.
    result = trade_reduction(BOOK_A)
    assert triples(result) == [
        ("b1", "s1", D("2"), D("0.2"), D("0.2")),
        ("b1", "s2", D("1"), D("0.2"), D("0.2")),
        ("b2", "s2", D("1.999"), D("0.2"), D("0.2")),
    ]
    assert result.price is None
    assert result.volume == D("4.999")


def test_trade_reduction_partial_fill_pays_surplus_to_community() -> None:
    # Book B: b_k = 0.40, s_k = 0.30; first untraded steps: bid 0.25 (b2), ask 0.30 (rest of
    # s3). p0 = (0.25 + 0.30)/2 = 0.275 < s_k = 0.30, so reduce: b1-s3 loses one step.
    result = trade_reduction(BOOK_B)
    assert triples(result) == [
        ("b1", "s1", D("2"), D("0.4"), D("0.3")),
        ("b1", "s2", D("2"), D("0.4"), D("0.3")),
        ("b1", "s3", D("0.999"), D("0.4"), D("0.3")),
    ]
    # payments 4.999*0.40 = 1.9996, receipts 4.999*0.30 = 1.4997, surplus 0.4999
    assert result.buyer_payments == D("1.9996")
    assert result.seller_receipts == D("1.4997")
    assert result.surplus == D("0.4999")
    # welfare 2*0.30 + 2*0.20 + 0.999*0.10 = 1.0999
    assert result.welfare == D("1.0999")


def test_trade_reduction_keeps_all_but_one_step_of_a_large_marginal_pair() -> None:
    # The book: b 5@10, s 5@2, b 1@1, s 1@20. k = 5 kWh; p0 = (1 + 20)/2 = 10.5 > b_k =
    # 10: reduce. Dropping the whole 5 kWh pair traded nothing; McAfee drops one step.
    book = [
        buy("b1", "5", "10"),
        sell("s1", "5", "2"),
        buy("b2", "1", "1", 1),
        sell("s2", "1", "20", 1),
    ]
    result = trade_reduction(book)
    assert triples(result) == [("b1", "s1", D("4.999"), D("10"), D("2"))]
    assert result.surplus == D("4.999") * 8


def test_trade_reduction_p0_branch_keeps_every_trade() -> None:
    # bids 0.50, 0.40, 0.20; asks 0.10, 0.30, 0.45 (1 kWh each).
    # k = 2 kWh (0.40 >= 0.30, 0.20 < 0.45); p0 = (0.20 + 0.45)/2 = 0.325 in [0.30, 0.40]:
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
    # Uniform on the same book: [max(0.30, 0.20), min(0.40, 0.45)] = [0.30, 0.40] -> 0.35
    assert uniform_price(book).price == D("0.35")


def test_trade_reduction_single_step_pair_reduces_to_nothing() -> None:
    assert trade_reduction([buy("b", "0.001", "0.3"), sell("s", "0.001", "0.2")]).trades == ()
    one_kwh = trade_reduction([buy("b", "1", "0.3"), sell("s", "1", "0.2")])
    assert triples(one_kwh) == [("b", "s", D("0.999"), D("0.3"), D("0.2"))]


def test_trade_reduction_is_not_truthful_for_multi_unit_orders() -> None:
    # The docstring's counterexample: B wants 0.002 kWh at 0.30; S1 0.001 at 0.05, S2 0.001 at
    # 0.10. Truthful, B buys 0.001 at b_k = 0.30 (gain 0); reporting 0.15 it buys the same at
    # 0.15 (gain 0.00015).
    sellers = [sell("s1", "0.001", "0.05"), sell("s2", "0.001", "0.10")]
    truthful = trade_reduction([buy("b", "0.002", "0.30"), *sellers])
    shaded = trade_reduction([buy("b", "0.002", "0.15"), *sellers])
    assert triples(truthful) == [("b", "s1", D("0.001"), D("0.30"), D("0.10"))]
    assert triples(shaded) == [("b", "s1", D("0.001"), D("0.15"), D("0.10"))]


def test_order_trade_reduction_excludes_the_marginal_orders_and_rations_by_time() -> None:
    # demand: b1 2 @ 0.40, b2 3 @ 0.30, b3 1 @ 0.20 (cum 2, 5, 6)
    # supply: s1 1 @ 0.10, s2 2 @ 0.15, s3 3 @ 0.25, s4 2 @ 0.35 (cum 1, 3, 6, 8)
    # Steps trade up to 5 kWh (0.30 >= 0.25; 0.20 < 0.25): marginal buyer b2, marginal seller
    # s3. Included: buyers {b1} 2 kWh, sellers {s1, s2} 3 kWh; 2 kWh trade. Sellers are the long
    # side and s2 submitted first, so s2 sells both (time priority, not price). Buyers pay b2's
    # 0.30, sellers receive s3's 0.25; surplus 2 * 0.05 = 0.10.
    book = [
        buy("b1", "2", "0.40"),
        buy("b2", "3", "0.30"),
        buy("b3", "1", "0.20"),
        sell("s1", "1", "0.10", 1),
        sell("s2", "2", "0.15"),
        sell("s3", "3", "0.25"),
        sell("s4", "2", "0.35"),
    ]
    result = order_trade_reduction(book)
    assert triples(result) == [("b1", "s2", D(2), D("0.3"), D("0.25"))]
    assert result.surplus == D("0.10")
    assert result.price is None
    # welfare 2 * (0.40 - 0.15) = 0.50
    assert result.welfare == D("0.5")


def test_order_trade_reduction_with_no_order_ahead_of_the_margin_trades_nothing() -> None:
    # Book B: the marginal buyer b1 is the best buyer, so no buyer is included.
    assert order_trade_reduction(BOOK_B).trades == ()


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
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
    with pytest.raises(ClearingError, match="takes no k"):
        clear("pay-as-bid", [], k=D("0.5"))
    with pytest.raises(ClearingError, match=r"k must be in \[0, 1\]"):
        uniform_price([], k=D("1.5"))
    with pytest.raises(ClearingError, match=r"k must be in \[0, 1\]"):
        discriminatory([], k=D("-0.1"))
