"""Community pricing rules for community markets where members state only quantities.

Members report how much they want to buy (consume) or sell (generate) in an interval, with no
price. The community manager is the single counterparty to the outside grid: the community's net
shortfall is imported at the retail tariff ``retail`` and its net excess exported at the feed-in
tariff ``feed_in`` (feed_in <= retail). Notation: D = total kWh bought by members, G = total kWh
sold by members, r = retail, f = feed_in.

Every rule returns a ``CommunitySettlement`` in which money balances exactly:
member payments + grid revenue == member receipts + grid cost. Per-member money is a
proportional share of a side's total, split in units of 1e-8 currency with the largest-remainder
method (ties by member id), so the shares add up to the total to the last unit; the ledger
quantises to the currency's minor unit later. Energy from/to the grid is split the same way in
milli-kWh.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from marketplace.clearing.book import decimal_units
from marketplace.clearing.types import (
    KWH_PLACES,
    MAX_PRICE,
    MAX_QUANTITY_KWH,
    PRICE_PLACES,
    ZERO,
    ClearingError,
    Order,
    Side,
)

MONEY_PLACES = 8  # kWh (3 places) * mid-market price (up to 5 places) is exact at 8
_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)

Position = Order | tuple[str, Side | str, Decimal]


@dataclass(frozen=True, slots=True)
class MemberSettlement:
    """One member's energy and money for the interval under a community pricing rule."""

    member_id: str
    side: Side
    quantity: Decimal  # kWh bought (BUY) or sold (SELL) in total
    peer_quantity: Decimal  # kWh of it matched with other members
    grid_quantity: Decimal  # kWh of it imported from / exported to the grid via the community
    amount: Decimal  # money the member pays (BUY) or receives (SELL), >= 0

    @property
    def price(self) -> Decimal:
        """Average price per kWh (informational; ``amount`` is what is booked)."""
        return (self.amount / self.quantity).quantize(_MONEY_QUANTUM)


@dataclass(frozen=True, slots=True)
class CommunitySettlement:
    """Outcome of one community pricing rule for one interval."""

    rule: str
    members: tuple[MemberSettlement, ...]
    grid_import: Decimal  # kWh the community buys from the grid at the retail tariff
    grid_export: Decimal  # kWh the community sells to the grid at the feed-in tariff
    grid_cost: Decimal  # money paid to the grid: grid_import * retail
    grid_revenue: Decimal  # money received from the grid: grid_export * feed_in

    @property
    def member_payments(self) -> Decimal:
        return sum((m.amount for m in self.members if m.side == Side.BUY), ZERO)

    @property
    def member_receipts(self) -> Decimal:
        return sum((m.amount for m in self.members if m.side == Side.SELL), ZERO)

    def _side_price(self, side: Side) -> Decimal | None:
        quantity = sum((m.quantity for m in self.members if m.side == side), ZERO)
        if not quantity:
            return None
        amount = sum((m.amount for m in self.members if m.side == side), ZERO)
        return (amount / quantity).quantize(_MONEY_QUANTUM)

    @property
    def buy_price(self) -> Decimal | None:
        """What buyers pay per kWh under the rule (None if nobody bought)."""
        return self._side_price(Side.BUY)

    @property
    def sell_price(self) -> Decimal | None:
        """What sellers receive per kWh under the rule (None if nobody sold)."""
        return self._side_price(Side.SELL)

    @property
    def balance(self) -> Decimal:
        """Money in minus money out of the community's account; always exactly zero."""
        return self.member_payments + self.grid_revenue - self.member_receipts - self.grid_cost


@dataclass(frozen=True, slots=True)
class _Position:
    member_id: str
    side: Side
    milli: int


def _tariff(value: object, name: str) -> Decimal:
    # On the price tick, every grid amount (kWh * tariff) is exact in the 1e-8 money unit.
    if decimal_units(value, PRICE_PLACES, name, limit=MAX_PRICE) < 0:
        raise ClearingError(f"{name} must be >= 0, got {value}")
    return Decimal(value)  # type: ignore[arg-type]  # decimal_units checked the type


