"""API load benchmark: order posts and board reads per second with p50/p99, 8 and 32 clients.

Run ``python bench/bench_api.py`` from the project root with DATABASE_URL (PostgreSQL) and
REDIS_URL set, as in CI, and ``wrk`` installed (``apt-get install wrk``); without them it says so
and skips. On DATABASE_URL's server it creates a database of its own
(``<db>_bench_api_<run>``, dropped at the end), on Redis it writes only keys under its own
prefix (deleted at the end), seeds a community of 64 members through the real services, starts
gunicorn as the deploy runs it (``deploy/gunicorn.conf.py``; database connections kept open)
with ``bench/api_settings.py``, and drives it with wrk on loopback:

* ``post``: ``POST /api/v1/postings/`` with a bearer token and an ``Idempotency-Key``, spread
  over the members and the open intervals (the full path: scopes, throttles, idempotency,
  capacity check, locks);
* ``post1``: the same, all into one interval (the posts share the interval's lock and only
  queue on their own meter point's, so this shows whether one busy interval slows posting);
* ``board``: ``GET /api/v1/board/`` of one interval with 40 open postings;
* ``bare``: a bare DRF create (DRF's TokenAuthentication, a ModelSerializer, one insert) of
  the same row, the baseline for what DRF itself costs on this machine.

``post`` and ``bare`` run interleaved, ``BENCH_ROUNDS`` (3) rounds per client count of
``BENCH_DURATION_S`` (10) s each, alternating which goes first, so a change in the machine's
load hits both; the ratio is taken per round and reported as the median and its range. Then a
profile of the post in this process attributes its time to authentication, the throttle, the
idempotency record, the meter point lookup, the service and the serializers.

It writes the "## API load" section of bench/RESULTS.md (replacing an older one).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    RUN_ID,
    delete_redis_prefix,
    load_now,
    replace_section,
    skip_unless,
    use_redis_prefix,
)

SECTION = "## API load"
PORT = int(os.environ.get("BENCH_PORT", "8765"))
DURATION_S = int(os.environ.get("BENCH_DURATION_S", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CLIENTS = (8, 32)
MEMBERS = 64
BOARD_POSTINGS = 40
# The deploy's gunicorn settings (workers from PEERGRID_WEB_WORKERS or the cores, as deployed).
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
SCENARIOS = ("bare", "post", "post1", "board")

os.environ.update(
    DJANGO_SETTINGS_MODULE="bench.api_settings",
    PEERGRID_VAR_DIR=str(Path(os.environ.get("TMPDIR", "/tmp")) / "peergrid-bench-api"),  # noqa: S108
    # Throttling stays on (its cache round trips are part of the cost) but never triggers.
    API_RATE_MEMBER="100000000/min",
    API_RATE_IP="100000000/min",
)


def own_database(server_url: str, create: bool) -> str:
    """Create (or drop) this run's database on DATABASE_URL's server; returns its URL."""
    import psycopg

    parts = urllib.parse.urlsplit(server_url)
    name = f"{parts.path.lstrip('/') or 'postgres'}_bench_api_{RUN_ID}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')
        else:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def seed() -> dict[str, Any]:
    """Members, tokens and open intervals through the real services; 40 postings on a board."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from accounts.models import User
    from accounts.services import (
        api_token_create,
        membership_approve,
        membership_request,
        meter_point_approve,
        meter_point_register,
    )
    from marketplace.models import Interval
    from marketplace.services.communities import community_create
    from marketplace.services.intervals import intervals_open_horizon
    from marketplace.services.postings import posting_create

    call_command("migrate", verbosity=0)
    now = timezone.now()
    community = community_create(
        name="Bench", slug="bench", opening_horizon_hours=48, max_connection_kw=Decimal("9999")
    )
    intervals_open_horizon(community=community, now=now)
    intervals = list(
        Interval.objects.filter(
            community=community, gate_closure_at__gt=now + timedelta(minutes=20)
        )
        .order_by("start")
        .values_list("pk", flat=True)
    )
    members = []
    for i in range(MEMBERS):
        user = User.objects.create_user(f"bench{i}@bench.test", None)
        membership = membership_approve(
            membership=membership_request(user=user, community=community), decided_by=None
        )
        meter_point = meter_point_register(
            membership=membership, label="home", import_capacity_kw=Decimal("9999"),
            export_capacity_kw=Decimal("9999"),
        )  # fmt: skip
        meter_point = meter_point_approve(meter_point=meter_point, approved_by=None)
        _, token = api_token_create(user=user, name="bench", scopes=["read", "trade"])
        drf_key = Token.objects.create(user=user).key
        members.append((token, meter_point.pk, membership.pk, drf_key, membership, meter_point))
    board_interval = Interval.objects.get(pk=intervals[0])
    for i in range(BOARD_POSTINGS):
        _, _, _, _, membership, meter_point = members[i % MEMBERS]
        posting_create(
            membership=membership, meter_point=meter_point, interval=board_interval,
            side="sell" if i % 2 else "buy", quantity_kwh=Decimal("1.000"),
            limit_price_per_kwh=Decimal("0.1000") + Decimal(i) / 1000,
        )  # fmt: skip
    return {
        "members": [m[:4] for m in members],
        "board_interval": intervals[0],
        "post_intervals": intervals[1:],
    }


