"""Reads behind the network dashboard: grid checks, violations, curtailment reasons."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Count, ExpressionWrapper, F, FloatField, Max, Min, Q, Sum

from grid.models import GridCheckResult
from marketplace.models import Interval, Trade
from marketplace.oversight.selectors.common import Scope, Table, bucket_of, dec, in_scope


def network(scope: Scope) -> Table:
    """Per bucket: checks, infeasible ones, curtailed energy, losses, voltage and loading peaks."""
    hours = ExpressionWrapper(
        F("interval__rules__interval_minutes") / 60.0, output_field=FloatField()
    )
    rows = (
        GridCheckResult.objects.filter(in_scope(scope, "interval__"))
        .annotate(bucket=bucket_of(scope, "interval__start"))
        .values("bucket")
        .annotate(
            checks=Count("pk"),
            infeasible=Count("pk", filter=Q(feasible=False)),
            with_violations=Count("pk", filter=~Q(violations=[])),
            curtailed=Sum("curtailed_kwh"),
            losses=Sum(ExpressionWrapper(F("losses_kw") * hours, output_field=FloatField())),
            vmin=Min("min_vm_pu"),
            vmax=Max("max_vm_pu"),
            line=Max("max_line_loading_percent"),
            trafo=Max("max_trafo_loading_percent"),
        )
        .order_by("bucket")
    )

    def rounded(value: float | None, places: int) -> float | None:
        return None if value is None else round(float(value), places)

    return Table(
        (
            scope.bucket_label,
            "grid_checks",
            "checks_with_violations",
            "infeasible_checks",
            "curtailed_kwh",
            "losses_kwh",
            "min_voltage_pu",
            "max_voltage_pu",
            "max_line_loading_percent",
            "max_trafo_loading_percent",
        ),
        [
            (
                row["bucket"],
                row["checks"],
                row["with_violations"],
                row["infeasible"],
                dec(row["curtailed"]),
                rounded(row["losses"], 3),
                rounded(row["vmin"], 4),
                rounded(row["vmax"], 4),
                rounded(row["line"], 1),
                rounded(row["trafo"], 1),
            )
            for row in rows
        ],
    )


def violations_by_kind(scope: Scope) -> Table:
    """Violations found, by kind and by whether the trades caused them (unnested in SQL)."""
    result = GridCheckResult._meta.db_table
    interval = Interval._meta.db_table
    where = ['i."start" >= %s', 'i."start" < %s']
    params: list[Any] = [scope.start, scope.end]
    if scope.community is not None:
        where.append('i."community_id" = %s')
        params.append(scope.community.pk)
    # JSON arrays are unnested by the database: each backend spells it its own way.
    if connection.vendor == "postgresql":
        elements = "CROSS JOIN LATERAL jsonb_array_elements(g.violations) AS v(value)"
        kind = "v.value->>'kind'"
        caused = "COALESCE((v.value->>'caused_by_trades')::boolean, false)"
    else:
        elements = ", json_each(g.violations) AS v"
        kind = "json_extract(v.value, '$.kind')"
        caused = "COALESCE(json_extract(v.value, '$.caused_by_trades'), 0)"
    sql = (
        f"SELECT {kind} AS kind, {caused} AS caused, COUNT(*) "  # noqa: S608 - fixed fragments
        f'FROM "{result}" g JOIN "{interval}" i ON i.id = g.interval_id {elements} '
        f"WHERE {' AND '.join(where)} GROUP BY 1, 2 ORDER BY 3 DESC, 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    return Table(
        ("violation_kind", "caused_by_trades", "count"),
        [(k, bool(c), int(n)) for k, c, n in fetched],
    )


def curtailment_reasons(scope: Scope, limit: int = 20) -> Table:
    """Energy curtailed and why (the reason each curtailed trade carries), largest first."""
    rows = (
        Trade.objects.filter(in_scope(scope, "interval__"), curtailed_kwh__gt=0)
        .values("curtailment_reason")
        .annotate(kwh=Sum("curtailed_kwh"), trades=Count("pk"))
        .order_by("-kwh", "curtailment_reason")[:limit]
    )
    return Table(
        ("reason", "curtailed_kwh", "trades"),
        [
            (r["curtailment_reason"] or "(no reason given)", dec(r["kwh"]), r["trades"])
            for r in rows
        ],
    )
