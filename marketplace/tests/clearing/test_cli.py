"""Tests for ``python -m marketplace.clearing`` run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]

ORDERS: list[dict[str, Any]] = [
    {
        "id": "b1",
        "side": "buy",
        "quantity": "5",
        "price": "0.40",
        "submitted_at": "2026-03-01T12:00:00Z",
    },
    {
        "id": "b2",
        "side": "buy",
        "quantity": "1",
        "price": "0.25",
        "submitted_at": "2026-03-01T12:00:01+00:00",
    },
    {
        "id": "s1",
        "side": "sell",
        "quantity": "2",
        "price": "0.10",
        "submitted_at": "2026-03-01T12:00:00Z",
    },
    {
        "id": "s2",
        "side": "sell",
        "quantity": "2",
        "price": "0.20",
        "submitted_at": "2026-03-01T12:00:00Z",
    },
    {
        "id": "s3",
        "side": "sell",
        "quantity": "3",
        "price": "0.30",
        "submitted_at": "2026-03-01T12:00:00Z",
    },
]


def run(args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "marketplace.clearing", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_uniform_round_trip() -> None:
    done = run(["uniform"], json.dumps({"orders": ORDERS}))
    assert done.returncode == 0, done.stderr
    # Same book as the known-answer "book B": the market-clearing interval is [0.30, 0.30].
    assert json.loads(done.stdout) == {
        "price": "0.3000",
        "trades": [
            {"buyer": "b1", "seller": "s1", "quantity": "2.000", "price": "0.3000"},
            {"buyer": "b1", "seller": "s2", "quantity": "2.000", "price": "0.3000"},
            {"buyer": "b1", "seller": "s3", "quantity": "1.000", "price": "0.3000"},
        ],
    }


def test_k_pricing_and_trade_reduction_seller_price() -> None:
    # b1 2 kWh @ 0.40 against s1 2 kWh @ 0.10, nothing excluded: [a, b] = [0.10, 0.40], and
    # k = 0.25 gives 0.10 + 0.25 * 0.30 = 0.175.
    two = {"orders": [{**ORDERS[0], "quantity": "2"}, ORDERS[2]]}
    done = run(["uniform", "--k", "0.25"], json.dumps(two))
    assert json.loads(done.stdout)["price"] == "0.1750"
    done = run(["discriminatory", "--k", "1"], json.dumps(two))
    assert json.loads(done.stdout)["trades"][0]["price"] == "0.4000"
    done = run(["trade-reduction"], json.dumps({"orders": ORDERS}))
    out = json.loads(done.stdout)
    assert out["price"] is None
    assert out["trades"][0] == {
        "buyer": "b1",
        "seller": "s1",
        "quantity": "2.000",
        "price": "0.4000",
        "seller_price": "0.3000",
    }


def test_community_rules_take_quantities_and_tariffs() -> None:
    # Demand 5 + 1 = 6 kWh, supply 2 + 2 + 3 = 7 kWh: a net export of 1 kWh. Mid-market rate
    # (0.30 + 0.10) / 2 = 0.20: buyers pay 0.20; sellers share 6 * 0.20 + 1 * 0.10 = 1.30 over
    # 7 kWh, 0.18571428... per kWh.
    positions = [{k: o[k] for k in ("id", "side", "quantity")} for o in ORDERS]
    done = run(
        ["mid-market-rate", "--retail", "0.30", "--feed-in", "0.10"],
        json.dumps({"orders": positions}),
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["buy_price"] == "0.20000000"
    assert out["sell_price"] == "0.18571429"
    assert out["grid_export"] == "1.000"
    assert out["settlements"][0] == {
        "id": "b1",
        "side": "buy",
        "quantity": "5.000",
        "price": "0.20000000",
        "amount": "1.00000000",
    }
    assert sum(Decimal(x["amount"]) for x in out["settlements"] if x["side"] == "sell") == (
        Decimal("1.30")
    )
    # Bill sharing: the export revenue 1 * 0.10 shared by the sellers, buyers pay nothing.
    done = run(
        ["bill-sharing", "--retail", "0.30", "--feed-in", "0.10"],
        json.dumps({"orders": ORDERS}),
    )
    out = json.loads(done.stdout)
    assert (out["buy_price"], out["sell_price"]) == ("0.00000000", "0.01428571")


def test_pay_as_bid_empty_book() -> None:
    done = run(["pay-as-bid"], '{"orders": []}')
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"price": None, "trades": []}


def with_order(**changes: Any) -> str:
    order = {**ORDERS[0], **changes}
    return json.dumps({"orders": [order, *ORDERS[1:]]})


def without(field: str) -> str:
    order = {k: v for k, v in ORDERS[0].items() if k != field}
    return json.dumps({"orders": [order, *ORDERS[1:]]})


BAD_INPUTS = [
    (["uniform"], "not json", "not valid JSON"),
    (["uniform"], '{"orders": 3}', '"orders" list'),
    (["uniform"], "[1, 2]", '"orders" list'),
    (["uniform"], '{"orders": [{"id": "x", "side": "buy", "quantity": NaN}]}', "NaN"),
    (["uniform"], with_order(side="hold"), "unknown side"),
    (["uniform"], with_order(quantity="0"), "quantity must be > 0"),
    (["uniform"], with_order(quantity="-2"), "quantity must be > 0"),
    (["uniform"], with_order(quantity="Infinity"), "finite"),
    (["uniform"], with_order(price="NaN"), "finite"),
    (["uniform"], with_order(price="-0.1"), "price must be >= 0"),
    (["uniform"], with_order(price="abc"), "not a decimal"),
    (["uniform"], with_order(price=True), "decimal string"),
    (["uniform"], with_order(quantity="1.0001"), "decimal places"),
    (["uniform"], with_order(submitted_at="yesterday"), "ISO 8601"),
    (["uniform"], with_order(submitted_at="2026-03-01T12:00:00"), "UTC offset"),
    (["uniform"], with_order(id="b2"), "duplicate order id"),
    (["uniform"], without("price"), "missing field"),
    (["uniform"], without("submitted_at"), "missing field"),
    (["vickrey"], '{"orders": []}', "invalid choice"),
    ([], '{"orders": []}', "required"),
    (["uniform", "--k", "2"], '{"orders": []}', "k must be in"),
    (["uniform", "--k", "x"], '{"orders": []}', "not a decimal"),
    (["pay-as-bid", "--k", "0.5"], '{"orders": []}', "takes no k"),
    (["mid-market-rate", "--retail", "0.3"], '{"orders": []}', "needs --retail and --feed-in"),
    (["bill-sharing", "--retail", "0.1", "--feed-in", "0.3"], '{"orders": []}', "must not exceed"),
    (["uniform", "--retail", "0.3"], '{"orders": []}', "community pricing rules only"),
    (
        ["supply-demand-ratio", "--retail", "0.3", "--feed-in", "0.1"],
        '{"orders": [{"id": "a", "side": "buy"}]}',
        "missing field",
    ),
]


@pytest.mark.parametrize(
    ("args", "stdin", "reason"), BAD_INPUTS, ids=[reason for _, _, reason in BAD_INPUTS]
)
def test_bad_input_exits_2_with_one_line(args: list[str], stdin: str, reason: str) -> None:
    done = run(args, stdin)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert reason in lines[0]


def test_input_that_is_not_utf8_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "marketplace.clearing", "uniform"],
        input=b"\xff\xfe{}",
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.decode().strip().splitlines() == ["error: input is not UTF-8 text"]
