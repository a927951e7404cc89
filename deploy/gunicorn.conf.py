"""gunicorn settings of the web service (the Dockerfile, docker-compose.yml's ``web``) and of
``bench/bench_api.py``, so that the load benchmark measures the server as it is deployed.

Sync workers, one request at a time each, ``PEERGRID_WEB_WORKERS`` of them (default: the
cores this process may run on, plus one, so that a worker waiting for PostgreSQL or Redis
leaves its core to another; more workers only queue for the cores, each with its memory and its
database connection). Of four layouts tried on 2 cores with 8 clients (bench/RESULTS.md, "API
load: what drives the post's p99"), 3 sync workers had the lowest p99 in three of four
comparisons and 2 threaded workers of 4 threads among the highest: a thread back from a query
waits for the interpreter lock behind the others of its process, and a garbage collection
stops all of them.

After the application is loaded, each worker imports the URL conf (every view and serializer,
which Django otherwise imports on the first requests) and freezes the garbage collector's view
of everything loaded so far: a full collection of those ~270,000 objects took 210-225 ms on
that machine, a pause for the worker's requests; frozen, it walks only what requests left.
"""

from __future__ import annotations

import gc
import os
from typing import Any

# Not gunicorn's own WEB_CONCURRENCY: compose passes the variable empty when it is unset, which
# gunicorn cannot read.
workers = int(os.environ.get("PEERGRID_WEB_WORKERS") or len(os.sched_getaffinity(0)) + 1)
worker_class = "sync"
# gunicorn's default, stated so that the benchmark and the deploy share it.
timeout = 30


def post_worker_init(worker: Any) -> None:
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view module now, not on a request
    gc.collect()
    gc.freeze()