LUA = r"""
local members = %(members)s
local intervals = %(intervals)s
local mode = "%(mode)s"
local run = "%(run)s"
local board_interval = %(board_interval)d
local counter = 0
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function request()
  counter = counter + 1
  local n = counter + (tid or 0) * 100003
  -- Consecutive requests go to different intervals; all posts into one interval (where they
  -- share its lock) are measured on their own (mode "post1").
  local m = members[((n * 7) %% #members) + 1]
  local iv = intervals[(n %% #intervals) + 1]
  if mode == "post1" then iv = intervals[1] end
  local side = (n %% 2 == 0) and "sell" or "buy"
  if mode == "board" then
    return wrk.format("GET", "/api/v1/board/?community=bench&interval=" .. board_interval,
      {["Authorization"] = "Bearer " .. m[1]})
  end
  if mode == "bare" then
    local body = string.format('{"interval":%%d,"membership":%%d,"meter_point":%%d,' ..
      '"side":"%%s","quantity_kwh":"0.010","limit_price_per_kwh":"0.1000"}', iv, m[3], m[2], side)
    return wrk.format("POST", "/bench/bare-postings/",
      {["Authorization"] = "Token " .. m[4], ["Content-Type"] = "application/json"}, body)
  end
  local body = string.format('{"interval":%%d,"meter_point":%%d,"side":"%%s",' ..
    '"quantity_kwh":"0.010","limit_price_per_kwh":"0.1000"}', iv, m[2], side)
  return wrk.format("POST", "/api/v1/postings/", {
    ["Authorization"] = "Bearer " .. m[1], ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("%%s-%%d-%%d", run, tid or 0, counter)}, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, ' ..
    '"p99_us": %%d, "connect": %%d, "read": %%d, "write": %%d, "status": %%d, ' ..
    '"timeout": %%d}\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def lua_table(rows: list[Any]) -> str:
    def cell(value: Any) -> str:
        return f'"{value}"' if isinstance(value, str) else str(value)

    return (
        "{"
        + ", ".join(
            "{" + ", ".join(cell(v) for v in row) + "}" if isinstance(row, tuple) else cell(row)
            for row in rows
        )
        + "}"
    )


def wrk(mode: str, clients: int, seconds: int, data: dict[str, Any]) -> dict[str, Any]:
    script = Path(os.environ["PEERGRID_VAR_DIR"]) / f"wrk-{mode}.lua"
    script.write_text(
        LUA
        % {
            "members": lua_table(data["members"]),
            "intervals": lua_table(data["post_intervals"]),
            "mode": mode,
            "run": uuid.uuid4().hex[:12],
            "board_interval": data["board_interval"],
        }
    )
    command = ["wrk", "-t", "2", "-c", str(clients), "-d", f"{seconds}s", "--timeout", "10s",
               "-s", str(script), f"http://127.0.0.1:{PORT}"]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^RESULT (.*)$", output, re.M)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    return result


def server_cpu_s(master: int) -> float:
    """CPU seconds used so far by gunicorn's master and workers (user + system).

    On a shared machine requests per second depend on what else runs; CPU per request of the
    server itself does not, so the table shows both.
    """
    tick = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    total = 0.0
    for pid in [str(master), *children]:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def gunicorn_settings() -> dict[str, Any]:
    """The deploy's gunicorn settings as this machine's environment makes them."""
    import runpy

    return runpy.run_path(str(GUNICORN_CONF))


def start_gunicorn() -> subprocess.Popen[bytes]:
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"), "config.wsgi:application",
        "--config", str(GUNICORN_CONF), "--bind", f"127.0.0.1:{PORT}", "--log-level", "warning",
    ]  # fmt: skip
    log = (Path(os.environ["PEERGRID_VAR_DIR"]) / "gunicorn.log").open("wb")
    server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=2):
                return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise RuntimeError("gunicorn did not come up")


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = re.search(r"Model name:\s*(.+)", lscpu).group(1).strip()  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1]
    server = gunicorn_settings()
    return (
        f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, Python "
        f"{platform.python_version()}, PostgreSQL {pg}, Redis (cache), gunicorn as deployed "
        f"(`deploy/gunicorn.conf.py`: {server['workers']} {server['worker_class']} workers), "
        f"wrk {wrk_version} (2 threads) on 127.0.0.1; "
        f"load average before the run {os.getloadavg()[0]:.1f} (other work on the machine "
        "shares the 2 cores, so compare rows of one run, not runs)"
    )


def breakdown(data: dict[str, Any], calls: int = 300) -> dict[str, float]:
    """CPU ms per call, in this process (so independent of the machine's other load): the
    posting service alone, the whole API post and the bare create, each through Django."""
    from django.test import Client

    from accounts.models import MeterPoint
    from marketplace.models import Interval
    from marketplace.services.postings import posting_create

    token, mp_id, membership_id, drf_key = data["members"][-1]
    meter_point = MeterPoint.objects.select_related("membership").get(pk=mp_id)
    intervals = list(Interval.objects.filter(pk__in=data["post_intervals"]))
    client = Client(HTTP_HOST="127.0.0.1")

    def body(i: int, **extra: Any) -> str:
        return json.dumps({"interval": intervals[i % len(intervals)].pk, "meter_point": mp_id,
                           "side": "sell", "quantity_kwh": "0.010",
                           "limit_price_per_kwh": "0.1000", **extra})  # fmt: skip

    def service(i: int) -> None:
        posting_create(
            membership=meter_point.membership, meter_point=meter_point,
            interval=intervals[i % len(intervals)], side="sell", quantity_kwh="0.010",
            limit_price_per_kwh="0.1000",
        )  # fmt: skip

    def api(i: int) -> None:
        client.post("/api/v1/postings/", body(i), content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {token}",
                    HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)  # fmt: skip

    def bare(i: int) -> None:
        client.post("/bench/bare-postings/", body(i, membership=membership_id),
                    content_type="application/json",
                    HTTP_AUTHORIZATION=f"Token {drf_key}")  # fmt: skip

    calls_by_name = {"service": service, "api": api, "bare": bare}
    for call in calls_by_name.values():
        for i in range(20):
            call(i)
    out = dict.fromkeys(calls_by_name, float("inf"))
    # Best of three, the three interleaved: other processes only ever add time, and a spell of
    # load then hits every one of them rather than whichever happened to run in it.
    for _ in range(3):
        for name, call in calls_by_name.items():
            start = time.process_time()
            for i in range(calls):
                call(i)
            out[name] = min(out[name], (time.process_time() - start) / calls * 1e3)
    return out


# Where the post's time goes: (label, file fragment, function name); cumulative time per call.
# Each names the function the post runs now; `profile_post` refuses a row that matched nothing,
# so a renamed or rerouted step cannot read 0 ms unnoticed.
PROFILED = (
    ("authentication (bearer token)", "accounts/authentication.py", "authenticate"),
    ("throttle (role and IP buckets)", "marketplace/api/throttling.py", "allow_request"),
    ("idempotency: request fingerprint", "marketplace/api/idempotency.py", "_fingerprint"),
    ("idempotency: claim (insert)", "services/idempotency.py", "idempotency_claim"),
    ("idempotency: answer (update)", "services/idempotency.py", "idempotency_complete"),
    ("body validation (PostingCreateSerializer)", "rest_framework/serializers.py", "is_valid"),
    ("posting service (posting_create_by_owner)", "services/postings.py",
     "posting_create_by_owner"),
    ("service: interval share lock", "marketplace/lock_objects.py", "share_lock_interval"),
    ("service: meter point lookup (locked, owner checked)", "marketplace/lock_objects.py",
     "lock_meter_point_with_membership"),
    ("service: capacity check", "services/board_checks.py", "check_capacity"),
    ("service: insert (Posting.objects.create)", "django/db/models/query.py", "create"),
    ("answer (posting_data)", "marketplace/api/serializers.py", "posting_data"),
)  # fmt: skip


def profile_post(data: dict[str, Any], calls: int = 300) -> tuple[float, list[tuple[str, float]]]:
    """cProfile of `calls` API posts through the test client: total and per-part ms per call.

    Profiling slows everything by a similar factor, so the shares say more than the figures.
    Raises if a part of ``PROFILED`` was never called (call it with a few calls first, before
    anything long, to find that out early).
    """
    import cProfile
    import pstats

    from django.test import Client

    from marketplace.models import Interval

    token, mp_id, _, _ = data["members"][-2]
    intervals = list(Interval.objects.filter(pk__in=data["post_intervals"]))
    client = Client(HTTP_HOST="127.0.0.1")

    def post(i: int) -> None:
        body = json.dumps({"interval": intervals[i % len(intervals)].pk, "meter_point": mp_id,
                           "side": "buy", "quantity_kwh": "0.010",
                           "limit_price_per_kwh": "0.1000"})  # fmt: skip
        response = client.post("/api/v1/postings/", body, content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {token}",
                               HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)  # fmt: skip
        assert response.status_code == 201, response.content

    for i in range(min(calls, 20)):
        post(i)
    # CPU time, like the total it is divided by: with the default wall clock, a busy machine
    # charged its other processes to whatever the post was waiting in (shares above 100%).
    profiler = cProfile.Profile(time.process_time)
    started = time.process_time()
    profiler.enable()
    for i in range(calls):
        post(i)
    profiler.disable()
    total = (time.process_time() - started) / calls * 1e3
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    parts, stale = [], []
    for label, fragment, function in PROFILED:
        entries = [
            entry for (file, _, name), entry in stats.items()
            if name == function and fragment in file
        ]  # fmt: skip
        if not entries:
            stale.append(f"{fragment}:{function}")
        parts.append((label, sum(entry[3] for entry in entries) / calls * 1e3))
    if stale:
        raise RuntimeError(f"PROFILED names functions the post no longer calls: {stale}")
    return total, parts


def write_section(
    results: dict[tuple[str, int], list[dict[str, Any]]], about: str, cpu: dict[str, float],
    profile: tuple[float, list[tuple[str, float]]],
) -> str:  # fmt: skip
    import statistics

    lines = [
        SECTION,
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python bench/bench_api.py`: {about}. "
        f"Order post and bare create interleaved, {ROUNDS} rounds per client count of "
        f"{DURATION_S} s each after a 3 s warm-up (the first of each round alternating); "
        "database connections kept open (`CONN_MAX_AGE`). The post path is the whole API: "
        "bearer token, scopes, role and IP throttles, an `Idempotency-Key` per request, the "
        "service's locks and capacity check. The bare create is DRF's TokenAuthentication, a "
        "ModelSerializer and one insert of the same row.",
        "",
        "| clients | round | bare req/s | post req/s | post / bare | post p50 ms | post p99 ms "
        "| errors | server CPU ms/req post (bare) | load |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    verdicts = []
    for clients in CLIENTS:
        posts, bares = results[("post", clients)], results[("bare", clients)]
        ratios = [p["rps"] / b["rps"] for p, b in zip(posts, bares, strict=True)]
        for n, (p, b, ratio) in enumerate(zip(posts, bares, ratios, strict=True), 1):
            lines.append(
                f"| {clients} | {n} | {b['rps']:.0f} | {p['rps']:.0f} | {ratio:.2f} | "
                f"{p['p50_us'] / 1000:.1f} | {p['p99_us'] / 1000:.1f} | "
                f"{p['errors'] + b['errors']} | {p['cpu_ms']:.1f} ({b['cpu_ms']:.1f}) | "
                f"{p['load']} |"
            )
        median = statistics.median(ratios)
        worst_p99 = max(p["p99_us"] for p in posts) / 1000
        errors = sum(r["errors"] for r in posts + bares)
        verdicts.append((clients, median, min(ratios), max(ratios), worst_p99, errors))
    lines += ["", "| scenario | clients | req/s | p50 ms | p99 ms | errors | load |",
              "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for mode, name in (("post1", "order post, all into one interval"),
                       ("board", "board read (`GET /api/v1/board/`, 40 postings)")):  # fmt: skip
        for clients in CLIENTS:
            r = results[(mode, clients)][0]
            lines.append(
                f"| {name} | {clients} | {r['rps']:.0f} | {r['p50_us'] / 1000:.1f} | "
                f"{r['p99_us'] / 1000:.1f} | {r['errors']} | {r['load']} |"
            )
    lines.append("")
    for clients, median, low, high, worst_p99, errors in verdicts:
        met = median >= 0.8 and errors == 0 and (clients != 8 or worst_p99 < 150)
        lines.append(
            f"- {clients} clients: post / bare median **{median:.2f}** (range {low:.2f}-"
            f"{high:.2f}), worst post p99 {worst_p99:.0f} ms, {errors} errors: target (median "
            f">= 0.8, 0 errors{', p99 < 150 ms' if clients == 8 else ''}) "
            f"{'met' if met else '**not met**'}."
        )
    total, parts = profile
    lines += [
        "",
        "CPU per call in one process (best of three, so other load only adds): the posting "
        f"service alone {cpu['service']:.1f} ms, the whole API post {cpu['api']:.1f} ms, the "
        f"bare create {cpu['bare']:.1f} ms; 0.8 of the baseline needs the post at "
        f"{cpu['bare'] / 0.8:.1f} ms or less.",
        "",
        f"Profile of the post (cProfile, {total:.1f} ms per call with the profiler's overhead; "
        "cumulative time per call, parts overlap where one calls another):",
        "",
        "| part | ms per call | share |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {label} | {ms:.2f} | {ms / total:.0%} |" for label, ms in parts]
    lines.append("")
    section = "\n".join(lines)
    replace_section(SECTION, section)
    return section


def main() -> int:
    skip_unless(postgres=True, redis=True, programs=("wrk",))
    Path(os.environ["PEERGRID_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
    server_url = os.environ["DATABASE_URL"]
    os.environ["DATABASE_URL"] = own_database(server_url, create=True)
    use_redis_prefix("api")  # before settings are read, so gunicorn inherits it too
    print(f"created {urllib.parse.urlsplit(os.environ['DATABASE_URL']).path[1:]}; seeding ...",
          flush=True)  # fmt: skip
    server = None
    try:
        data = seed()
        profile_post(data, calls=5)  # a stale PROFILED fails here, not after the load runs
        about = machine()
        server = start_gunicorn()
        results: dict[tuple[str, int], list[dict[str, Any]]] = {}

        def run(mode: str, clients: int) -> None:
            assert server is not None
            load = load_now()
            cpu_before = server_cpu_s(server.pid)
            result = wrk(mode, clients, DURATION_S, data)
            result["cpu_ms"] = (server_cpu_s(server.pid) - cpu_before) / result["requests"] * 1e3
            result["load"] = load
            results.setdefault((mode, clients), []).append(result)
            print(f"{mode:5} {clients:2} clients: {result['rps']:7.1f} req/s  "
                  f"p50 {result['p50_us'] / 1000:6.1f} ms  p99 {result['p99_us'] / 1000:6.1f} ms"
                  f"  errors {result['errors']}  server CPU {result['cpu_ms']:.1f} ms/req  "
                  f"({load})", flush=True)  # fmt: skip

        for mode in SCENARIOS:
            wrk(mode, 8, 3, data)  # warm every worker's connections and code paths
        for clients in CLIENTS:
            for round_number in range(ROUNDS):
                pair = ("bare", "post") if round_number % 2 == 0 else ("post", "bare")
                for mode in pair:
                    run(mode, clients)
            run("post1", clients)
            run("board", clients)
        server.terminate()
        server.wait(timeout=30)
        cpu = breakdown(data)
        profile = profile_post(data)
        print(write_section(results, about, cpu, profile))
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
        from django.db import connections

        connections.close_all()
        delete_redis_prefix()
        own_database(server_url, create=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
