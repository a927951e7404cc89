"""Statement pages: a member's month, as a page and as CSV. Thin: the selectors do the work."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from accounts.models import Membership, User
from config.csv_export import csv_writer
from config.errors import ApplicationError
from marketplace.ledger.selectors import (
    Statement,
    ledger_last_verification,
    member_balance,
    member_statement,
    statement_membership,
    statement_months,
)
from marketplace.models import Community

CSV_HEADER = (
    "interval_start", "bought_kwh", "sold_kwh", "purchases", "sales", "fees", "network_charges",
    "losses_kwh", "losses", "imported_kwh",
    "exported_kwh", "imbalance_kwh", "imbalance", "adjustments", "estimated", "total", "balance",
    "grid_only",
)  # fmt: skip


def _membership(request: HttpRequest, community: Community) -> Membership:
    assert isinstance(request.user, User)  # login_required
    try:
        return statement_membership(
            viewer=request.user, community=community, pseudonym=request.GET.get("member") or None
        )
    except ApplicationError as exc:
        raise Http404(exc.message) from exc


def _statement(request: HttpRequest, slug: str, year: int, month: int) -> Statement:
    community = get_object_or_404(Community, slug=slug)
    membership = _membership(request, community)
    try:
        return member_statement(membership=membership, year=year, month=month)
    except ApplicationError as exc:
        raise Http404(exc.message) from exc


@login_required
@require_GET
def statement_index(request: HttpRequest, slug: str) -> HttpResponse:
    community = get_object_or_404(Community, slug=slug)
    membership = _membership(request, community)
    return render(
        request,
        "ledger/statement_index.html",
        {
            "community": community,
            "membership": membership,
            "balance": member_balance(membership=membership),
            "months": statement_months(membership=membership),
            "verification": ledger_last_verification(community=community),
            "member_query": request.GET.get("member", ""),
        },
    )


@login_required
@require_GET
def statement_page(request: HttpRequest, slug: str, year: int, month: int) -> HttpResponse:
    statement = _statement(request, slug, year, month)
    return render(
        request,
        "ledger/statement.html",
        {
            "statement": statement,
            "totals": statement.totals(),
            "year": year,
            "month": month,
            "member_query": request.GET.get("member", ""),
        },
    )


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)


@login_required
@require_GET
def statement_csv(request: HttpRequest, slug: str, year: int, month: int) -> HttpResponse:
    statement = _statement(request, slug, year, month)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"statement-{slug}-{statement.membership.pseudonym}-{year:04d}-{month:02d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv_writer(response)
    writer.writerow(CSV_HEADER)
    for row in statement.rows:
        writer.writerow(
            [row.interval_start.isoformat()]
            + [_cell(getattr(row, column)) for column in CSV_HEADER[1:]]
        )
    writer.writerow([])
    writer.writerow(["opening_balance", _cell(statement.opening_balance)])
    writer.writerow(["closing_balance", _cell(statement.closing_balance)])
    writer.writerow(["grid_only_total", _cell(statement.grid_only_total)])
    writer.writerow(["savings_vs_grid", _cell(statement.savings)])
    return response
