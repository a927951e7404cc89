"""Reads of the ledger: balances, monthly statements with savings, the last verification."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum

from accounts import permissions
from accounts.models import Membership, User
from config.errors import ApplicationError, ErrorCode
from marketplace.ledger.models import (
    EntryKind,
    LedgerAccount,
    LedgerEntry,
    LedgerVerification,
    ReadingImport,
    Settlement,
    TransactionKind,
)
from marketplace.models import Community, Interval
from units import CENT, KWH

ZERO = Decimal("0")


def money(total: Decimal | None) -> Decimal:
    """A database sum of amounts, exact to the cent.

    SQLite adds DECIMAL columns as binary floats, so a sum of cents can come back as
    -1.99E-15 instead of 0; every amount has 2 places, so rounding to the cent restores the
    exact sum (for any balance below about 10^12). PostgreSQL's sums are exact already.
    """
    return (total if total is not None else ZERO).quantize(CENT)


def account_balance(*, account: LedgerAccount) -> Decimal:
    """The balance is the sum of the account's entries; nothing else is stored."""
    return money(account.entries.aggregate(total=Sum("amount"))["total"])


def member_balance(*, membership: Membership) -> Decimal:
    """What the community owes the member (> 0) or the member owes (< 0)."""
    account = LedgerAccount.objects.filter(membership=membership).first()
    return account_balance(account=account) if account else ZERO.quantize(CENT)


@dataclass(frozen=True)
class AccountBalance:
    account: LedgerAccount
    balance: Decimal


def community_balances(*, community: Community) -> list[AccountBalance]:
    """Every account of the community with its balance, in one query."""
    accounts = (
        LedgerAccount.objects.filter(community=community)
        .select_related("membership")
        .annotate(total=Sum("entries__amount"))
        .order_by("kind", "pk")
    )
    return [AccountBalance(account, money(account.total)) for account in accounts]


def ledger_last_verification(*, community: Community | None = None) -> LedgerVerification | None:
    """The newest walk that covered the community: its own, or one of the whole chain."""
    runs = LedgerVerification.objects.all()
    if community is not None:
        runs = runs.filter(Q(community=community) | Q(community__isnull=True))
    else:
        runs = runs.filter(community__isnull=True)
    return runs.order_by("-at", "-pk").first()


def statement_membership(
    *, viewer: User, community: Community, pseudonym: str | None = None
) -> Membership:
    """Whose statement ``viewer`` may see: their own; a manager of the community, any member's."""
    own = Membership.objects.filter(user=viewer, community=community).first()
    if pseudonym and (pseudonym != (own.pseudonym if own else None)):
        target = Membership.objects.filter(community=community, pseudonym=pseudonym).first()
        if target is None or not permissions.can_see_identities(viewer, community):
            # The same answer whether or not the member exists: pseudonyms are not probed.
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such statement.")
        return target
    if own is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "You are not a member of this community.")
    return own


@dataclass
class StatementRow:
    """One interval of a member's statement; amounts > 0 are money to the member."""

    interval_start: datetime
    bought_kwh: Decimal = ZERO
    sold_kwh: Decimal = ZERO
    purchases: Decimal = ZERO
    sales: Decimal = ZERO
    fees: Decimal = ZERO
    network_charges: Decimal = ZERO  # by use of the network (the flat rule's are in fees)
    losses_kwh: Decimal = ZERO  # the member's share of the network losses
    losses: Decimal = ZERO
    imported_kwh: Decimal = ZERO
    exported_kwh: Decimal = ZERO
    imbalance_kwh: Decimal = ZERO
    imbalance: Decimal = ZERO
    adjustments: Decimal = ZERO
    estimated: bool = False
    total: Decimal = ZERO
    balance: Decimal = ZERO
    # What the same metered energy would have cost buying and selling only with the grid.
    grid_only: Decimal = ZERO


@dataclass
class Statement:
    membership: Membership
    community: Community
    month_start: datetime  # local midnight of the 1st, in the community's zone
    month_end: datetime
    opening_balance: Decimal
    rows: list[StatementRow] = field(default_factory=list)

    @property
    def closing_balance(self) -> Decimal:
        return self.rows[-1].balance if self.rows else self.opening_balance

    @property
    def total(self) -> Decimal:
        return sum((row.total for row in self.rows), ZERO)

    @property
    def grid_only_total(self) -> Decimal:
        return sum((row.grid_only for row in self.rows), ZERO)

    @property
    def savings(self) -> Decimal:
        """Money the member is better off than with only the grid's tariffs (> 0 saved)."""
        return self.total - self.grid_only_total

    def totals(self) -> dict[str, Decimal]:
        names = ("bought_kwh", "sold_kwh", "purchases", "sales", "fees", "network_charges",
                 "losses_kwh", "losses", "imported_kwh",
                 "exported_kwh", "imbalance_kwh", "imbalance", "adjustments", "total")  # fmt: skip
        return {name: sum((getattr(row, name) for row in self.rows), ZERO) for name in names}


