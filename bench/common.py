"""Helpers the benchmarks share: progress lines, a scratch database, their RESULTS.md section."""

from __future__ import annotations

import re
import time
from pathlib import Path

from django.conf import settings

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


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


def replace_section(heading: str, section: str) -> None:
    """Put `section` (which starts with its `heading` line) into RESULTS.md.

    Only this benchmark's own section is replaced, from its heading to the next `## ` heading;
    a new one is appended, so every benchmark keeps the others' results.
    """
    text = RESULTS.read_text() if RESULTS.exists() else "# PeerGrid benchmarks\n"
    body = section.rstrip("\n") + "\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: body + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + body
    RESULTS.write_text(text.rstrip("\n") + "\n")
