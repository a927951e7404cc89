"""Benchmark of the grid check: time and power flows for 100 to 10,000 prosumers' trades.

Run ``python bench/bench_grid_check.py`` from the project root; it prints progress and writes the
"## Grid check" section of bench/RESULTS.md (replacing an older one, leaving other sections).
"""

from __future__ import annotations

import copy
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pandapower as pp  # noqa: E402
import simbench  # noqa: E402

from bench.common import RESULTS, replace_section  # noqa: E402
from grid.check import CurtailmentPolicy, ScheduledTrade, grid_check  # noqa: E402
from grid.networks import connection_buses, reference_network  # noqa: E402

SECTION = "## Grid check"
NETWORKS = ("cigre_lv", "1-LV-urban6--0-sw")
SIZES = (100, 1_000, 10_000)
REPEATS = 3
T0 = datetime(2025, 6, 21, 10, 0, tzinfo=UTC)
QUARTER = Decimal("0.25")


def schedule(buses: list[int], prosumers: int, heavy: bool) -> list[ScheduledTrade]:
    """One trade per prosumer, prosumers placed round-robin on the connection buses.

    Light: neighbours trade with each other and every fifth prosumer with the outside grid, about
    0.5 kWh per bus in total, spread over the bus's prosumers. Heavy: a midday PV surplus, every
    prosumer exports to the outside grid or a peer, 40 kWh per quarter-hour per bus (160 kW), far
    beyond what LV feeders take, so curtailment has to work.
    """
    rng = np.random.default_rng(42)
    per_bus = max(1.0, prosumers / len(buses))
    per_bus_kwh = 40.0 if heavy else 0.5
    trades = []
    for i in range(prosumers):
        bus = buses[i % len(buses)]
        other = buses[(i * 7 + 3) % len(buses)]
        kwh = Decimal(f"{per_bus_kwh / per_bus * rng.uniform(0.5, 1.5):.3f}")
        submitted = T0 - timedelta(seconds=int(rng.integers(0, 3600)))
        if heavy:
            buyer = None if i % 3 else other
            trades.append(ScheduledTrade(f"p{i}", bus, buyer, kwh, submitted))
        elif i % 5 == 0:
            trades.append(ScheduledTrade(f"p{i}", None, bus, kwh, submitted))
        else:
            trades.append(ScheduledTrade(f"p{i}", bus, other, kwh, submitted))
    return trades


def power_flow_variants(name: str) -> list[tuple[str, float]]:
    """Milliseconds per pandapower runpp on the net, cold, warm-started, and recycled."""
    net = reference_network(name)
    pp.create_loads(net, connection_buses(net), p_mw=0.001)
    timings = []
    for label, kwargs in (
        ("runpp (init auto)", {}),
        ('runpp init="results"', {"init": "results"}),
        ("runpp recycle bus_pq", {"recycle": {"bus_pq": True, "trafo": False, "gen": False}}),
    ):
        pp.runpp(net, numba=False)
        samples = []
        for k in range(20):
            net.load.loc[net.load.index[-1], "p_mw"] = 0.001 * (1 + k % 3)
            started = time.perf_counter()
            pp.runpp(net, numba=False, **kwargs)
            samples.append(time.perf_counter() - started)
        timings.append((f"{label} on {name}", statistics.median(samples) * 1000.0))
    return timings


def machine() -> list[str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    uname = subprocess.run(["uname", "-srvm"], capture_output=True, text=True).stdout.strip()
    return [
        f"- Machine: `{uname}`, CPU {cpu}, {os.cpu_count()} CPUs",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Python {platform.python_version()}, pandapower {pp.__version__}, simbench "
        f"{simbench.__version__}, numpy {np.__version__}; no numba (pandapower's pure-Python "
        "paths), no lightsim2grid",
    ]


def main() -> None:
    rows = []
    for name in NETWORKS:
        print(f"loading {name} ...", flush=True)
        net = reference_network(name)
        buses = connection_buses(net)
        for heavy in (False, True):
            for size in SIZES:
                trades = schedule(buses, size, heavy)
                for policy in CurtailmentPolicy:
                    if not heavy and policy is CurtailmentPolicy.LAST_ON_FIRST_OFF:
                        continue  # nothing to curtail: the policy plays no part
                    times = []
                    outcome = None
                    for _ in range(REPEATS):
                        outcome = grid_check(
                            copy.deepcopy(net), trades, interval_hours=QUARTER, policy=policy
                        )
                        times.append(outcome.duration_s)
                    assert outcome is not None
                    scheduled = sum((t.quantity_kwh for t in trades), Decimal(0))
                    curtailed = sum((c.curtailed_kwh for c in outcome.curtailments), Decimal(0))
                    row = (
                        name,
                        len(buses),
                        size,
                        "heavy" if heavy else "light",
                        policy.value,
                        statistics.median(times),
                        outcome.power_flows,
                        outcome.feasible,
                        len(outcome.curtailments),
                        float(curtailed / scheduled * 100) if scheduled else 0.0,
                        outcome.max_vm_pu,
                        outcome.max_line_loading_percent,
                        outcome.max_trafo_loading_percent,
                    )
                    rows.append(row)
                    print(
                        f"  {name} {size:>6} {row[3]:<5} {policy.value:<18} "
                        f"{row[5]:.3f} s  {row[6]} power flows  feasible={row[7]}  "
                        f"curtailed {row[9]:.1f} %",
                        flush=True,
                    )
    print("power flow variants ...", flush=True)
    variants = [v for name in NETWORKS for v in power_flow_variants(name)]
    for label, ms in variants:
        print(f"  {label}: {ms:.1f} ms", flush=True)
    write(rows, variants)


def write(rows: list[tuple], variants: list[tuple[str, float]]) -> None:
    lines = [SECTION, "", "`python bench/bench_grid_check.py`", "", *machine(), ""]
    lines += [
        "Each prosumer has one trade; prosumers are placed round-robin on the net's connection "
        "buses (buses with loads). Light: peer trades plus every fifth prosumer buying from the "
        "outside grid, about 0.5 kWh per bus per quarter-hour. Heavy: midday PV surplus, 40 kWh "
        "(160 kW) exported per bus, so the check must curtail. Time is the median of "
        f"{REPEATS} runs of `grid_check` (one deep copy of the net, the scheduled power flow, the "
        "base case when a violation is found, and every curtailment round).",
        "",
        "| network | buses with prosumers | prosumers | case | policy | time (s) | power flows "
        "| feasible | trades curtailed | energy curtailed | max V (p.u.) | max line % "
        "| max trafo % |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r[0]} | {r[1]} | {r[2]:,} | {r[3]} | {r[4]} | {r[5]:.3f} | {r[6]} | "
            f"{'yes' if r[7] else 'no'} | {r[8]:,} | {r[9]:.1f} % | {r[10]:.3f} | {r[11]:.1f} | "
            f"{r[12]:.1f} |"
        )
    lines += ["", "One power flow, median of 20 (ms):", "", "| variant | ms |", "| --- | ---: |"]
    lines += [f"| {label} | {ms:.1f} |" for label, ms in variants]
    lines.append("")
    section = "\n".join(lines)
    replace_section(SECTION, section)
    print(f"wrote {SECTION!r} to {RESULTS}")


if __name__ == "__main__":
    main()