def _positions(quantities: Sequence[Position]) -> list[_Position]:
    out: list[_Position] = []
    seen: set[str] = set()
    for i, item in enumerate(quantities):
        raw_side: Side | str
        if isinstance(item, Order):
            member_id, raw_side, quantity = item.id, item.side, item.quantity
        else:
            try:
                member_id, raw_side, quantity = item
            except (TypeError, ValueError):
                raise ClearingError(f"position #{i}: expected (id, side, kWh)") from None
        try:
            side = Side(raw_side)
        except ValueError:
            raise ClearingError(
                f"position #{i} ({member_id!r}): unknown side {raw_side!r}"
            ) from None
        try:
            milli = decimal_units(quantity, KWH_PLACES, "quantity", limit=MAX_QUANTITY_KWH)
        except ClearingError as exc:
            raise ClearingError(f"position #{i} ({member_id!r}): {exc}") from None
        if milli <= 0:
            raise ClearingError(f"position #{i} ({member_id!r}): quantity must be > 0")
        if member_id in seen:
            raise ClearingError(f"duplicate member id {member_id!r}")
        seen.add(member_id)
        out.append(_Position(member_id, side, milli))
    # Sorted by id so the settlement (and its rounding) does not depend on input order.
    out.sort(key=lambda p: p.member_id)
    return out


def _split(total: int, weights: list[int]) -> list[int]:
    """Split the integer ``total`` proportionally to ``weights`` (largest remainder method)."""
    weight_sum = sum(weights)
    if weight_sum == 0:
        return [0] * len(weights)
    shares = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    left = total - sum(shares)
    # Stable sort: equal remainders go to the earlier member id.
    for i in sorted(range(len(weights)), key=lambda j: -remainders[j])[:left]:
        shares[i] += 1
    return shares


def _money_units(amount: Decimal) -> int:
    return int(amount.scaleb(MONEY_PLACES).to_integral_value(rounding=ROUND_HALF_EVEN))


def _settle(
    rule: str,
    positions: list[_Position],
    *,
    retail: Decimal,
    feed_in: Decimal,
    buyers_total: Decimal,
    sellers_total: Decimal,
) -> CommunitySettlement:
    """Split side totals among members and attach the grid flows.

    ``sellers_total`` is rounded to the money unit; ``buyers_total`` is then *derived* from the
    balance equation so that money balances exactly whatever the rule's rounding.
    """
    demand = sum(p.milli for p in positions if p.side == Side.BUY)
    supply = sum(p.milli for p in positions if p.side == Side.SELL)
    grid_import = max(demand - supply, 0)
    grid_export = max(supply - demand, 0)
    grid_cost = Decimal(grid_import).scaleb(-KWH_PLACES) * retail
    grid_revenue = Decimal(grid_export).scaleb(-KWH_PLACES) * feed_in
    seller_units = _money_units(sellers_total)
    buyer_units = seller_units + _money_units(grid_cost) - _money_units(grid_revenue)
    # The derived buyer total differs from the rule's own figure by rounding only.
    assert abs(buyer_units - _money_units(buyers_total)) <= 2

    members: list[MemberSettlement] = []
    for side, units, grid_milli in (
        (Side.BUY, buyer_units, grid_import),
        (Side.SELL, seller_units, grid_export),
    ):
        group = [p for p in positions if p.side == side]
        weights = [p.milli for p in group]
        money = _split(units, weights)
        grid = _split(grid_milli, weights)
        for p, m, g in zip(group, money, grid, strict=True):
            members.append(
                MemberSettlement(
                    member_id=p.member_id,
                    side=side,
                    quantity=Decimal(p.milli).scaleb(-KWH_PLACES),
                    peer_quantity=Decimal(p.milli - g).scaleb(-KWH_PLACES),
                    grid_quantity=Decimal(g).scaleb(-KWH_PLACES),
                    amount=Decimal(m).scaleb(-MONEY_PLACES),
                )
            )
    members.sort(key=lambda m: m.member_id)
    return CommunitySettlement(
        rule=rule,
        members=tuple(members),
        grid_import=Decimal(grid_import).scaleb(-KWH_PLACES),
        grid_export=Decimal(grid_export).scaleb(-KWH_PLACES),
        grid_cost=grid_cost,
        grid_revenue=grid_revenue,
    )


def _prepare(
    quantities: Sequence[Position], retail: object, feed_in: object
) -> tuple[list[_Position], Decimal, Decimal, Decimal, Decimal]:
    r = _tariff(retail, "retail")
    f = _tariff(feed_in, "feed_in")
    if f > r:
        raise ClearingError(f"feed_in {f} must not exceed retail {r}")
    positions = _positions(quantities)
    demand = Decimal(sum(p.milli for p in positions if p.side == Side.BUY)).scaleb(-KWH_PLACES)
    supply = Decimal(sum(p.milli for p in positions if p.side == Side.SELL)).scaleb(-KWH_PLACES)
    return positions, r, f, demand, supply


