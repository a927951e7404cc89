"""Order validation, conversion to integer NumPy arrays, and the merit-order crossing core.

Every pooled mechanism (uniform, pay-as-bid, trade reduction) uses the same three steps:

1. ``book_from_orders``: validate the orders and convert them to int64 arrays, quantities in
   milli-kWh and prices in ticks of 0.0001, plus one integer time priority per order (rank by
   submission time, then id); the only per-order Python work;
2. ``cross``: sort each side in merit order (sellers ascending by price, buyers descending; ties by
   time priority) with one ``np.argsort`` on an int64 key, build the aggregate curves with
   ``np.cumsum`` and find where they meet; returns the traded volume and the merit-order
   *segments* (stretches of the volume axis on which one buyer faces one seller);
3. the mechanism prices the segments and builds ``Match`` objects for the traded prefix only.

Segments: walk the demand curve (cumulative buy quantity ``B``) and the supply curve
(cumulative sell quantity ``S``) together up to the traded volume ``Q``. The volume axis is cut at
every cumulative breakpoint of either curve below ``Q`` and at ``Q`` itself; on each piece exactly
one buyer and one seller are marginal, and they trade that piece with each other. This is the
classic two-pointer merit-order matching, done with a sorted merge + ``searchsorted``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import repeat
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from marketplace.clearing.types import (
    KWH_PLACES,
    MAX_PRICE,
    MAX_QUANTITY_KWH,
    PRICE_PLACES,
    ClearingError,
    ClearingResult,
    Match,
    Order,
    Side,
)

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class SideBook:
    """One side of the book in input order, as integer arrays."""

    index: IntArray  # each order's position in the whole book as the caller gave it
    price: IntArray  # ticks of 0.0001
    quantity: IntArray  # milli-kWh
    priority: IntArray  # time priority: rank by (submitted_at, id) among all orders of the book


@dataclass(frozen=True, slots=True)
class Book:
    buy: SideBook
    sell: SideBook
    # The orders' ids in input order (``Order.id``); None for a book of columns, whose matches
    # name positions instead.
    ids: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class Priced:
    """A mechanism's trades before any Decimal exists: one row per match, in merit order.

    ``buyer`` and ``seller`` index ``book.buy`` and ``book.sell``; prices are whole ticks.
    """

    quantity: IntArray  # milli-kWh
    buyer: IntArray
    seller: IntArray
    price: IntArray  # what the buyer pays per kWh, ticks
    seller_price: IntArray  # what the seller receives per kWh, ticks
    clearing_price: int | None  # the one price every match has, if the mechanism sets one

    def welfare_units(self, book: Book) -> int:
        """Realised gains from trade in milli-kWh x ticks, exactly (a Python int)."""
        gaps = book.buy.price[self.buyer] - book.sell.price[self.seller]
        n = len(gaps)
        if not n:
            return 0
        # One int64 dot product where no product or partial sum can overflow, else Python ints.
        if int(self.quantity.max()) * int(np.abs(gaps).max()) * n < 2**63:
            return int(np.dot(self.quantity, gaps))
        return sum(q * d for q, d in zip(self.quantity.tolist(), gaps.tolist(), strict=True))


@dataclass(frozen=True, slots=True)
class Cross:
    """Where the supply and demand curves meet, with the merit-order segments up to there.

    Indices in ``seg_buyer`` / ``seg_seller`` and the ``*_order`` arrays refer to positions in the
    input ``SideBook``; ``buy_price_sorted`` etc. are in merit order.
    """

    volume: int  # milli-kWh traded at the efficient quantity
    seg_quantity: IntArray  # milli-kWh per segment, in merit order
    seg_buyer: IntArray  # index into book.buy
    seg_seller: IntArray  # index into book.sell
    marginal_bid: int  # ticks: bid of the last traded unit
    marginal_ask: int  # ticks: ask of the last traded unit
    next_bid: int | None  # ticks: bid of the first untraded unit, None if demand is exhausted
    next_ask: int | None  # ticks: ask of the first untraded unit, None if supply is exhausted


def _fail(index: int, order_id: object, reason: str) -> ClearingError:
    return ClearingError(f"order #{index} ({order_id!r}): {reason}")


def decimal_units(value: object, places: int, what: str, *, limit: Decimal) -> int:
    """Convert a Decimal (or int) to an integer count of 10**-places quanta.

    Raises ``ClearingError`` for non-numbers, NaN and infinities, values above ``limit`` in
    magnitude (checked before scaling, so an exponent like 1E+999999 cannot overflow the decimal
    context) and values off the grid.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise ClearingError(f"{what} must be a Decimal, got {type(value).__name__}")
    dec = Decimal(value)
    if not dec.is_finite():
        raise ClearingError(f"{what} must be finite, got {value}")
    if abs(dec) > limit:
        raise ClearingError(f"{what} {value} exceeds {limit}")
    scaled = dec.scaleb(places)
    units = int(scaled)
    if scaled != units:
        raise ClearingError(f"{what} {value} has more than {places} decimal places")
    return units


