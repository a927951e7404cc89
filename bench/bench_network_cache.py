"""The grid network cache of a worker process: misses and cost when it serves many communities.

Usage: ``python bench/bench_network_cache.py [--communities 40] [--rounds 3]
[--network 1-LV-semiurb4--0-sw] [--no-write]``. Works in a scratch database of its own (SQLite
by default, PostgreSQL with DATABASE_URL), removed at the end; replaces the "## Grid network
cache" section of bench/RESULTS.md.

A worker on one queue shard grid-checks the intervals of its communities in turn. Per interval
the check looks the community's grid model up and takes its prepared network from the
process's cache. Measured in the same run, for ``--communities`` communities on one reference
network (each its own grid model), ``--rounds`` rounds of one lookup per community:

* the cache at 32 networks (the size it had) and at the default size now, with the number of
  times a network was parsed and prepared again although it never changed, and CPU per lookup;
* the grid model's row read whole (the network's JSON and profiles, megabytes for a SimBench
  grid) against without those columns, which load only on a miss.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from bench.common import machine, progress, replace_section, scratch_database  # noqa: E402

SECTION = "## Grid network cache"


def run(communities: int, rounds: int, network: str) -> dict[str, Any]:
    from django.conf import settings

    from grid import services as grid_services
    from grid.models import GridModel
    from grid.services import (
        DEFAULT_NETWORK_CACHE_SIZE,
        GRID_MODEL_HEAVY_FIELDS,
        grid_model_use_reference,
        grid_network,
    )
    from marketplace.services.communities import community_create

    ids = []
    for number in range(communities):
        community = community_create(name=f"Cache {number}", slug=f"cache-{number}")
        ids.append(grid_model_use_reference(community=community, name=network).community_id)
        if number % 10 == 9:
            progress(f"{number + 1} of {communities} communities on {network}")
    size_json = len(GridModel.objects.only("network_json").first().network_json)  # type: ignore[union-attr]
    out: dict[str, Any] = {"json_chars": size_json, "rows": {}}
    variants = (("whole row", ()), ("without the network's columns", GRID_MODEL_HEAVY_FIELDS))
    for label, heavy in variants:
        started = time.perf_counter()
        for community_id in ids * rounds:
            GridModel.objects.filter(community_id=community_id).defer(*heavy).first()
        out["rows"][label] = (time.perf_counter() - started) / (len(ids) * rounds) * 1000
    out["sizes"] = []
    for size in (32, DEFAULT_NETWORK_CACHE_SIZE):
        settings.PEERGRID_NETWORK_CACHE_SIZE = size
        grid_services._NETWORK_CACHE.clear()
        gc.unfreeze()
        grid_services._NET_CACHE.clear()
        models = [
            GridModel.objects.filter(community_id=c).defer(*GRID_MODEL_HEAVY_FIELDS).get()
            for c in ids
        ]
        for model in models:  # warm: every network parsed once, as after a worker's first round
            grid_network(model)
        stats = grid_services.NETWORK_CACHE_STATS
        misses = stats["misses"]
        cpu = time.process_time()
        wall = time.perf_counter()
        for _ in range(rounds):
            for model in models:
                grid_network(model)
        lookups = rounds * len(models)
        out["sizes"].append({
            "size": size, "lookups": lookups, "misses": stats["misses"] - misses,
            "cpu_ms": (time.process_time() - cpu) / lookups * 1000,
            "wall_ms": (time.perf_counter() - wall) / lookups * 1000,
        })  # fmt: skip
        progress(f"cache of {size}: {out['sizes'][-1]}")
    return out


def write(result: dict[str, Any], about: str, communities: int, rounds: int, network: str) -> str:
    lines = [
        SECTION,
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python bench/bench_network_cache.py`: "
        f"{about}. One worker process, {communities} communities each with its own grid model "
        f"of `{network}` (pandapower JSON of {result['json_chars']:,} characters), {rounds} "
        "rounds of one grid-model lookup and one prepared-network lookup per community after a "
        "warm-up round, as a worker's grid checks go through its shard's communities.",
        "",
        "| cache size | lookups | re-parsed though unchanged | CPU ms per lookup "
        "| wall ms per lookup |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['size']} | {r['lookups']} | {r['misses']} | {r['cpu_ms']:.2f} | {r['wall_ms']:.2f} |"
        for r in result["sizes"]
    ]
    lines += ["", "| grid model row per check | ms per read |", "| --- | ---: |"]
    lines += [f"| {label} | {ms:.2f} |" for label, ms in result["rows"].items()]
    lines.append("")
    section = "\n".join(lines)
    replace_section(SECTION, section)
    return section


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--communities", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--network", default="1-LV-semiurb4--0-sw")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import django

    django.setup()
    about = machine()
    with scratch_database("network_cache") as (backend, _):
        progress(f"scratch database on {backend}")
        result = run(args.communities, args.rounds, args.network)
    if not args.no_write:
        print(write(result, f"{about}; {backend}", args.communities, args.rounds, args.network))
    return 0


if __name__ == "__main__":
    sys.exit(main())