def mid_market_rate(
    quantities: Sequence[Position], *, retail: Decimal, feed_in: Decimal
) -> CommunitySettlement:
    """Mid-market rate (MMR), Long et al. 2017.

    Source: C. Long, J. Wu, C. Zhang, L. Thomas, M. Cheng, N. Jenkins, "Peer-to-peer energy
    trading in a community microgrid", IEEE PES General Meeting 2017; compared in Y. Zhou,
    J. Wu, C. Long, "Evaluation of peer-to-peer energy sharing mechanisms based on a multiagent
    simulation framework", Applied Energy 222 (2018) 993-1022.

    P_mid = (r + f) / 2 is the internal price for energy traded between members.
      * G == D: buyers pay P_mid, sellers receive P_mid.
      * G >  D: buyers pay P_mid; sellers share D * P_mid + (G - D) * f, i.e. their price is
        (D * P_mid + (G - D) * f) / G, between f and P_mid.
      * G <  D: sellers receive P_mid; buyers share G * P_mid + (D - G) * r, i.e. their price
        is (G * P_mid + (D - G) * r) / D, between P_mid and r.
    So f <= sell price <= buy price <= r always.
    """
    positions, r, f, demand, supply = _prepare(quantities, retail, feed_in)
    mid = (r + f) / 2
    if supply >= demand:
        buyers = demand * mid
        sellers = buyers + (supply - demand) * f
    else:
        sellers = supply * mid
        buyers = sellers + (demand - supply) * r
    return _settle(
        "mid-market-rate",
        positions,
        retail=r,
        feed_in=f,
        buyers_total=buyers,
        sellers_total=sellers,
    )


def supply_demand_ratio(
    quantities: Sequence[Position], *, retail: Decimal, feed_in: Decimal
) -> CommunitySettlement:
    """Supply-demand ratio (SDR) pricing, Liu et al. 2017.

    Source: N. Liu, X. Yu, C. Wang, C. Li, L. Ma, J. Lei, "Energy-sharing model with price-based
    demand response for microgrids of peer-to-peer prosumers", IEEE Trans. Power Systems 32(5)
    (2017) 3569-3583; also evaluated in Zhou, Wu & Long, Applied Energy 222 (2018).

    SDR = G / D. Internal selling price P_s and buying price P_b:
      * 0 <= SDR < 1: P_s = r * f / ((r - f) * SDR + f),  P_b = P_s * SDR + r * (1 - SDR)
      * SDR >= 1 (or D == 0): P_s = P_b = f
    P_s falls from r (SDR -> 0) to f (SDR = 1), so f <= P_s <= P_b <= r. Total money: sellers
    G * P_s (rounded half-even to 1e-8), buyers that plus the grid import cost (D - G) * r,
    which equals D * P_b up to that rounding. With f = 0 and G > 0, P_s = 0; with r = f every
    price is r.
    """
    positions, r, f, demand, supply = _prepare(quantities, retail, feed_in)
    if demand == 0 or supply >= demand:
        sellers = supply * f
        buyers = demand * f
    elif supply == 0:
        sellers = ZERO
        buyers = demand * r
    elif r == f:
        sellers = supply * r
        buyers = demand * r
    else:
        ratio = supply / demand
        sell_price = r * f / ((r - f) * ratio + f)
        sellers = supply * sell_price
        buyers = sellers + (demand - supply) * r
    return _settle(
        "supply-demand-ratio",
        positions,
        retail=r,
        feed_in=f,
        buyers_total=buyers,
        sellers_total=sellers,
    )


def bill_sharing(
    quantities: Sequence[Position], *, retail: Decimal, feed_in: Decimal
) -> CommunitySettlement:
    """Bill sharing (BS), Long et al. 2017 (same sources as ``mid_market_rate``).

    The community settles with the grid on its net position only; that bill is then shared:
    buyers share the import cost (D - G) * r in proportion to consumption, sellers share the
    export revenue (G - D) * f in proportion to generation. Per kWh: buyers pay
    r * max(D - G, 0) / D and sellers receive f * max(G - D, 0) / G.

    Caveat, by design of the rule as we read it: the buy price is bounded by [0, r] but the sell
    price by [0, f], not from below by f; when the community is a net importer, sellers' energy
    is shared at no charge. Use MMR or SDR where sellers must never get less than feed-in.
    """
    positions, r, f, demand, supply = _prepare(quantities, retail, feed_in)
    buyers = max(demand - supply, ZERO) * r
    sellers = max(supply - demand, ZERO) * f
    return _settle(
        "bill-sharing",
        positions,
        retail=r,
        feed_in=f,
        buyers_total=buyers,
        sellers_total=sellers,
    )


COMMUNITY_RULES: dict[str, Callable[..., CommunitySettlement]] = {
    "mid-market-rate": mid_market_rate,
    "supply-demand-ratio": supply_demand_ratio,
    "bill-sharing": bill_sharing,
}