def validate_order(order: Order, index: int = 0) -> tuple[int, int, float]:
    """Check one order; return (quantity milli-kWh, price ticks, POSIX timestamp)."""
    oid = order.id
    if not isinstance(oid, str) or not oid:
        raise _fail(index, oid, "id must be a non-empty string")
    if order.side not in (Side.BUY, Side.SELL):
        raise _fail(index, oid, f"unknown side {order.side!r}")
    try:
        qty = decimal_units(order.quantity, KWH_PLACES, "quantity", limit=MAX_QUANTITY_KWH)
        price = decimal_units(order.price, PRICE_PLACES, "price", limit=MAX_PRICE)
    except ClearingError as exc:
        raise _fail(index, oid, str(exc)) from None
    if qty <= 0:
        raise _fail(index, oid, f"quantity must be > 0, got {order.quantity}")
    if price < 0:
        raise _fail(index, oid, f"price must be >= 0, got {order.price}")
    at = order.submitted_at
    if not isinstance(at, datetime):
        raise _fail(index, oid, "submitted_at must be a datetime")
    if at.tzinfo is None or at.utcoffset() is None:
        raise _fail(index, oid, "submitted_at must be timezone-aware (UTC)")
    return qty, price, at.timestamp()


_FIELDS = tuple(map(attrgetter, ("quantity", "price", "submitted_at", "side", "id")))
_Columns = tuple[IntArray, IntArray, npt.NDArray[np.float64], npt.NDArray[np.bool_], list[str]]


def _fast_columns(orders: Sequence[Order]) -> _Columns | None:
    """Validate and convert column by column in C loops (``map``) for the common all-valid case.

    Each field is read into a list of its own (``map(attrgetter)``): a row tuple per order
    would be cheaper to read but allocates 200,000 tuples the cyclic garbage collector then
    walks, which costs more. The columns are converted with ``map`` over unbound methods.
    Returns None on anything unusual (non-Decimal numbers, a bad value, a naive datetime); the
    caller then takes the per-order path, which accepts ints and names the offending order.
    """
    n = len(orders)
    try:
        quantities, prices, moments, sides, ids = (list(map(get, orders)) for get in _FIELDS)
        # Decimal arithmetic errors (e.g. scaling 1E+999999) and int64 overflow in np.array all
        # derive from ArithmeticError; a non-Decimal raises TypeError: the per-order path then
        # reports them properly.
        q_scaled = list(map(Decimal.scaleb, quantities, repeat(KWH_PLACES)))
        p_scaled = list(map(Decimal.scaleb, prices, repeat(PRICE_PLACES)))
        q_units = list(map(int, q_scaled))  # NaN/inf raise here
        p_units = list(map(int, p_scaled))
        # Elementwise Decimal == int in C: false if any value is off the 0.001 / 0.0001 grid.
        if q_scaled != q_units or p_scaled != p_units:
            return None
        # A fixed-offset zone (datetime.timezone, UTC among them) always has an offset; any
        # other tzinfo is asked per order, as it may answer None (naive) for some moments.
        zones = set(map(attrgetter("tzinfo"), moments))
        if not all(isinstance(zone, timezone) for zone in zones) and None in map(
            datetime.utcoffset, moments
        ):
            return None
        # float64 POSIX timestamps order submissions exactly as the datetimes do, ties included:
        # distinct datetimes are at least 1e-6 s apart and float64 spacing stays below 5e-7 s
        # until 2106, and timestamp() rounds the exact microsecond count once.
        times = np.fromiter(map(datetime.timestamp, moments), dtype=np.float64, count=n)
        if not set(sides) <= {Side.BUY, Side.SELL}:
            return None
        # str.__len__ refuses a non-string id; an empty one has length 0.
        if not all(map(str.__len__, ids)):
            return None
        qty = np.array(q_units, dtype=np.int64)
        price = np.array(p_units, dtype=np.int64)
    except (AttributeError, TypeError, ValueError, ArithmeticError):
        return None
    if n and (
        qty.min() <= 0
        or qty.max() > int(MAX_QUANTITY_KWH) * 10**KWH_PLACES
        or price.min() < 0
        or price.max() > int(MAX_PRICE) * 10**PRICE_PLACES
    ):
        return None
    is_buy = np.fromiter(map(Side.BUY.__eq__, sides), dtype=np.bool_, count=n)
    return qty, price, times, is_buy, ids


