"""Settling an interval: metered energy against confirmed trades, booked through the ledger.

For each member of the interval (see ``interval_settle``):

* each confirmed trade, ``q = confirmed_kwh``: a peer trade moves ``price_per_kwh * q`` out of the
  buyer's account and ``seller_price_per_kwh * q`` into the seller's; the difference goes to the
  community: a trade-reduction surplus to its fee account, the spread of a community pricing rule
  (``source=community``) to its grid account, which that spread helps pay the grid bill with. A
  trade with the outside grid (buyer or seller null) moves the same money against the community's
  grid account instead.
* network charges, by the community's rule: flat, every member party of a peer trade (bilateral,
  pool, community) pays ``fee_per_kwh * q`` to the fee account (the community fee), and energy
  the grid supplied or took (``source=grid``) pays none: no one is worse off for posting, as a
  member whose order the grid fills pays or receives exactly what the same energy costs as
  imbalance (retail or feed-in, no fee); by use, every member party pays
  ``network_tariff_per_kwh * q * use`` instead, ``use`` being the units of use of the network the
  grid check set on its side of the trade (``Trade.buyer_network_use``/``seller_network_use``).
* network losses: each member pays ``loss_price * kWh`` for the losses the grid check allocated to
  their meter points (``GridCheckResult.loss_allocation``; a negative share is paid back) into the
  community's losses account; the loss price is the rules' ``loss_price_per_kwh``, or the retail
  tariff when it is empty.
* the community's side of its region's trades, if it traded in a region this interval: the
  region's price replaces the grid tariff for the kWh the region took, the difference going to
  the members whose grid trades they were (``marketplace.ledger.services.region``).
* the imbalance ``(imported - exported) - (bought - sold)`` in kWh: a shortfall (> 0) is bought
  from the grid at ``retail_tariff``, a surplus (< 0) sold to it at ``feed_in_tariff``, both
  through the community's grid account.

The tariffs and the fee are those of the market rules the interval was opened under. A reading
that arrives after settlement books only the difference it makes, as an adjustment transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, Sum

from accounts.models import Membership, MembershipStatus, MeterPoint, MeterPointStatus
from config.errors import ApplicationError, ErrorCode
from config.sql import insert_rows
from grid.models import GridCheckResult
from marketplace.ledger.lock_objects import lock_ledger_chain
from marketplace.ledger.models import (
    AccountKind,
    EntryKind,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    MeterReading,
    ReadingStatus,
    Settlement,
    TransactionKind,
)
from marketplace.ledger.services.ledger import (
    ZERO,
    AccountRef,
    LedgerLine,
    LedgerPosting,
    PostingAccount,
    ledger_account_for_community,
    ledger_account_for_member,
    ledger_accounts_for_communities,
    ledger_accounts_for_members,
    ledger_post,
    ledger_post_many,
)
from marketplace.ledger.services.region import region_lines
from marketplace.models import (
    Interval,
    IntervalState,
    MarketRules,
    NetworkChargeRule,
    RegionPart,
    RegionResidual,
    Trade,
    TradeSource,
)
from marketplace.services.network_charges import network_charge_per_kwh
from units import CENT, KWH

# How long after an interval ends settlement waits for missing readings before it estimates
# them from the confirmed schedule (and flags the settlement as estimated).
DEFAULT_SETTLEMENT_WINDOW_MINUTES = 60
SETTLEABLE_STATES = (IntervalState.CONFIRMED, IntervalState.SETTLED)


def settlement_window() -> timedelta:
    minutes = getattr(
        settings, "PEERGRID_SETTLEMENT_WINDOW_MINUTES", DEFAULT_SETTLEMENT_WINDOW_MINUTES
    )
    return timedelta(minutes=int(minutes))


def settlement_key(interval: Interval) -> str:
    return f"settle:{interval.pk}"


@dataclass(frozen=True)
class SettlementResult:
    """What ``interval_settle`` did; ``settled`` tells the pipeline it may move the state on."""

    interval_id: int
    settled: bool
    created: bool
    transaction_id: int | None = None
    # Meter points without a reading: still awaited (settled=False) or estimated (settled=True).
    missing_meter_point_ids: tuple[int, ...] = ()
    estimated_membership_ids: tuple[int, ...] = ()


@dataclass
class MemberEnergy:
    """One member's confirmed and metered energy in an interval, in kWh."""

    bought_kwh: Decimal = ZERO
    sold_kwh: Decimal = ZERO
    imported_kwh: Decimal = ZERO
    exported_kwh: Decimal = ZERO
    estimated: bool = False
    missing_meter_point_ids: list[int] = field(default_factory=list)

    @property
    def imbalance_kwh(self) -> Decimal:
        """Metered net import minus confirmed net import: > 0 shortfall, < 0 surplus."""
        return (self.imported_kwh - self.exported_kwh) - (self.bought_kwh - self.sold_kwh)


