"""Project-level pages: home, the landing after sign-in, the glossary, the 403 page, health."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts import permissions
from accounts.selectors import user_trades_anywhere
from config.celery import app as celery_app


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    """Where a user starts after signing in: the place their role works in.

    Regulators go to the dashboards, managers and operators without a membership of their own
    to the admin pages, everyone else to their dashboard (which explains a pending application).
    """
    user = request.user
    if not user.is_authenticated:
        return redirect("accounts:login")
    trades = user_trades_anywhere(user=user)
    if permissions.is_regulator(user):
        return redirect("oversight:index")
    if not trades and (permissions.is_superuser(user) or permissions.manages_any_community(user)):
        return redirect("admin:index")
    return redirect("marketplace:dashboard_home")


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on pages without an icon link (the API's JSON)."""
    return redirect(static("favicon.svg"))


def glossary(request: HttpRequest) -> HttpResponse:
    return render(request, "glossary.html")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The styled 403: what was refused and why, and where the user can go instead."""
    reason = str(exception) if exception is not None and str(exception) else ""
    return render(request, "403.html", {"reason": reason}, status=403)


def _database_reachable() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"; the reason is reported
        return False, type(exc).__name__
    return True, connection.vendor


def _broker_reachable() -> tuple[bool, str]:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            transport = conn.transport_cls
    except Exception as exc:  # as above: report, never raise from a health check
        return False, type(exc).__name__
    return True, str(transport)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database and broker reachability, 503 when either is down (for load balancers)."""
    db_ok, db_detail = _database_reachable()
    broker_ok, broker_detail = _broker_reachable()
    healthy = db_ok and broker_ok
    return JsonResponse(
        {
            "status": "ok" if healthy else "unavailable",
            "database": {"ok": db_ok, "detail": db_detail},
            "broker": {"ok": broker_ok, "detail": broker_detail},
        },
        status=200 if healthy else 503,
    )