def _priority(time: npt.NDArray[np.float64], ids: list[str]) -> IntArray:
    """Rank of each order by (submission time, id): a dense time priority, like a sequence."""
    n = len(ids)
    priority = np.empty(n, dtype=np.int64)
    if not n:
        return priority
    by_time = np.argsort(time, kind="stable")
    ordered = time[by_time]
    tied = np.flatnonzero(ordered[1:] == ordered[:-1])
    if tied.size * 8 > n:
        # Many orders share a time: rank the ids (a sort of strings) and sort on both keys.
        id_rank = np.empty(n, dtype=np.int64)
        id_rank[np.argsort(np.array(ids), kind="stable")] = np.arange(n, dtype=np.int64)
        priority[np.lexsort((id_rank, time))] = np.arange(n, dtype=np.int64)
        return priority
    if tied.size:
        # A few ties: only the runs of equal times (in time order) need the id, and ranking
        # every id would cost more than the rest of the conversion. A run may join two groups
        # of different times; sorting it on (time, id) keeps them apart.
        mark = np.zeros(n, dtype=np.bool_)
        mark[tied] = True
        mark[tied + 1] = True
        positions = np.flatnonzero(mark)
        for run in np.split(positions, np.flatnonzero(np.diff(positions) != 1) + 1):
            members = by_time[run].tolist()
            members.sort(key=lambda j: (float(time[j]), ids[j]))
            by_time[run] = members
    priority[by_time] = np.arange(n, dtype=np.int64)
    return priority


def book_from_orders(orders: Sequence[Order]) -> Book:
    """Validate ``orders`` and convert them to integer arrays, split by side."""
    n = len(orders)
    columns = _fast_columns(orders)
    if columns is None:
        qty = np.empty(n, dtype=np.int64)
        price = np.empty(n, dtype=np.int64)
        time = np.empty(n, dtype=np.float64)
        is_buy = np.empty(n, dtype=np.bool_)
        for i, order in enumerate(orders):
            qty[i], price[i], time[i] = validate_order(order, i)
            is_buy[i] = order.side == Side.BUY
        ids = [o.id for o in orders]
    else:
        qty, price, time, is_buy, ids = columns
    if len(set(ids)) != n:
        seen: set[str] = set()
        dup = next(x for x in ids if x in seen or seen.add(x))  # type: ignore[func-returns-value]
        raise ClearingError(f"duplicate order id {dup!r}")
    # Time priority (submission time, then id for exact ties) is the same on both sides, so it is
    # ranked once here into a dense integer, like a submission sequence number; the merit-order
    # sort then needs a single int64 key per side.
    priority = _priority(time, ids)
    buy_idx = np.flatnonzero(is_buy)
    sell_idx = np.flatnonzero(~is_buy)

    def side(idx: npt.NDArray[np.intp]) -> SideBook:
        return SideBook(
            index=idx.astype(np.int64), price=price[idx], quantity=qty[idx], priority=priority[idx]
        )

    return Book(buy=side(buy_idx), sell=side(sell_idx), ids=ids)


def merit_order(side: SideBook, *, descending: bool) -> npt.NDArray[np.intp]:
    """Permutation putting ``side`` in merit order: price (best first), then time priority."""
    price = -side.price if descending else side.price
    n = len(side.priority)
    span = int(side.priority.max()) + 1 if n else 1
    # One int64 key price * span + priority sorts like the pair (price, priority) and argsort on a
    # single integer key is several times faster than lexsort on two; the keys are unique, so the
    # (unstable) sort is deterministic. Fall back to lexsort where the product could overflow.
    if n and int(np.abs(side.price).max()) < (2**62) // span:
        return np.argsort(price * span + side.priority)
    return np.lexsort((side.priority, price))


