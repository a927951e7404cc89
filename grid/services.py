"""Writes for grid models: choosing or uploading a community's network; the prepared network.

The grid check itself is the pure ``grid.check.grid_check``; turning an interval's trades into
a schedule and writing curtailments back is marketplace's (``marketplace.services.grid_check``).
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import ApplicationError, ErrorCode
from grid.check import GridNetwork
from grid.models import GridModel, NetworkSource
from grid.networks import (
    NetworkInvalid,
    connection_buses,
    element_buses,
    network_from_json,
    network_to_json,
    reference_network,
    validate_network,
)
from grid.powerflow import CompiledNetwork, PowerFlowError
from grid.profiles import (
    ProfilesInvalid,
    profiles_from_csv,
    simbench_code,
    simbench_profiles,
    standard_profiles,
)

if TYPE_CHECKING:
    from marketplace.models import Community

# An upload bigger than this is not an LV community grid; refusing it early keeps a worker from
# spending minutes parsing it.
MAX_NETWORK_JSON_CHARS = 50_000_000

# Parsed nets per worker process, keyed by (grid model pk, uploaded_at): parsing pandapower JSON
# costs 50-500 ms, more than the power flow itself. A new upload changes uploaded_at, so a stale
# entry is never used; nothing changes a cached net (the compiled network works on a copy).
# Least recently used goes first, and the size is a setting: a worker that serves more
# communities than its cache holds re-parses a network on every interval even though it never
# changed (with first-in-first-out and 32 entries, every one of 33 communities in turn missed).
_NET_CACHE: OrderedDict[tuple[int, datetime], Any] = OrderedDict()
_NET_CACHE_LOCK = threading.Lock()
DEFAULT_NETWORK_CACHE_SIZE = 128
# Hits and misses of the prepared networks' cache in this process (for benchmarks and tests).
NETWORK_CACHE_STATS = {"hits": 0, "misses": 0}

# The columns a grid check needs of a grid model whose network is cached: not the network's
# JSON nor its profiles (megabytes for a SimBench grid), which load only on a miss.
GRID_MODEL_HEAVY_FIELDS = ("network_json", "profiles_csv")


def network_cache_size() -> int:
    """How many networks a process keeps parsed and prepared (``PEERGRID_NETWORK_CACHE_SIZE``):
    at least the communities its queue shard serves."""
    return max(1, int(getattr(settings, "PEERGRID_NETWORK_CACHE_SIZE", DEFAULT_NETWORK_CACHE_SIZE)))


def _lru_get(cache: OrderedDict[Any, Any], key: Any) -> Any:
    with _NET_CACHE_LOCK:
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
        return value


def _lru_put(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    with _NET_CACHE_LOCK:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > network_cache_size():
            cache.popitem(last=False)


def network_load_reference(name: str) -> Any:
    """A fresh copy of a built-in reference network; ``INVALID_NETWORK`` for an unknown name."""
    try:
        net = reference_network(name)
    except NetworkInvalid as exc:
        raise ApplicationError(
            ErrorCode.INVALID_NETWORK, str(exc), field="reference_name"
        ) from None
    # SimBench nets carry a year of profiles (10 MB of JSON for urban6): the check reads them
    # from the installed package (grid.profiles), so storing them would only slow every parse.
    net.pop("profiles", None)
    return net


def network_load_upload(json_text: str) -> Any:
    """An uploaded pandapower JSON file as a net, once it is valid.

    Valid means: it parses as a pandapower net, has an in-service external grid, a bus a meter
    point could connect to, and its base case power flow converges. Anything else raises
    ``INVALID_NETWORK`` on ``network_file`` with the reason in one line.
    """
    if len(json_text) > MAX_NETWORK_JSON_CHARS:
        raise ApplicationError(
            ErrorCode.INVALID_NETWORK,
            f"The file is too large ({len(json_text):,} characters).",
            field="network_file",
        )
    try:
        net = network_from_json(json_text)
        validate_network(net)
    except NetworkInvalid as exc:
        raise ApplicationError(
            ErrorCode.INVALID_NETWORK, f"The network cannot be used: {exc}.", field="network_file"
        ) from None
    if not connection_buses(net):
        raise ApplicationError(
            ErrorCode.INVALID_NETWORK,
            "The network cannot be used: it has no bus a meter point could connect to.",
            field="network_file",
        )
    return net


def grid_model_save(
    *,
    community: Community,
    net: Any,
    reference_name: str = "",
    profiles_csv: str = "",
) -> GridModel:
    """Store ``net`` (a reference network when ``reference_name`` is given) as the community's
    network, with its profiles; ``INVALID_NETWORK`` on ``profiles_file`` for a bad profile file.

    Writes only the grid model: callers that must keep meter points placed check them first
    (``marketplace.services.grid_models.grid_network_change``).
    """
    try:
        network = network_prepare(net, reference_name=reference_name, profiles_csv=profiles_csv)
    except NetworkInvalid as exc:
        field = "profiles_file" if profiles_csv and "profiles" in str(exc) else "network_file"
        raise ApplicationError(
            ErrorCode.INVALID_NETWORK, f"The network cannot be used: {exc}.", field=field
        ) from None
    with transaction.atomic():
        grid_model, _ = GridModel.objects.update_or_create(
            community=community,
            defaults={
                "source": NetworkSource.REFERENCE if reference_name else NetworkSource.UPLOAD,
                "reference_name": reference_name,
                # Stored as pandapower writes it, so what is checked is what was validated.
                "network_json": network_to_json(net),
                "connection_buses": connection_buses(net),
                "elements": element_buses(net),
                "profiles_csv": profiles_csv,
                "uploaded_at": timezone.now(),
            },
        )
    key = (grid_model.pk, grid_model.uploaded_at)
    _lru_put(_NET_CACHE, key, net)
    _network_put(key, network)
    return grid_model


def grid_model_use_reference(*, community: Community, name: str) -> GridModel:
    """Give the community one of the built-in reference networks (replacing any other)."""
    return grid_model_save(
        community=community, net=network_load_reference(name), reference_name=name
    )


def grid_model_upload(*, community: Community, json_text: str, profiles_csv: str = "") -> GridModel:
    """Replace the community's network with an uploaded pandapower JSON file, once it is valid
    (``network_load_upload``), with profiles uploaded beside it or the standard ones."""
    return grid_model_save(
        community=community, net=network_load_upload(json_text), profiles_csv=profiles_csv
    )


def grid_model_net(grid_model: GridModel) -> Any:
    """The parsed pandapower net of a grid model, from this process's cache when possible.

    Callers must not modify it.
    """
    key = (grid_model.pk, grid_model.uploaded_at)
    net = _lru_get(_NET_CACHE, key)
    if net is None:
        net = network_from_json(grid_model.network_json)
        # The check deep-copies the net on every run; an upload's time series would ride along.
        net.pop("profiles", None)
        _lru_put(_NET_CACHE, key, net)
    return net


# Prepared networks per worker process, keyed like the parsed nets: compiling the admittance
# matrices and the profile tables costs 20-200 ms, the check itself a few.
_NETWORK_CACHE: OrderedDict[tuple[int, datetime], GridNetwork] = OrderedDict()


def grid_network(grid_model: GridModel) -> GridNetwork:
    """The grid model's network ready for ``grid_check``: compiled once per upload and process,
    with its profiles (uploaded CSV, SimBench's own, or the standard household and PV ones)."""
    key = (grid_model.pk, grid_model.uploaded_at)
    network = _lru_get(_NETWORK_CACHE, key)
    if network is not None:
        NETWORK_CACHE_STATS["hits"] += 1
        return network
    NETWORK_CACHE_STATS["misses"] += 1
    net = grid_model_net(grid_model)
    network = network_prepare(
        net, reference_name=grid_model.reference_name, profiles_csv=grid_model.profiles_csv
    )
    _network_put(key, network)
    return network


def _network_put(key: tuple[int, datetime], network: GridNetwork) -> None:
    with _NET_CACHE_LOCK:
        evicting = key not in _NETWORK_CACHE and len(_NETWORK_CACHE) >= network_cache_size()
    if evicting:
        # The evicted network may be frozen (below): back to the collector, so it is freed.
        gc.unfreeze()
    _lru_put(_NETWORK_CACHE, key, network)
    # A prepared network (hundreds of thousands of pandas and NumPy objects) lives as long as
    # the process, like the modules loaded before it. Frozen out of the cyclic collector, they
    # are not walked again by every full collection: at 10,000 prosumers one such collection in
    # the grid step cost a quarter of a second of CPU. Whatever else was alive and later
    # becomes cyclic garbage stays until the next eviction unfreezes.
    gc.freeze()


def network_prepare(net: Any, *, reference_name: str = "", profiles_csv: str = "") -> GridNetwork:
    """Compile a net and pick its profiles; ``NetworkInvalid`` if either cannot be used."""
    try:
        compiled = CompiledNetwork.from_pandapower(net)
    except PowerFlowError as exc:
        raise NetworkInvalid(str(exc)) from None
    code = simbench_code(reference_name)
    if profiles_csv:
        try:
            profiles = profiles_from_csv(profiles_csv, compiled)
        except ProfilesInvalid as exc:
            raise NetworkInvalid(f"the profiles cannot be used: {exc}") from None
    elif code is not None:
        profiles = simbench_profiles(code, compiled)
    else:
        profiles = standard_profiles(compiled)
    return GridNetwork(compiled, profiles)