class SettledTrade(NamedTuple):
    """What settling reads of a confirmed trade: plain values, not a ``Trade`` each (an
    interval of a thousand members has about as many trades, and their instances and unused
    columns cost more than the lines they book)."""

    interval_id: int
    source: str
    sequence: int
    buyer_id: int | None
    seller_id: int | None
    buyer_meter_point_id: int | None
    seller_meter_point_id: int | None
    confirmed_kwh: Decimal | None
    price_per_kwh: Decimal
    seller_price_per_kwh: Decimal
    buyer_network_use: Decimal | None
    seller_network_use: Decimal | None


def settled_trades(**condition: Any) -> list[SettledTrade]:
    """The confirmed trades (confirmed_kwh > 0) matching ``condition``, in settling order."""
    rows = (
        Trade.objects.filter(confirmed_kwh__gt=0, **condition)
        .order_by("interval_id", "source", "sequence", "pk")
        .values_list(*SettledTrade._fields)
    )
    return [SettledTrade._make(row) for row in rows]


def confirmed_trades(interval: Interval) -> list[SettledTrade]:
    return settled_trades(interval_id=interval.pk)


def expected_meter_points(interval: Interval, trades: list[SettledTrade]) -> dict[int, int]:
    """Meter point id -> membership id of every meter point that must report for the interval.

    Every approved meter point of an approved (or since suspended: they still used energy)
    member that existed when the interval ended, and any meter point named in a confirmed trade.
    A meter point still awaiting its manager's approval is not settled: what it claims to have
    metered moves no money.
    """
    rows = MeterPoint.objects.filter(
        membership__community_id=interval.community_id,
        membership__status__in=[MembershipStatus.APPROVED, MembershipStatus.SUSPENDED],
        status=MeterPointStatus.APPROVED,
        created_at__lt=interval.end,
    ).values_list("pk", "membership_id")
    expected = dict(rows)
    named = {
        mp
        for trade in trades
        for mp in (trade.buyer_meter_point_id, trade.seller_meter_point_id)
        if mp is not None
    }
    if named - expected.keys():
        expected.update(
            MeterPoint.objects.filter(pk__in=named - expected.keys()).values_list(
                "pk", "membership_id"
            )
        )
    return expected


def awaiting_first_reading_condition(now: datetime) -> Q:
    """Intervals that ``interval_settle`` would surely answer "not yet" at ``now``, as one
    condition over many intervals: inside the settlement window, no reading of the interval has
    arrived (accepted or not), and some meter point must report (``expected_meter_points``: an
    approved one of the community, or one named in a confirmed trade)."""
    expected = MeterPoint.objects.filter(
        membership__community_id=OuterRef("community_id"),
        membership__status__in=[MembershipStatus.APPROVED, MembershipStatus.SUSPENDED],
        status=MeterPointStatus.APPROVED,
        created_at__lt=OuterRef("end"),
    )
    named = Trade.objects.filter(interval=OuterRef("pk"), confirmed_kwh__gt=0).filter(
        Q(buyer_meter_point__isnull=False) | Q(seller_meter_point__isnull=False)
    )
    return (
        Q(end__gt=now - settlement_window())
        & ~Q(Exists(MeterReading.objects.filter(interval=OuterRef("pk"))))
        & (Q(Exists(expected)) | Q(Exists(named)))
    )


class MeteredEnergy(NamedTuple):
    """What a meter point's accepted reading says it imported and exported in the interval."""

    imported_kwh: Decimal
    exported_kwh: Decimal