def walk_segments(
    demand: IntArray, supply: IntArray, volume: int
) -> tuple[IntArray, IntArray, IntArray]:
    """Cut the volume axis ``(0, volume]`` where either cumulative curve has a breakpoint.

    ``demand`` and ``supply`` are strictly increasing cumulative quantities (milli-kWh) of the
    buyers and sellers in the order they are to be paired, each reaching at least ``volume``.
    Returns per segment its quantity and the positions (into those orders) of its buyer and its
    seller.
    """
    # Each curve is strictly increasing, so a stable argsort of the concatenation is a linear
    # merge (timsort finds the two runs) and a value occurs at most twice, demand's copy first.
    # For each distinct cut, the number of demand (supply) breakpoints strictly below it is the
    # position of the buyer (seller) owning the piece that ends there: an exclusive running
    # count, no binary search needed.
    d_part = demand[demand < volume]
    s_part = supply[supply < volume]
    both = np.concatenate((d_part, s_part))
    merged_order = np.argsort(both, kind="stable")
    from_demand = merged_order < len(d_part)
    merged = both[merged_order]
    first = np.ones(len(merged), dtype=np.bool_)
    first[1:] = merged[1:] != merged[:-1]
    from_supply = ~from_demand
    demand_before: IntArray = np.cumsum(from_demand, dtype=np.int64) - from_demand
    supply_before: IntArray = np.cumsum(from_supply, dtype=np.int64) - from_supply
    cuts = np.append(merged[first], np.int64(volume))
    b_pos = np.append(demand_before[first], len(d_part))
    s_pos = np.append(supply_before[first], len(s_part))
    return np.diff(cuts, prepend=np.int64(0)), b_pos, s_pos


def cross(book: Book) -> Cross:
    """Find the efficient traded volume and the merit-order segments (see module docstring)."""
    empty = np.zeros(0, dtype=np.int64)
    if len(book.buy.price) == 0 or len(book.sell.price) == 0:
        return Cross(0, empty, empty, empty, 0, 0, None, None)
    b_perm = merit_order(book.buy, descending=True)
    s_perm = merit_order(book.sell, descending=False)
    bid = book.buy.price[b_perm]
    ask = book.sell.price[s_perm]
    demand = np.cumsum(book.buy.quantity[b_perm])
    supply = np.cumsum(book.sell.quantity[s_perm])

    # Buyer i's units lie on (demand[i-1], demand[i]] and are worth bid[i]; a unit u trades iff
    # the ask of unit u is <= its bid, i.e. u <= supply offered at or below bid[i]. Units that
    # trade form a prefix, so the volume is the largest such u over all buyers. side="right"
    # counts asks equal to the bid: a bid and an ask at the same price do trade.
    supply_at_bid = np.concatenate(([0], supply))[np.searchsorted(ask, bid, side="right")]
    volume = int(np.minimum(demand, supply_at_bid).max())
    if volume <= 0:
        return Cross(0, empty, empty, empty, 0, 0, int(bid[0]), int(ask[0]))

    seg_quantity, b_pos, s_pos = walk_segments(demand, supply, volume)

    total_demand = int(demand[-1])
    total_supply = int(supply[-1])
    next_bid = (
        int(bid[np.searchsorted(demand, volume + 1, side="left")])
        if volume < total_demand
        else None
    )
    next_ask = (
        int(ask[np.searchsorted(supply, volume + 1, side="left")])
        if volume < total_supply
        else None
    )
    return Cross(
        volume=volume,
        seg_quantity=seg_quantity,
        seg_buyer=b_perm[b_pos],
        seg_seller=s_perm[s_pos],
        marginal_bid=int(bid[b_pos[-1]]),
        marginal_ask=int(ask[s_pos[-1]]),
        next_bid=next_bid,
        next_ask=next_ask,
    )


def quantity_decimal(milli: int) -> Decimal:
    """milli-kWh -> kWh as a Decimal with 3 places."""
    return Decimal(milli).scaleb(-KWH_PLACES)


def price_decimal(ticks: int) -> Decimal:
    """Price ticks -> currency per kWh as a Decimal with 4 places."""
    return Decimal(ticks).scaleb(-PRICE_PLACES)


