"""Value types shared by every clearing mechanism: orders in, matches and results out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from units import KWH, PRICE, places

# The cores work in integer multiples of the kWh and price steps (``units``: 3 and 4
# decimal places), so no float rounding reaches an amount.
KWH_PLACES = places(KWH)
PRICE_PLACES = places(PRICE)

# Sanity caps: far beyond any community interval, and small enough that integer cumulative sums
# of a million orders stay well inside int64.
MAX_QUANTITY_KWH = Decimal(1_000_000)
MAX_PRICE = Decimal(1_000_000)

ZERO = Decimal(0)


class Side(StrEnum):
    """Which way an order trades energy."""

    BUY = "buy"
    SELL = "sell"


class ClearingError(ValueError):
    """Bad input to a clearing mechanism; the message is one line meant for a human."""


@dataclass(frozen=True, slots=True)
class Order:
    """A limit order in a pooled auction, or a posting or bid on the bilateral board."""

    id: str
    side: Side
    quantity: Decimal  # kWh, > 0, quantised to 0.001
    price: Decimal  # limit price, currency per kWh, quantised to 0.0001
    submitted_at: datetime  # aware UTC; time priority for ties


class Match(NamedTuple):
    """One trade between a buyer and a seller order.

    A named tuple rather than a frozen dataclass: a large book makes one per merit-order
    segment (about 200,000 for 100,000 orders a side), and a tuple is built in C
    (``Match._make``), where a frozen dataclass sets each field through ``object.__setattr__``.
    """

    buyer: str
    seller: str
    quantity: Decimal  # kWh
    price: Decimal  # what the buyer pays per kWh
    seller_price: Decimal  # what the seller receives per kWh (== price except trade reduction)

    @property
    def buyer_payment(self) -> Decimal:
        return self.quantity * self.price

    @property
    def seller_receipt(self) -> Decimal:
        return self.quantity * self.seller_price


@dataclass(frozen=True, slots=True)
class ClearingResult:
    """Outcome of one clearing run.

    ``welfare`` is the realised gains from trade, sum of quantity * (buyer limit - seller limit)
    over the trades. It is a field rather than a property because the matches do not carry the
    limit prices; the mechanism that knows them fills it in.
    """

    mechanism: str
    price: Decimal | None  # uniform clearing price, None for discriminatory / no trade
    trades: tuple[Match, ...]
    welfare: Decimal = ZERO

    @property
    def volume(self) -> Decimal:
        """Energy traded between peers, kWh."""
        return sum((m.quantity for m in self.trades), ZERO)

    @property
    def buyer_payments(self) -> Decimal:
        return sum((m.quantity * m.price for m in self.trades), ZERO)

    @property
    def seller_receipts(self) -> Decimal:
        return sum((m.quantity * m.seller_price for m in self.trades), ZERO)

    @property
    def surplus(self) -> Decimal:
        """Budget surplus (payments - receipts, never negative); the caller books it to the
        community. Non-zero only where buyers and sellers see different prices."""
        return self.buyer_payments - self.seller_receipts


@dataclass(frozen=True, slots=True)
class GridTrade:
    """Energy the community trades with the outside grid on behalf of one order."""

    order_id: str
    side: Side  # BUY: the member buys from the grid; SELL: the member's energy goes to the grid
    quantity: Decimal  # kWh
    price: Decimal  # retail tariff for BUY, feed-in tariff for SELL
