"""The columnar path (``OrderColumns`` -> ``clear_columns`` -> ``MatchColumns``) gives exactly
the trades of the Decimal ``Order`` API, on random books with price and time ties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.clearing import MECHANISMS, ClearingError, Order, Side, clear, grid_residual
from marketplace.clearing.columns import OrderColumns, clear_columns
from marketplace.tests.clearing.helpers import books, buy, sell

FAST = settings(max_examples=80, deadline=None)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def columns_as_a_database_gives_them(orders: list[Order]) -> OrderColumns:
    """Built independently of the Decimal path, as the pipeline reads its book: integer-scaled
    quantities and prices, exact microseconds, and the id order among equal times."""
    id_rank = {oid: rank for rank, oid in enumerate(sorted(o.id for o in orders))}
    return OrderColumns(
        is_buy=np.array([o.side == Side.BUY for o in orders], dtype=np.bool_),
        quantity=np.array([int(o.quantity * 1000) for o in orders], dtype=np.int64),
        price=np.array([int(o.price * 10000) for o in orders], dtype=np.int64),
        submitted_us=np.array(
            [(o.submitted_at - EPOCH) // timedelta(microseconds=1) for o in orders],
            dtype=np.int64,
        ),
        tiebreak=np.array([id_rank[o.id] for o in orders], dtype=np.int64),
    )


@FAST
@given(
    orders=books(max_per_side=10),
    mechanism=st.sampled_from(sorted(MECHANISMS)),
    k=st.sampled_from([None, Decimal(0), Decimal("0.25"), Decimal("0.5"), Decimal(1)]),
    from_orders=st.booleans(),
)
def test_columns_give_exactly_the_decimal_trades(
    orders: list[Order], mechanism: str, k: Decimal | None, from_orders: bool
) -> None:
    if mechanism not in ("uniform", "discriminatory"):
        k = None
    expected = clear(mechanism, orders, k=k)
    columns = (
        OrderColumns.from_orders(orders)
        if from_orders
        else columns_as_a_database_gives_them(orders)
    )
    got = clear_columns(mechanism, columns, k=k)
    ids = [o.id for o in orders]
    assert got.matches(ids) == expected.trades
    assert got.price_decimal == expected.price
    assert Decimal(got.welfare_units).scaleb(-7) == expected.welfare
    # The grid residual from the fills equals the Decimal one, order by order.
    filled = got.filled(len(orders))
    residual = grid_residual(orders, expected, retail=Decimal("0.3"), feed_in=Decimal("0.08"))
    left = {r.order_id: r.quantity for r in residual}
    for i, order in enumerate(orders):
        assert Decimal(int(columns.quantity[i] - filled[i])).scaleb(-3) == left.get(
            order.id, Decimal(0)
        )


def test_a_known_book_by_positions() -> None:
    """Bids 10 and 9, asks 1 and 9.5 (one unit each): one unit at 9.25 (the k-double auction's
    market-clearing interval [9, 9.5]), between positions 0 and 2."""
    orders = [buy("b1", "1", "10"), buy("b2", "1", "9"), sell("s1", "1", "1"),
              sell("s2", "1", "9.5")]  # fmt: skip
    got = clear_columns("uniform", columns_as_a_database_gives_them(orders))
    assert (got.buyer.tolist(), got.seller.tolist(), got.quantity.tolist()) == ([0], [2], [1000])
    assert got.clearing_price == 92500
    assert got.volume == 1000
    assert got.filled(4).tolist() == [1000, 0, 1000, 0]


def bad(**change: object) -> OrderColumns:
    base: dict[str, object] = {
        "is_buy": np.array([True, False]),
        "quantity": np.array([1000, 1000]),
        "price": np.array([2000, 1000]),
        "submitted_us": np.array([0, 1]),
        "tiebreak": np.array([0, 1]),
    }
    base.update(change)
    return OrderColumns(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (bad(quantity=np.array([0, 1000])), "quantity 0"),
        (bad(price=np.array([-1, 1000])), "price -1"),
        (bad(quantity=np.array([1.5, 1000.0])), "integers"),
        (bad(tiebreak=np.array([0])), "column of 2"),
        (bad(submitted_us=np.array([5, 5]), tiebreak=np.array([3, 3])), "same submission time"),
        (bad(is_buy=np.array([1, 0])), "booleans"),
    ],
)
def test_bad_columns_are_refused_with_the_reason(columns: OrderColumns, message: str) -> None:
    with pytest.raises(ClearingError, match=message):
        clear_columns("uniform", columns)


def test_unknown_mechanism_and_misplaced_k() -> None:
    with pytest.raises(ClearingError, match="unknown mechanism"):
        clear_columns("sealed-bid", bad())
    with pytest.raises(ClearingError, match="takes no k"):
        clear_columns("pay-as-bid", bad(), k=Decimal("0.5"))


def test_an_empty_book_trades_nothing() -> None:
    empty = np.zeros(0, dtype=np.int64)
    got = clear_columns(
        "uniform", OrderColumns(np.zeros(0, dtype=np.bool_), empty, empty, empty, empty)
    )
    assert len(got) == 0
    assert got.clearing_price is None
