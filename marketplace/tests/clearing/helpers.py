"""Order builders, hypothesis strategies and an independent reference matcher for clearing tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from marketplace.clearing import ClearingResult, Order, Side

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STEP = Decimal("0.001")  # the book's quantity resolution, one "unit" of the unit-level rules


def buy(oid: str, quantity: str, price: str, second: int = 0) -> Order:
    return Order(oid, Side.BUY, Decimal(quantity), Decimal(price), T0 + timedelta(seconds=second))


def sell(oid: str, quantity: str, price: str, second: int = 0) -> Order:
    return Order(oid, Side.SELL, Decimal(quantity), Decimal(price), T0 + timedelta(seconds=second))


def triples(result: ClearingResult) -> list[tuple[str, str, Decimal, Decimal, Decimal]]:
    return [(m.buyer, m.seller, m.quantity, m.price, m.seller_price) for m in result.trades]


@st.composite
def books(draw: st.DrawFn, max_per_side: int = 8, whole_kwh: bool = False) -> list[Order]:
    """Small random books with many price and time ties (ties are where bugs live)."""
    n_buy = draw(st.integers(0, max_per_side))
    n_sell = draw(st.integers(0, max_per_side))
    n = n_buy + n_sell
    # Ids drawn independently of side and position, so id order is no proxy for either.
    ids = draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True))
    price_step = draw(st.sampled_from([1, 7, 250]))
    orders = []
    for i in range(n):
        if whole_kwh:
            quantity = Decimal(draw(st.integers(1, 4)))
        else:
            quantity = Decimal(draw(st.integers(1, 5000))).scaleb(-3)
        price = Decimal(draw(st.integers(0, 20)) * price_step).scaleb(-4)
        at = T0 + timedelta(seconds=draw(st.integers(0, 3)))
        side = Side.BUY if i < n_buy else Side.SELL
        orders.append(Order(f"o{ids[i]}", side, quantity, price, at))
    return orders


@dataclass(frozen=True)
class Pair:
    buy: Order
    sell: Order
    quantity: Decimal


def greedy_pairs(orders: Sequence[Order]) -> list[Pair]:
    """Reference merit-order matching, written independently of the NumPy core: a plain
    two-pointer walk over the sorted bids and asks, Decimals throughout."""
    buys = sorted(
        (o for o in orders if o.side == Side.BUY), key=lambda o: (-o.price, o.submitted_at, o.id)
    )
    sells = sorted(
        (o for o in orders if o.side == Side.SELL), key=lambda o: (o.price, o.submitted_at, o.id)
    )
    pairs: list[Pair] = []
    i = j = 0
    left_b = buys[0].quantity if buys else Decimal(0)
    left_s = sells[0].quantity if sells else Decimal(0)
    while i < len(buys) and j < len(sells) and buys[i].price >= sells[j].price:
        q = min(left_b, left_s)
        pairs.append(Pair(buys[i], sells[j], q))
        left_b -= q
        left_s -= q
        if left_b == 0:
            i += 1
            left_b = buys[i].quantity if i < len(buys) else Decimal(0)
        if left_s == 0:
            j += 1
            left_s = sells[j].quantity if j < len(sells) else Decimal(0)
    return pairs


def clearing_interval(orders: Sequence[Order], pairs: Sequence[Pair]) -> tuple[Decimal, Decimal]:
    """[max(ask_m, bid_m+1), min(bid_m, ask_m+1)] from the reference matching: the marginal pair's
    limits and the best order on each side with quantity left over (absent: -inf / +inf)."""
    filled: dict[str, Decimal] = {}
    for p in pairs:
        filled[p.buy.id] = filled.get(p.buy.id, Decimal(0)) + p.quantity
        filled[p.sell.id] = filled.get(p.sell.id, Decimal(0)) + p.quantity
    left = [o for o in orders if filled.get(o.id, Decimal(0)) < o.quantity]
    next_bid = max((o.price for o in left if o.side == Side.BUY), default=None)
    next_ask = min((o.price for o in left if o.side == Side.SELL), default=None)
    low, high = pairs[-1].sell.price, pairs[-1].buy.price
    if next_bid is not None:
        low = max(low, next_bid)
    if next_ask is not None:
        high = min(high, next_ask)
    return low, high


def pairs_welfare(pairs: Sequence[Pair]) -> Decimal:
    return sum((p.quantity * (p.buy.price - p.sell.price) for p in pairs), Decimal(0))


def unit_max_welfare(orders: Sequence[Order]) -> Decimal:
    """Textbook maximum welfare for whole-kWh books: expand every order into 1 kWh units, sort
    the unit bids down and the unit asks up, and add up every positive-or-zero unit gain."""
    bids = sorted(
        (o.price for o in orders if o.side == Side.BUY for _ in range(int(o.quantity))),
        reverse=True,
    )
    asks = sorted(o.price for o in orders if o.side == Side.SELL for _ in range(int(o.quantity)))
    return sum((b - a for b, a in zip(bids, asks, strict=False) if b >= a), Decimal(0))