def latest_readings(interval: Interval) -> dict[int, MeteredEnergy]:
    """Meter point id -> its newest accepted reading version for the interval (a flagged one
    settles nothing until a manager accepts it)."""
    return latest_readings_many([interval.pk])[interval.pk]


def latest_readings_many(interval_ids: list[int]) -> dict[int, dict[int, MeteredEnergy]]:
    """``latest_readings`` of many intervals in one query: interval id -> meter point id ->
    energy. Plain values, not reading instances: settling a thousand members builds none."""
    latest: dict[int, dict[int, MeteredEnergy]] = defaultdict(dict)
    rows = (
        MeterReading.objects.filter(interval_id__in=interval_ids, status=ReadingStatus.ACCEPTED)
        .order_by("version")
        .values_list("interval_id", "meter_point_id", "imported_kwh", "exported_kwh")
    )
    for interval_id, meter_point_id, imported, exported in rows:
        latest[interval_id][meter_point_id] = MeteredEnergy(imported, exported)
    return latest


def member_accounts(
    membership_ids: Iterable[int], community_ids: Iterable[int] = ()
) -> dict[int, AccountRef]:
    """Membership id -> its ledger account (opened if missing), from the members' ids;
    ``community_ids``, the communities settled, where almost all of them are members."""
    return ledger_accounts_for_members(membership_ids=membership_ids, community_ids=community_ids)