def round_to_tick(ticks: Decimal) -> int:
    """Round a price given in (fractional) ticks to a whole tick, half to even.

    Limits are whole ticks, so a price between an ask and a bid stays between them after
    rounding; half-even keeps the rounding unbiased across many intervals.
    """
    return int(ticks.to_integral_value(rounding=ROUND_HALF_EVEN))


def midpoint_ticks(a: int | np.int64, b: int | np.int64) -> int:
    """Midpoint of two tick prices, rounded half to even to a whole tick."""
    return round_to_tick(Decimal(int(a) + int(b)) / 2)


def price_segments(
    crossing: Cross,
    *,
    keep: int | None = None,
    price_ticks: int | IntArray,
    seller_price_ticks: int | IntArray | None = None,
    clearing_price: int | None = None,
) -> Priced:
    """The first ``keep`` segments (default all) of ``crossing`` with their prices in ticks:
    one for all segments or one per segment; ``seller_price_ticks`` defaults to the buyer's.
    ``clearing_price`` is the single price the mechanism reports, if it has one."""
    n = len(crossing.seg_quantity) if keep is None else keep

    def column(ticks: int | IntArray) -> IntArray:
        if isinstance(ticks, int):
            return np.full(n, ticks, dtype=np.int64)
        return np.asarray(ticks, dtype=np.int64)[:n]

    buy_prices = column(price_ticks)
    sell_prices = buy_prices if seller_price_ticks is None else column(seller_price_ticks)
    return Priced(
        quantity=crossing.seg_quantity[:n],
        buyer=crossing.seg_buyer[:n],
        seller=crossing.seg_seller[:n],
        price=buy_prices,
        seller_price=sell_prices,
        clearing_price=clearing_price,
    )


def priced_matches(book: Book, priced: Priced) -> tuple[tuple[Match, ...], Decimal]:
    """Turn priced segments into ``Match`` objects (by order id) and the realised welfare.

    No per-trade Python loop: ``map`` and ``zip`` build the columns and the matches in C.
    """
    if book.ids is None:
        raise ClearingError("a book of columns has no order ids; use its match columns")
    ids = book.ids
    quantities = priced.quantity.tolist()
    buy_prices = priced.price.tolist()
    same = priced.seller_price is priced.price
    sell_prices = buy_prices if same else priced.seller_price.tolist()
    # Decimals once per distinct quantity and price (they repeat a lot in real books), then
    # every column by C loops and the matches as tuples (``Match._make``).
    qty_of = {q: quantity_decimal(q) for q in set(quantities)}
    price_of = {p: price_decimal(p) for p in {*buy_prices, *sell_prices}}
    buyer_ids = map(ids.__getitem__, book.buy.index[priced.buyer].tolist())
    seller_ids = map(ids.__getitem__, book.sell.index[priced.seller].tolist())
    matches = map(
        Match._make,
        zip(
            buyer_ids,
            seller_ids,
            map(qty_of.__getitem__, quantities),
            map(price_of.__getitem__, buy_prices),
            map(price_of.__getitem__, sell_prices),
            strict=True,
        ),
    )
    welfare = Decimal(priced.welfare_units(book)).scaleb(-(KWH_PLACES + PRICE_PLACES))
    return tuple(matches), welfare


def build_matches(
    book: Book,
    crossing: Cross,
    *,
    keep: int | None = None,
    price_ticks: int | IntArray,
    seller_price_ticks: int | IntArray | None = None,
) -> tuple[tuple[Match, ...], Decimal]:
    """``priced_matches`` of ``price_segments``: the first ``keep`` segments as ``Match``es."""
    priced = price_segments(
        crossing, keep=keep, price_ticks=price_ticks, seller_price_ticks=seller_price_ticks
    )
    return priced_matches(book, priced)


def result_of(mechanism: str, book: Book, priced: Priced | None) -> ClearingResult:
    """The Decimal ``ClearingResult`` of a mechanism's priced segments (None: no trade)."""
    if priced is None or len(priced.quantity) == 0:
        return ClearingResult(mechanism, None, ())
    matches, welfare = priced_matches(book, priced)
    price = None if priced.clearing_price is None else price_decimal(priced.clearing_price)
    return ClearingResult(mechanism, price, matches, welfare)
