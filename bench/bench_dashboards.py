"""Dashboard benchmark: each regulator dashboard over a year of quarter-hours for 1,000 members.

Usage: ``python bench/bench_dashboards.py [--trades 8] [--no-write]``. Seeds a scratch database
(SQLite under PEERGRID_VAR_DIR, or ``<name>_bench_dashboards`` on PostgreSQL when DATABASE_URL is
set) with ``marketplace.oversight.seed.seed_year``, renders every dashboard through the test
client for the whole year (daily points) and for the default week (every interval), best of 3,
and replaces the "## Dashboards — <backend>" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

from bench.common import (  # noqa: E402
    RESULTS,
    machine,
    progress,
    replace_section,
    scratch_database,
    use_redis_prefix,
)

HEADING = "## Dashboards"
MEMBERS = 1000
START = datetime(2025, 1, 1, tzinfo=UTC)


def timed(client: Any, url: str, query: dict[str, str]) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    best = float("inf")
    queries = 0
    for _ in range(3):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url, query)
            best = min(best, time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
        queries = len(captured)
    return best, queries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=8, help="P2P trades per interval")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    use_redis_prefix("dash")
    django.setup()
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from accounts.models import User
    from marketplace.oversight.seed import seed_year
    from marketplace.oversight.views import DASHBOARDS

    rows: list[tuple[str, str, float, int]] = []
    about = machine()
    with scratch_database("dash") as (backend, _):
        progress(f"seeding a year for {MEMBERS} members, {args.trades} P2P trades/interval ...")
        started = time.perf_counter()
        _, size = seed_year(
            slug="bench", start=START, members=MEMBERS, trades_per_interval=args.trades
        )
        seed_s = time.perf_counter() - started
        progress(f"  {size.intervals:,} intervals, {size.trades:,} trades in {seed_s:.1f} s")
        if backend == "PostgreSQL":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        user = User.objects.create_user("bench@regulator.test", "pw", is_regulator=True)
        client = Client()
        client.force_login(user)
        ranges = {
            "year (365 daily points)": {"date_from": "2025-01-01", "date_to": "2025-12-31"},
            "week (672 intervals)": {"date_from": "2025-06-02", "date_to": "2025-06-08"},
        }
        for label, query in ranges.items():
            for community in ("", "bench"):
                scoped = {**query, "community": community} if community else query
                who = "one community" if community else "all communities"
                for name in DASHBOARDS:
                    url = reverse("oversight:dashboard", args=[name])
                    seconds, queries = timed(client, url, scoped)
                    rows.append((f"{label}, {who}", name, seconds, queries))
                    progress(f"  {label}, {who}, {name}: {seconds:.3f} s, {queries} queries")
    if not args.no_write:
        write_results(backend, about, size, seed_s, rows)
        progress(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def write_results(backend: str, about: str, size: Any, seed_s: float, rows: list[Any]) -> None:
    lines = [
        HEADING,
        "",
        "`python bench/bench_dashboards.py` (regulator dashboards over "
        "marketplace/oversight/selectors/). Best of 3 full page renders through the test "
        "client (session, selectors, SVG charts, template); seconds.",
        "",
        f"- machine: {about}",
        f"- data: 1 community, {size.members:,} members, {size.intervals:,} quarter-hour "
        f"intervals (a year), {size.trades:,} trades (P2P plus one grid trade per interval), "
        f"{size.grid_checks:,} grid check results; seeded in {seed_s:.1f} s",
        "",
        "| range | dashboard | seconds | queries |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r} | {name} | {s:.3f} | {q} |" for r, name, s, q in rows]
    section = "\n".join(lines) + "\n"
    heading = f"{HEADING} — {backend}"
    section = section.replace(HEADING, heading, 1)
    replace_section(heading, section)


if __name__ == "__main__":
    sys.exit(main())