def member_energy(
    interval: Interval,
    trades: list[SettledTrade],
    meter_points: dict[int, int],
    readings: Mapping[int, MeteredEnergy],
) -> dict[int, MemberEnergy]:
    """Membership id -> confirmed and metered energy, estimating missing meters by schedule."""
    of_member: dict[int, list[int]] = defaultdict(list)
    for mp, membership_id in sorted(meter_points.items()):
        of_member[membership_id].append(mp)
    # Every member with a meter point gets a row, traded or not; trade parties are added below.
    energy: dict[int, MemberEnergy] = defaultdict(MemberEnergy)
    energy.update({membership_id: MemberEnergy() for membership_id in of_member})
    # The schedule per meter point: what stands in for a missing reading.
    scheduled: dict[int, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])

    def home(membership_id: int, mp: int | None) -> int | None:
        # A trade without a meter point counts against the member's first one.
        if mp is not None:
            return mp
        own = of_member.get(membership_id)
        return own[0] if own else None

    unmetered: dict[int, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for trade in trades:
        q = trade.confirmed_kwh or ZERO
        if trade.buyer_id is not None:
            energy[trade.buyer_id].bought_kwh += q
            at = home(trade.buyer_id, trade.buyer_meter_point_id)
            (scheduled[at] if at is not None else unmetered[trade.buyer_id])[0] += q
        if trade.seller_id is not None:
            energy[trade.seller_id].sold_kwh += q
            at = home(trade.seller_id, trade.seller_meter_point_id)
            (scheduled[at] if at is not None else unmetered[trade.seller_id])[1] += q
    for membership_id, member in energy.items():
        for mp in of_member.get(membership_id, []):
            reading = readings.get(mp)
            if reading is not None:
                member.imported_kwh += reading.imported_kwh
                member.exported_kwh += reading.exported_kwh
            else:
                member.imported_kwh += scheduled[mp][0]
                member.exported_kwh += scheduled[mp][1]
                member.estimated = True
                member.missing_meter_point_ids.append(mp)
        if membership_id in unmetered:
            # No meter point at all: nothing was measured, so the schedule is the estimate.
            member.imported_kwh += unmetered[membership_id][0]
            member.exported_kwh += unmetered[membership_id][1]
            member.estimated = True
    return dict(energy)


def _imbalance_lines(
    *,
    interval: Interval,
    account: PostingAccount,
    grid: LedgerAccount,
    imbalance_kwh: Decimal,
    booked: dict[str, tuple[Decimal, Decimal]],
) -> list[LedgerLine]:
    """Lines that bring the member's imbalance money from ``booked`` to what ``imbalance_kwh``
    costs; ``booked`` maps entry kind -> (amount, energy) already on the member's account."""
    rules = interval.rules
    targets = (
        (EntryKind.IMBALANCE_IMPORT, max(imbalance_kwh, ZERO), -rules.retail_tariff),
        (EntryKind.IMBALANCE_EXPORT, max(-imbalance_kwh, ZERO), rules.feed_in_tariff),
    )
    lines = []
    for kind, target_kwh, signed_price in targets:
        booked_amount, booked_kwh = booked.get(kind, (ZERO, ZERO))
        # Against the booked cents, so after any number of adjustments the member holds exactly
        # the rounded price of the current imbalance and no rounding drift accumulates.
        delta = signed_price * target_kwh - booked_amount
        if delta == ZERO:
            continue
        price = abs(signed_price)
        energy = target_kwh - booked_kwh
        lines.append(LedgerLine(account, delta, kind, energy, price, "imbalance"))
        lines.append(LedgerLine(grid, -delta, kind, energy, price, "imbalance"))
    return lines


def _network_charge_lines(
    *,
    rules: MarketRules,
    trade: SettledTrade,
    member_account: Mapping[int, PostingAccount],
    fee: LedgerAccount,
) -> list[LedgerLine]:
    q = trade.confirmed_kwh or ZERO
    memo = f"{trade.source} trade {trade.sequence}"
    lines: list[LedgerLine] = []
    sides = ((trade.buyer_id, trade.buyer_network_use), (trade.seller_id, trade.seller_network_use))
    by_use = rules.network_charge_rule == NetworkChargeRule.BY_USE
    if not by_use and trade.source == TradeSource.GRID:
        return lines  # the community fee is on peer trades only (module docstring)
    kind = EntryKind.NETWORK_CHARGE if by_use else EntryKind.FEE
    for party, use in sides:
        price = network_charge_per_kwh(rules, use)
        if party is None or not price:
            continue
        charge = price * q
        lines.append(LedgerLine(member_account[party], -charge, kind, q, price, memo))
        lines.append(LedgerLine(fee, charge, kind, q, price, memo))
    return lines


def loss_shares_kwh(interval: Interval, meter_points: dict[int, int]) -> dict[int, Decimal]:
    """Membership id -> kWh of the interval's losses allocated to its meter points."""
    result = GridCheckResult.objects.filter(interval=interval).values("loss_allocation").first()
    return _loss_shares(result["loss_allocation"] if result else {}, meter_points)


def _loss_shares(allocation: dict[str, Any], meter_points: dict[int, int]) -> dict[int, Decimal]:
    shares: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for meter_point, kwh in (allocation or {}).items():
        membership_id = meter_points.get(int(meter_point))
        if membership_id is not None:
            shares[membership_id] += Decimal(kwh)
    return dict(shares)


def _loss_lines(
    *,
    interval: Interval,
    shares: dict[int, Decimal],
    member_account: Mapping[int, PostingAccount],
    losses: LedgerAccount,
) -> list[LedgerLine]:
    price = interval.rules.effective_loss_price_per_kwh
    lines: list[LedgerLine] = []
    for membership_id, kwh in sorted(shares.items()):
        if not kwh:
            continue
        amount = price * kwh
        account = member_account[membership_id]
        lines.append(LedgerLine(account, -amount, EntryKind.LOSSES, kwh, price, "network losses"))
        lines.append(LedgerLine(losses, amount, EntryKind.LOSSES, kwh, price, "network losses"))
    return lines


def _trade_lines(
    *,
    interval: Interval,
    trades: list[SettledTrade],
    member_account: Mapping[int, PostingAccount],
    grid: LedgerAccount,
    fee: LedgerAccount,
) -> list[LedgerLine]:
    lines: list[LedgerLine] = []
    for trade in trades:
        q = trade.confirmed_kwh or ZERO
        memo = f"{trade.source} trade {trade.sequence}"
        paid = trade.price_per_kwh * q
        received = trade.seller_price_per_kwh * q
        if trade.buyer_id is not None and trade.seller_id is not None:
            buyer, seller = member_account[trade.buyer_id], member_account[trade.seller_id]
            lines.append(
                LedgerLine(buyer, -paid, EntryKind.PEER_PURCHASE, q, trade.price_per_kwh, memo)
            )
            lines.append(
                LedgerLine(
                    seller, received, EntryKind.PEER_SALE, q, trade.seller_price_per_kwh, memo
                )
            )
            if paid != received:
                keeper = grid if trade.source == TradeSource.COMMUNITY else fee
                lines.append(LedgerLine(keeper, paid - received, EntryKind.SPREAD, q, None, memo))
        elif trade.buyer_id is not None:
            buyer = member_account[trade.buyer_id]
            lines.append(
                LedgerLine(buyer, -paid, EntryKind.GRID_PURCHASE, q, trade.price_per_kwh, memo)
            )
            lines.append(
                LedgerLine(grid, paid, EntryKind.GRID_PURCHASE, q, trade.price_per_kwh, memo)
            )
        else:
            assert trade.seller_id is not None  # the trade_has_a_member constraint
            seller = member_account[trade.seller_id]
            price = trade.seller_price_per_kwh
            lines.append(LedgerLine(seller, received, EntryKind.GRID_SALE, q, price, memo))
            lines.append(LedgerLine(grid, -received, EntryKind.GRID_SALE, q, price, memo))
        lines += _network_charge_lines(
            rules=interval.rules, trade=trade, member_account=member_account, fee=fee
        )
    return lines


def _settlement_lines(
    *,
    interval: Interval,
    trades: list[SettledTrade],
    energy: dict[int, MemberEnergy],
    shares: dict[int, Decimal],
    member_account: Mapping[int, PostingAccount],
    accounts: dict[str, LedgerAccount],
    regional: bool,
) -> list[LedgerLine]:
    """Every line of the interval's settlement (module docstring); ``accounts`` holds the
    community's grid and fee accounts, and its losses account when ``shares`` has any.
    ``regional``: the interval may have traded in its region (False only when it is known
    not to have, so the region's rows need not be read)."""
    grid, fee = accounts[AccountKind.GRID], accounts[AccountKind.FEE]
    lines = _trade_lines(
        interval=interval, trades=trades, member_account=member_account, grid=grid, fee=fee
    )
    if regional:
        lines += region_lines(
            interval=interval, trades=trades, member_account=member_account, grid=grid
        )
    if shares:
        lines += _loss_lines(
            interval=interval, shares=shares, member_account=member_account,
            losses=accounts[AccountKind.LOSSES],
        )  # fmt: skip
    for membership_id in sorted(energy):
        lines += _imbalance_lines(
            interval=interval,
            account=member_account[membership_id],
            grid=grid,
            imbalance_kwh=energy[membership_id].imbalance_kwh,
            booked={},
        )
    return lines


def interval_settle(*, interval: Interval, now: datetime) -> SettlementResult:
    """Settle a confirmed interval once its readings are in or the settlement window has passed.

    Returns ``settled=False`` (and writes nothing) while readings are still awaited. Safe to call
    any number of times: a settled interval returns its existing transaction. It does not change
    ``interval.state``: the pipeline calls it inside its own compare-and-set transaction and moves
    the state to settled when ``settled`` is true. It opens no durable transaction of its own.
    """
    interval = Interval.objects.select_related("rules", "community").get(pk=interval.pk)
    if interval.state not in SETTLEABLE_STATES:
        raise ApplicationError(
            ErrorCode.INVALID_STATE,
            f"Only confirmed intervals can be settled; this one is {interval.state}.",
            field="state",
        )
    key = settlement_key(interval)
    existing = LedgerTransaction.objects.filter(key=key).first()
    if existing is not None:
        return SettlementResult(
            interval.pk, settled=True, created=False, transaction_id=existing.pk
        )
    trades = confirmed_trades(interval)
    meter_points = expected_meter_points(interval, trades)
    readings = latest_readings(interval)
    missing = tuple(sorted(mp for mp in meter_points if mp not in readings))
    if missing and now < interval.end + settlement_window():
        return SettlementResult(
            interval.pk, settled=False, created=False, missing_meter_point_ids=missing
        )

    with transaction.atomic():
        lock_ledger_chain()
        existing = LedgerTransaction.objects.filter(key=key).first()
        if existing is not None:  # another worker settled it while we read
            return SettlementResult(
                interval.pk, settled=True, created=False, transaction_id=existing.pk
            )
        energy = member_energy(interval, trades, meter_points, readings)
        shares = loss_shares_kwh(interval, meter_points)
        for membership_id in shares:
            energy.setdefault(membership_id, MemberEnergy())
        member_account = member_accounts(energy, [interval.community_id])
        community = interval.community
        accounts: dict[str, LedgerAccount] = {
            kind: ledger_account_for_community(community=community, kind=kind)
            for kind in (AccountKind.GRID, AccountKind.FEE)
        }
        if shares:
            accounts[AccountKind.LOSSES] = ledger_account_for_community(
                community=community, kind=AccountKind.LOSSES
            )
        lines = _settlement_lines(
            interval=interval, trades=trades, energy=energy, shares=shares,
            member_account=member_account, accounts=accounts,
            regional=True,
        )  # fmt: skip
        ledger_transaction = ledger_post(
            community=interval.community,
            key=key,
            kind=TransactionKind.SETTLEMENT,
            lines=lines,
            memo=f"settlement of interval {interval}",
            interval=interval,
            now=now,
        )
        _write_settlements([(interval, ledger_transaction, energy)], now)
    return SettlementResult(
        interval.pk,
        settled=True,
        created=True,
        transaction_id=ledger_transaction.pk,
        missing_meter_point_ids=missing,
        estimated_membership_ids=tuple(sorted(m for m, e in energy.items() if e.estimated)),
    )


def _write_settlements(
    settled: list[tuple[Interval, LedgerTransaction, dict[int, MemberEnergy]]], now: datetime
) -> None:
    """Every member's Settlement row of these intervals: one COPY (config.sql.insert_rows) for
    thousands of rows, not bulk_create."""
    insert_rows(
        Settlement,
        (
            "interval_id",
            "membership_id",
            "transaction_id",
            "confirmed_bought_kwh",
            "confirmed_sold_kwh",
            "metered_import_kwh",
            "metered_export_kwh",
            "imbalance_kwh",
            "estimated",
            "settled_at",
        ),
        [
            [
                interval.pk,
                membership_id,
                ledger_transaction.pk,
                member.bought_kwh,
                member.sold_kwh,
                member.imported_kwh,
                member.exported_kwh,
                member.imbalance_kwh,
                member.estimated,
                now,
            ]
            for interval, ledger_transaction, energy in settled
            for membership_id, member in sorted(energy.items())
        ],
    )


def intervals_settle(*, interval_ids: list[int], now: datetime) -> dict[int, SettlementResult]:
    """``interval_settle`` for many confirmed intervals at once: interval id -> its result.

    The same rules, one interval's outcome exactly as ``interval_settle`` would decide it, but
    read with a fixed number of queries for all of them, and every settlement posted under one
    chain lock (``ledger_post_many``: one insert of transactions, one COPY of entries, one
    checkpoint) with all Settlement rows in one COPY. The caller holds the intervals' locks (the
    pipeline's batched step), so none of them is settled by anyone else meanwhile. An interval
    not confirmed (or settled) is left out of the result.
    """
    intervals = [
        interval
        for interval in Interval.objects.filter(pk__in=interval_ids)
        .select_related("rules", "community")
        .order_by("pk")
        if interval.state in SETTLEABLE_STATES
    ]
    if not intervals:
        return {}
    results: dict[int, SettlementResult] = {}
    keys = {settlement_key(interval): interval for interval in intervals}
    for key, pk in LedgerTransaction.objects.filter(key__in=list(keys)).values_list("key", "pk"):
        results[keys[key].pk] = SettlementResult(
            keys[key].pk, settled=True, created=False, transaction_id=pk
        )
    pending = [interval for interval in intervals if interval.pk not in results]
    if not pending:
        return results
    trades_of: dict[int, list[SettledTrade]] = defaultdict(list)
    for trade in settled_trades(interval_id__in=[i.pk for i in pending]):
        trades_of[trade.interval_id].append(trade)
    meter_points_of = _expected_meter_points_many(pending, trades_of)
    readings_of = latest_readings_many([i.pk for i in pending])
    ready: list[Interval] = []
    missing_of: dict[int, tuple[int, ...]] = {}
    for interval in pending:
        readings = readings_of[interval.pk]
        missing = tuple(sorted(mp for mp in meter_points_of[interval.pk] if mp not in readings))
        if missing and now < interval.end + settlement_window():
            results[interval.pk] = SettlementResult(
                interval.pk, settled=False, created=False, missing_meter_point_ids=missing
            )
        else:
            missing_of[interval.pk] = missing
            ready.append(interval)
    if not ready:
        return results
    with transaction.atomic():
        lock_ledger_chain()
        ready_ids = [interval.pk for interval in ready]
        allocations = dict(
            GridCheckResult.objects.filter(interval_id__in=ready_ids).values_list(
                "interval_id", "loss_allocation"
            )
        )
        regional = set(
            RegionResidual.objects.filter(
                interval_id__in=ready_ids, part=RegionPart.TRADED, traded_kwh__gt=0
            ).values_list("interval_id", flat=True)
        )
        energy_of: dict[int, dict[int, MemberEnergy]] = {}
        shares_of: dict[int, dict[int, Decimal]] = {}
        for interval in ready:
            meter_points = meter_points_of[interval.pk]
            energy = member_energy(
                interval, trades_of[interval.pk], meter_points, readings_of[interval.pk]
            )
            shares = _loss_shares(allocations.get(interval.pk) or {}, meter_points)
            for membership_id in shares:
                energy.setdefault(membership_id, MemberEnergy())
            energy_of[interval.pk], shares_of[interval.pk] = energy, shares
        member_account = member_accounts(
            (m for energy in energy_of.values() for m in energy),
            {interval.community_id for interval in ready},
        )
        communities = {interval.community_id: interval.community for interval in ready}
        accounts_of = ledger_accounts_for_communities(
            communities=list(communities.values()), kinds=(AccountKind.GRID, AccountKind.FEE)
        )
        with_losses = [communities[i.community_id] for i in ready if shares_of[i.pk]]
        if with_losses:
            for community_id, accounts in ledger_accounts_for_communities(
                communities=with_losses, kinds=(AccountKind.LOSSES,)
            ).items():
                accounts_of[community_id].update(accounts)
        postings = [
            LedgerPosting(
                community=interval.community,
                key=settlement_key(interval),
                kind=TransactionKind.SETTLEMENT,
                lines=_settlement_lines(
                    interval=interval,
                    trades=trades_of[interval.pk],
                    energy=energy_of[interval.pk],
                    shares=shares_of[interval.pk],
                    member_account=member_account,
                    accounts=accounts_of[interval.community_id],
                    regional=interval.pk in regional,
                ),
                memo=f"settlement of interval {interval}",
                interval=interval,
            )
            for interval in ready
        ]
        posted = ledger_post_many(postings=postings, now=now)
        _write_settlements(
            [(i, t, energy_of[i.pk]) for i, t in zip(ready, posted, strict=True)], now
        )
    for interval, ledger_transaction in zip(ready, posted, strict=True):
        energy = energy_of[interval.pk]
        results[interval.pk] = SettlementResult(
            interval.pk,
            settled=True,
            created=True,
            transaction_id=ledger_transaction.pk,
            missing_meter_point_ids=missing_of[interval.pk],
            estimated_membership_ids=tuple(sorted(m for m, e in energy.items() if e.estimated)),
        )
    return results


def _expected_meter_points_many(
    intervals: list[Interval], trades_of: dict[int, list[SettledTrade]]
) -> dict[int, dict[int, int]]:
    """``expected_meter_points`` for many intervals: one query for their communities' meter
    points (each interval keeps those that existed when it ended) and at most one more for
    meter points named in trades but not among them."""
    rows = MeterPoint.objects.filter(
        membership__community_id__in={interval.community_id for interval in intervals},
        membership__status__in=[MembershipStatus.APPROVED, MembershipStatus.SUSPENDED],
        status=MeterPointStatus.APPROVED,
    ).values_list("pk", "membership_id", "membership__community_id", "created_at")
    of_community: dict[int, list[tuple[int, int, datetime]]] = defaultdict(list)
    for pk, membership_id, community_id, created_at in rows.order_by("pk"):
        of_community[community_id].append((pk, membership_id, created_at))
    expected: dict[int, dict[int, int]] = {}
    named_of: dict[int, set[int]] = {}
    for interval in intervals:
        expected[interval.pk] = {
            pk: membership_id
            for pk, membership_id, created_at in of_community[interval.community_id]
            if created_at < interval.end
        }
        named = {
            mp
            for trade in trades_of[interval.pk]
            for mp in (trade.buyer_meter_point_id, trade.seller_meter_point_id)
            if mp is not None
        }
        named_of[interval.pk] = named - expected[interval.pk].keys()
    others = set().union(*named_of.values())
    if others:
        membership_of = dict(
            MeterPoint.objects.filter(pk__in=others).values_list("pk", "membership_id")
        )
        for interval_id, named in named_of.items():
            expected[interval_id].update(
                {mp: membership_of[mp] for mp in named if mp in membership_of}
            )
    return expected


def settlement_adjust(
    *, interval: Interval, membership: Membership, now: datetime
) -> LedgerTransaction | None:
    """Book what a late or corrected reading changes in a settled interval; None if nothing.

    Only the difference between the imbalance now metered and the imbalance already booked is
    posted, as a new adjustment transaction: earlier entries are never touched.
    """
    interval = Interval.objects.select_related("rules", "community").get(pk=interval.pk)
    with transaction.atomic():
        lock_ledger_chain()
        original = LedgerTransaction.objects.filter(key=settlement_key(interval)).first()
        if original is None:
            return None  # not settled yet: settlement will read the new reading itself
        trades = confirmed_trades(interval)
        meter_points = expected_meter_points(interval, trades)
        energy = member_energy(interval, trades, meter_points, latest_readings(interval))
        member = energy.get(membership.pk, MemberEnergy())
        account = ledger_account_for_member(membership=membership)
        grid = ledger_account_for_community(community=interval.community, kind=AccountKind.GRID)
        booked = {
            # Rounded back to the columns' places: SQLite sums decimals as floats.
            row["kind"]: (
                (row["amount"] or ZERO).quantize(CENT),
                (row["energy"] or ZERO).quantize(KWH),
            )
            for row in LedgerEntry.objects.filter(
                Q(kind=EntryKind.IMBALANCE_IMPORT) | Q(kind=EntryKind.IMBALANCE_EXPORT),
                account=account,
                interval=interval,
            )
            .values("kind")
            .annotate(amount=Sum("amount"), energy=Sum("energy_kwh"))
            .order_by()
        }
        lines = _imbalance_lines(
            interval=interval,
            account=account,
            grid=grid,
            imbalance_kwh=member.imbalance_kwh,
            booked=booked,
        )
        settlement, _ = Settlement.objects.get_or_create(
            interval=interval,
            membership=membership,
            defaults={
                "transaction": original,
                "confirmed_bought_kwh": member.bought_kwh,
                "confirmed_sold_kwh": member.sold_kwh,
                "metered_import_kwh": member.imported_kwh,
                "metered_export_kwh": member.exported_kwh,
                "imbalance_kwh": member.imbalance_kwh,
                "estimated": member.estimated,
                "settled_at": now,
            },
        )
        ledger_transaction = None
        if lines:
            count = LedgerTransaction.objects.filter(
                key__startswith=f"adjust:{interval.pk}:{membership.pk}:"
            ).count()
            ledger_transaction = ledger_post(
                community=interval.community,
                key=f"adjust:{interval.pk}:{membership.pk}:{count + 1}",
                kind=TransactionKind.ADJUSTMENT,
                lines=lines,
                memo=f"late reading for interval {interval}",
                interval=interval,
                now=now,
            )
        # The summary follows the newest readings; the money trail is in the ledger.
        settlement.metered_import_kwh = member.imported_kwh
        settlement.metered_export_kwh = member.exported_kwh
        settlement.imbalance_kwh = member.imbalance_kwh
        settlement.estimated = member.estimated
        settlement.adjusted_at = now
        settlement.save(
            update_fields=[
                "metered_import_kwh",
                "metered_export_kwh",
                "imbalance_kwh",
                "estimated",
                "adjusted_at",
            ]
        )
        return ledger_transaction
