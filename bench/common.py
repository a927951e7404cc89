"""Helpers the Django-side benchmarks share: progress lines and a scratch database of their own."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def scratch_database(name: str) -> tuple[str, str]:
    """Create (anew) the benchmark's own database, never the one `make run` uses.

    SQLite: `bench-<name>.sqlite3` under PEERGRID_VAR_DIR; PostgreSQL: `<db>_bench_<name>`.
    Returns the backend's display name and the database name.
    """
    from django.db import connection

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        db.setdefault("TEST", {})["NAME"] = str(Path(settings.VAR_DIR) / f"bench-{name}.sqlite3")
        backend = "SQLite"
    else:
        db.setdefault("TEST", {})["NAME"] = f"{db['NAME']}_bench_{name}"
        backend = "PostgreSQL"
    database = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    return backend, str(database)