def month_bounds(community: Community, year: int, month: int) -> tuple[datetime, datetime]:
    """The month in the community's zone, as aware datetimes (compared in UTC by the database)."""
    if not 1 <= month <= 12 or not 2000 <= year <= 9999:
        raise ApplicationError(ErrorCode.NO_SUCH_MONTH, "No such month.", field="month")
    zone = zoneinfo.ZoneInfo(community.timezone)
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=zone)
    return start, end


_PURCHASES = {EntryKind.PEER_PURCHASE, EntryKind.GRID_PURCHASE}
_SALES = {EntryKind.PEER_SALE, EntryKind.GRID_SALE}
_IMBALANCE = {EntryKind.IMBALANCE_IMPORT, EntryKind.IMBALANCE_EXPORT}


def member_statement(*, membership: Membership, year: int, month: int) -> Statement:
    """Each interval of the month (by its start) with the member's money and energy.

    Entries are grouped by the interval they settle, so a late reading's adjustment appears in
    its interval's row (column ``adjustments``) even when it was booked in a later month.
    """
    start, end = month_bounds(membership.community, year, month)
    return member_statement_between(membership=membership, start=start, end=end)


def member_statement_between(
    *, membership: Membership, start: datetime, end: datetime
) -> Statement:
    """The statement of the intervals starting in ``[start, end)``: the one rule for settled
    money and savings, which the dashboard, My trades and the monthly statement all show."""
    community = membership.community
    account = LedgerAccount.objects.filter(membership=membership).first()
    entries = LedgerEntry.objects.filter(account=account) if account else LedgerEntry.objects.none()
    opening = money(
        entries.filter(
            Q(interval__start__lt=start) | Q(interval__isnull=True, created_at__lt=start)
        ).aggregate(total=Sum("amount"))["total"]
    )
    zone = zoneinfo.ZoneInfo(community.timezone)
    rows: dict[int, StatementRow] = {}
    intervals = {
        settlement.interval_id: settlement
        for settlement in Settlement.objects.filter(
            membership=membership, interval__start__gte=start, interval__start__lt=end
        ).select_related("interval__rules")
    }
    for interval_id, settlement in intervals.items():
        interval = settlement.interval
        rules = interval.rules
        rows[interval_id] = StatementRow(
            interval_start=interval.start.astimezone(zone),
            bought_kwh=settlement.confirmed_bought_kwh,
            sold_kwh=settlement.confirmed_sold_kwh,
            imported_kwh=settlement.metered_import_kwh,
            exported_kwh=settlement.metered_export_kwh,
            imbalance_kwh=settlement.imbalance_kwh,
            estimated=settlement.estimated,
            grid_only=(
                settlement.metered_export_kwh * rules.feed_in_tariff
                - settlement.metered_import_kwh * rules.retail_tariff
            ).quantize(CENT),
        )
    grouped = (
        entries.filter(interval__start__gte=start, interval__start__lt=end)
        .values("interval_id", "interval__start", "kind", "transaction__kind")
        .annotate(amount=Sum("amount"), energy=Sum("energy_kwh"))
        .order_by()
    )
    for group in grouped:
        row = rows.get(group["interval_id"])
        if row is None:  # money without a settlement row (e.g. a manual posting)
            row = rows[group["interval_id"]] = StatementRow(
                interval_start=group["interval__start"].astimezone(zone)
            )
        amount, kind = money(group["amount"]), group["kind"]
        if group["transaction__kind"] == TransactionKind.ADJUSTMENT:
            row.adjustments += amount
        elif kind in _PURCHASES:
            row.purchases += amount
        elif kind in _SALES:
            row.sales += amount
        elif kind == EntryKind.FEE:
            row.fees += amount
        elif kind == EntryKind.NETWORK_CHARGE:
            row.network_charges += amount
        elif kind == EntryKind.LOSSES:
            row.losses += amount
            row.losses_kwh += (group["energy"] or ZERO).quantize(KWH)
        elif kind in _IMBALANCE:
            row.imbalance += amount
        row.total += amount
    ordered = sorted(rows.values(), key=lambda row: row.interval_start)
    balance = opening
    for row in ordered:
        balance += row.total
        row.balance = balance
    return Statement(membership, community, start, end, opening, ordered)


def statement_months(*, membership: Membership) -> list[tuple[int, int]]:
    """(year, month) of every month in which the member has a settled interval, newest first."""
    zone = zoneinfo.ZoneInfo(membership.community.timezone)
    starts = Settlement.objects.filter(membership=membership).values_list(
        "interval__start", flat=True
    )
    months = {(s.astimezone(zone).year, s.astimezone(zone).month) for s in starts}
    return sorted(months, reverse=True)


def interval_settlements(*, interval: Interval) -> QuerySet[Settlement]:
    return Settlement.objects.filter(interval=interval).select_related("membership")


def reading_imports_visible(user: User) -> QuerySet[ReadingImport]:
    """Readings imports of the communities the user manages (all for a superuser), newest first."""
    return ReadingImport.objects.filter(
        community__in=permissions.managed_communities(user)
    ).select_related("community", "submitted_by")
