"""Benchmark: what loss allocation, network charges and the system-strength check add to one
interval's grid check, for 1,000 prosumers.

Run ``python bench/bench_network_costs.py`` from the project root; it prints progress and writes
the "## Network costs" section of bench/RESULTS.md (replacing an older one, leaving the others).

Target (issue 17): allocation and charges for 1,000 prosumers add <= 20 ms to one interval's
check. The baseline, measured in the same run on the same trades, is the grid check itself
(``grid.check.grid_check``). Measured per interval on the check's solved state: the
system-strength check of the exports (``grid.strength.strength_check``), the loss allocation
(``grid.losses``: the Jacobian's factorisation, the loss factors, the normalised allocation and
its kWh apportioning) and every trade side's use of the network
(``marketplace.services.network_charges.side_uses_many``). The per-network-version studies
(short-circuit power, use factors) run once per upload and process and are reported apart.
"""

from __future__ import annotations

import copy
import os
import platform
import statistics
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
warnings.filterwarnings("ignore")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import pandapower as pp  # noqa: E402

from bench.common import progress, replace_section  # noqa: E402
from grid.check import ScheduledTrade, grid_check  # noqa: E402
from grid.linearisation import linearise  # noqa: E402
from grid.losses import allocate_losses_at, network_losses_kw  # noqa: E402
from grid.network_use import network_use  # noqa: E402
from grid.networks import reference_network  # noqa: E402
from grid.strength import Export, short_circuit_mva, strength_check  # noqa: E402
from marketplace.services.network_charges import side_uses_many  # noqa: E402

SECTION = "## Network costs"
NETWORKS = ("cigre_lv", "1-LV-urban6--0-sw")
PROSUMERS = 1_000
RUNS = 20
NOON = datetime(2025, 6, 21, 11, 0, tzinfo=UTC)
HOURS = 0.25


def trades_of(net: Any, seed: int = 42) -> list[ScheduledTrade]:
    """1,000 prosumers round-robin on the load buses, in 500 bilateral pairs (0.1 to 2 kW)."""
    rng = np.random.default_rng(seed)
    buses = sorted({int(b) for b in net.load.bus})
    trades = []
    for i in range(0, PROSUMERS, 2):
        kwh = Decimal(f"{rng.uniform(0.1, 2.0) * HOURS:.3f}")
        at = NOON - timedelta(seconds=int(rng.integers(0, 3600)))
        seller, buyer = buses[i % len(buses)], buses[(i + 1) % len(buses)]
        trades.append(ScheduledTrade(f"t{i}", seller, buyer, kwh, at))
    return trades


def solved_state(net: Any, trades: list[ScheduledTrade]) -> Any:
    """The net with the trades' power at their buses, solved: the check's final state."""
    work = copy.deepcopy(net)
    withdrawal: dict[int, float] = {}
    for t in trades:
        kw = float(t.quantity_kwh) / HOURS
        withdrawal[t.seller_bus or 0] = withdrawal.get(t.seller_bus or 0, 0.0) - kw
        withdrawal[t.buyer_bus or 0] = withdrawal.get(t.buyer_bus or 0, 0.0) + kw
    for bus, kw in withdrawal.items():
        pp.create_load(work, bus, p_mw=kw / 1000.0, name=f"members at {bus}")
    pp.runpp(work, numba=False)
    return work


def median_ms(fn: Any, runs: int = RUNS) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(samples)


def measure(name: str) -> dict[str, Any]:
    progress(f"{name}: preparing")
    net = reference_network(name)
    net.pop("profiles", None)
    trades = trades_of(net)
    started = time.perf_counter()
    short_circuit = short_circuit_mva(net)
    sc_ms = (time.perf_counter() - started) * 1000.0
    started = time.perf_counter()
    use = network_use(net)
    use_ms = (time.perf_counter() - started) * 1000.0
    progress(f"{name}: the check alone, {RUNS} runs")
    check_ms = median_ms(lambda: grid_check(net, trades, interval_hours=HOURS))
    solved = solved_state(net, trades)
    members = {
        f"{t.trade_id}:{side}": (bus, sign * float(t.quantity_kwh) / HOURS)
        for t in trades
        for side, bus, sign in (("sell", t.seller_bus, 1.0), ("buy", t.buyer_bus, -1.0))
        if bus is not None
    }
    exports = [
        Export(t.trade_id, t.seller_bus, float(t.quantity_kwh) / HOURS, t.submitted_at)
        for t in trades
        if t.seller_bus is not None
    ]
    pairs = [("bilateral", (True, t.buyer_bus), (True, t.seller_bus)) for t in trades]

    def losses() -> None:
        allocation = allocate_losses_at(linearise(solved), network_losses_kw(solved), members)
        allocation.allocated_kwh(HOURS)

    progress(f"{name}: strength, losses and charges, {RUNS} runs each")
    return {
        "network": name,
        "buses": len(net.bus),
        "check_ms": check_ms,
        "strength_ms": median_ms(lambda: strength_check(short_circuit, exports)),
        "losses_ms": median_ms(losses),
        "charges_ms": median_ms(lambda: side_uses_many(use, pairs)),
        "sc_ms": sc_ms,
        "use_ms": use_ms,
    }


def main() -> None:
    rows = [measure(name) for name in NETWORKS]
    load = os.getloadavg()
    lines = [
        SECTION,
        "",
        "`python bench/bench_network_costs.py`: what loss allocation, network charges and the "
        "system-strength check add to one interval's grid check with 1,000 prosumers (500 "
        "bilateral trades of 0.1-2 kW, round-robin on the load buses). Medians of "
        f"{RUNS} runs, milliseconds; the baseline is the grid check of the same trades in the "
        "same run. Short-circuit power and use factors are per network version (once per "
        "upload and process), listed apart.",
        "",
        f"- machine: `{platform.platform()}`, {os.cpu_count()} CPUs",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- load average (1, 5, 15 min) when the run ended: {load[0]:.2f}, {load[1]:.2f}, "
        f"{load[2]:.2f} (other engineers' test suites were running)",
        f"- Python {platform.python_version()}, NumPy {np.__version__}, pandapower "
        f"{pp.__version__}",
        "",
        "| network | buses | check ms | strength ms | losses ms | charges ms | added ms | "
        "added / check | short-circuit study ms | use factors ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdicts = []
    for r in rows:
        added = r["strength_ms"] + r["losses_ms"] + r["charges_ms"]
        lines.append(
            f"| {r['network']} | {r['buses']} | {r['check_ms']:.1f} | {r['strength_ms']:.2f} | "
            f"{r['losses_ms']:.2f} | {r['charges_ms']:.2f} | {added:.2f} | "
            f"{added / r['check_ms']:.0%} | {r['sc_ms']:.0f} | {r['use_ms']:.0f} |"
        )
        verdicts.append(f"{r['network']} {added:.1f} ms, {'met' if added <= 20 else 'NOT met'}")
    lines += ["", "- target: added <= 20 ms per interval, 1,000 prosumers: " + "; ".join(verdicts)]
    replace_section(SECTION, "\n".join(lines))
    progress("written to bench/RESULTS.md")


if __name__ == "__main__":
    main()
