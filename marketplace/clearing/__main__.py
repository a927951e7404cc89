"""Command line: clear a JSON order book read from stdin and write the result as JSON.

Usage: ``python -m marketplace.clearing MECHANISM [--k K] < orders.json > result.json`` for the
pooled auctions (``uniform``, ``pay-as-bid``, ``discriminatory``, ``trade-reduction``,
``order-trade-reduction``), and
``python -m marketplace.clearing RULE --retail R --feed-in F < orders.json`` for the community
pricing rules over quantities (``mid-market-rate``, ``supply-demand-ratio``, ``bill-sharing``).

Input ``{"orders": [{"id", "side", "quantity", "price", "submitted_at"}, ...]}`` with decimals
as strings (JSON numbers are accepted and read as decimals, never as floats); the community rules
need only ``id``, ``side`` and ``quantity`` and ignore the rest. Output of an auction
``{"price": ..., "trades": [{"buyer", "seller", "quantity", "price"[, "seller_price"]}]}``; of a
community rule ``{"buy_price", "sell_price", "grid_import", "grid_export", "settlements":
[{"id", "side", "quantity", "price", "amount"}]}`` (``price`` is the side's price per kWh,
``amount`` the money that member pays or receives). Bad input exits with status 2 and a one-line
reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn

from marketplace.clearing import COMMUNITY_RULES, K_MECHANISMS, MECHANISMS, clear
from marketplace.clearing.community_pricing import CommunitySettlement
from marketplace.clearing.types import ClearingError, ClearingResult, Order, Side
from units import UnitError, parse_decimal

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


def _position(index: int, raw: object) -> tuple[str, Side, Decimal]:
    """One member's quantity for a community rule: id, side and quantity only."""
    if not isinstance(raw, dict):
        raise ClearingError(f"order #{index} must be an object")
    missing = [f for f in ("id", "side", "quantity") if f not in raw]
    if missing:
        raise ClearingError(f"order #{index}: missing field(s) {', '.join(missing)}")
    oid = raw["id"]
    if not isinstance(oid, str) or not oid:
        raise ClearingError(f"order #{index}: id must be a non-empty string")
    try:
        side = Side(raw["side"])
    except ValueError:
        raise ClearingError(f"order #{index} ({oid!r}): unknown side {raw['side']!r}") from None
    return oid, side, _decimal(raw["quantity"], f"order #{index} ({oid!r}) quantity")


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


def _order_list(text: str) -> list[object]:
    try:
        # Numbers become Decimals, so "0.1" in JSON never passes through a float.
        data = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ClearingError(f"input is not valid JSON: {exc}") from None
    except RecursionError:
        raise ClearingError("input JSON is nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("orders"), list):
        raise ClearingError('input must be an object with an "orders" list')
    orders: list[object] = data["orders"]
    return orders


def parse_orders(text: str) -> list[Order]:
    """Parse the CLI's JSON input into orders; raises ``ClearingError`` on bad input."""
    return [_order(i, raw) for i, raw in enumerate(_order_list(text))]


def parse_positions(text: str) -> list[tuple[str, Side, Decimal]]:
    """Parse the CLI's JSON input into (id, side, kWh) for a community rule."""
    return [_position(i, raw) for i, raw in enumerate(_order_list(text))]


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


def _fmt_or_none(value: Decimal | None) -> str | None:
    return None if value is None else _fmt(value)


def settlement_json(settlement: CommunitySettlement) -> dict[str, Any]:
    """The CLI's output document for a community rule's ``settlement``."""
    prices = {Side.BUY: settlement.buy_price, Side.SELL: settlement.sell_price}
    return {
        "buy_price": _fmt_or_none(settlement.buy_price),
        "sell_price": _fmt_or_none(settlement.sell_price),
        "grid_import": _fmt(settlement.grid_import),
        "grid_export": _fmt(settlement.grid_export),
        "settlements": [
            {
                "id": m.member_id,
                "side": str(m.side),
                "quantity": _fmt(m.quantity),
                "price": _fmt_or_none(prices[m.side]),
                "amount": _fmt(m.amount),
            }
            for m in settlement.members
        ],
    }


def _run(args: argparse.Namespace, text: str) -> dict[str, Any]:
    if args.mechanism in COMMUNITY_RULES:
        if args.k is not None:
            raise ClearingError(f"{args.mechanism!r} takes no k; it prices by the tariffs")
        if args.retail is None or args.feed_in is None:
            raise ClearingError(f"{args.mechanism!r} needs --retail and --feed-in")
        rule = COMMUNITY_RULES[args.mechanism]
        return settlement_json(
            rule(
                parse_positions(text),
                retail=_decimal(args.retail, "--retail"),
                feed_in=_decimal(args.feed_in, "--feed-in"),
            )
        )
    if args.retail is not None or args.feed_in is not None:
        raise ClearingError("--retail and --feed-in apply to the community pricing rules only")
    k = None if args.k is None else _decimal(args.k, "--k")
    return result_json(clear(args.mechanism, parse_orders(text), k=k))


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m marketplace.clearing",
        description="Clear a JSON order book from stdin; write the result as JSON to stdout.",
    )
    parser.add_argument("mechanism", choices=sorted({*MECHANISMS, *COMMUNITY_RULES}))
    parser.add_argument(
        "--k", help=f"k in [0, 1] ({' and '.join(sorted(K_MECHANISMS))} only; default 0.5)"
    )
    parser.add_argument("--retail", help="retail tariff per kWh (community pricing rules)")
    parser.add_argument("--feed-in", help="feed-in tariff per kWh (community pricing rules)")
    args = parser.parse_args(argv)
    try:
        try:
            text = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError:
            raise ClearingError("input is not UTF-8 text") from None
        document = _run(args, text)
    except ClearingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
