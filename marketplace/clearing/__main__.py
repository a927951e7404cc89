"""Command line: clear a JSON order book read from stdin and write the result as JSON.

Usage: ``python -m marketplace.clearing MECHANISM [--k K] < orders.json > result.json``

Input ``{"orders": [{"id", "side", "quantity", "price", "submitted_at"}, ...]}`` with decimals
as strings (JSON numbers are accepted and read as decimals, never as floats); output
``{"price": ..., "trades": [{"buyer", "seller", "quantity", "price"[, "seller_price"]}]}``.
Bad input exits with status 2 and a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn

from marketplace.clearing import MECHANISMS, clear
from marketplace.clearing.types import ClearingError, ClearingResult, Order, Side
from marketplace.units import UnitError, parse_decimal

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; the contract is one line on stderr.
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ClearingError(f"{what} must be a decimal string, got {json.dumps(value)}")
    try:
        return parse_decimal(value)  # the steps are the book's to check, with its limits
    except UnitError as exc:
        raise ClearingError(f"{what}: {exc.message.lower()} (got {value!r})") from None


def _order(index: int, raw: object) -> Order:
    if not isinstance(raw, dict):
        raise ClearingError(f"order #{index} must be an object")
    missing = [f for f in ("id", "side", "quantity", "price", "submitted_at") if f not in raw]
    if missing:
        raise ClearingError(f"order #{index}: missing field(s) {', '.join(missing)}")
    oid = raw["id"]
    if not isinstance(oid, str) or not oid:
        raise ClearingError(f"order #{index}: id must be a non-empty string")
    what = f"order #{index} ({oid!r})"
    try:
        side = Side(raw["side"])
    except ValueError:
        raise ClearingError(f"{what}: unknown side {raw['side']!r}") from None
    quantity = _decimal(raw["quantity"], f"{what} quantity")
    if quantity <= 0:
        raise ClearingError(f"{what}: quantity must be > 0, got {raw['quantity']}")
    price = _decimal(raw["price"], f"{what} price")
    if price < 0:
        raise ClearingError(f"{what}: price must be >= 0, got {raw['price']}")
    stamp = raw["submitted_at"]
    try:
        # Python 3.11's fromisoformat accepts the "Z" suffix and any ISO 8601 offset.
        at = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError:
        at = None
    if at is None:
        raise ClearingError(f"{what}: submitted_at is not an ISO 8601 date-time: {stamp!r}")
    if at.tzinfo is None:
        raise ClearingError(f"{what}: submitted_at needs a UTC offset: {stamp!r}")
    return Order(oid, side, quantity, price, at)


def parse_orders(text: str) -> list[Order]:
    """Parse the CLI's JSON input into orders; raises ``ClearingError`` on bad input."""
    try:
        # Numbers become Decimals, so "0.1" in JSON never passes through a float.
        data = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ClearingError(f"input is not valid JSON: {exc}") from None
    except RecursionError:
        raise ClearingError("input JSON is nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("orders"), list):
        raise ClearingError('input must be an object with an "orders" list')
    return [_order(i, raw) for i, raw in enumerate(data["orders"])]


def _reject_constant(name: str) -> NoReturn:
    raise ClearingError(f"non-finite number {name} in input")


def _fmt(value: Decimal) -> str:
    return format(value, "f")


def result_json(result: ClearingResult) -> dict[str, Any]:
    """The CLI's output document for ``result``."""
    trades: list[dict[str, str]] = []
    for m in result.trades:
        trade = {
            "buyer": m.buyer,
            "seller": m.seller,
            "quantity": _fmt(m.quantity),
            "price": _fmt(m.price),
        }
        if m.seller_price != m.price:
            trade["seller_price"] = _fmt(m.seller_price)
        trades.append(trade)
    return {
        "price": None if result.price is None else _fmt(result.price),
        "trades": trades,
    }


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m marketplace.clearing",
        description="Clear a JSON order book from stdin; write the result as JSON to stdout.",
    )
    parser.add_argument("mechanism", choices=sorted(MECHANISMS))
    parser.add_argument("--k", help="k-pricing weight in [0, 1] (uniform only)")
    args = parser.parse_args(argv)
    try:
        k = None if args.k is None else _decimal(args.k, "--k")
        try:
            text = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError:
            raise ClearingError("input is not UTF-8 text") from None
        orders = parse_orders(text)
        result = clear(args.mechanism, orders, k=k)
    except ClearingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    json.dump(result_json(result), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
