"""The benchmarks' own-data rules: skip with a clear line, touch only their own Redis keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.conf import settings

from bench import common

ROOT = Path(__file__).resolve().parents[2]


def test_a_benchmark_without_its_servers_says_so_and_skips() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    result = subprocess.run(
        [sys.executable, "bench/bench_api.py"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("SKIP bench_api.py: needs PostgreSQL (set DATABASE_URL=")
    assert "Redis (set REDIS_URL=" in result.stdout


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL); CI sets it")
def test_only_the_runs_own_redis_keys_are_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    monkeypatch.setattr(common, "_own_prefix", "")
    monkeypatch.setenv("PEERGRID_REDIS_PREFIX", "")
    # Keys of others (names this test made up, so it may remove them afterwards).
    others = [f"someone-else-{common.RUN_ID}:queue", f"peergrid-bench-other-{common.RUN_ID}:key",
              f"peergrid-bench-selftest-{common.RUN_ID}"]  # fmt: skip
    try:
        for key in others:
            client.set(key, "keep")
        assert common.delete_redis_prefix() == 0  # no prefix of its own yet: nothing at all
        prefix = common.use_redis_prefix("selftest")
        assert os.environ["PEERGRID_REDIS_PREFIX"] == prefix
        for i in range(1500):  # more than one delete batch
            client.set(f"{prefix}{i}", "mine")
        assert common.delete_redis_prefix() == 1500
        assert not list(client.scan_iter(match=f"{prefix}*"))
        assert all(client.get(key) == b"keep" for key in others)
    finally:
        client.delete(*others)
