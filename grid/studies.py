"""What a network version implies whatever is traded: short-circuit power and network use.

Both depend only on the network, so they are computed once per network version and kept per
process, like the parsed net: the worker's grid check, the board's expected charges and the
manager's network page all read the same figures. A version is the network's content (a digest
of its pandapower JSON, itself remembered per grid model and ``uploaded_at``), so communities on
the same reference network share one study, and a new upload of the same network keeps it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from grid.models import GridModel
from grid.network_use import NetworkUse, network_use
from grid.networks import bus_labels, connection_buses
from grid.services import grid_model_net, network_cache_size
from grid.strength import hostable_export_kw, short_circuit_mva

T = TypeVar("T")
_CACHE: OrderedDict[tuple[str, str], Any] = OrderedDict()
_DIGESTS: OrderedDict[tuple[int, datetime], str] = OrderedDict()
_LOCK = threading.Lock()


def network_version(grid_model: GridModel) -> str:
    """The digest of the grid model's network: what its studies are cached under."""
    key = (grid_model.pk, grid_model.uploaded_at)
    with _LOCK:
        digest = _DIGESTS.get(key)
        if digest is not None:
            _DIGESTS.move_to_end(key)
    if digest is None:
        digest = hashlib.sha256(grid_model.network_json.encode()).hexdigest()
        _put(_DIGESTS, key, digest)
    return digest


def _put(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    # Least recently used first out, sized like the networks' cache (two studies per network).
    with _LOCK:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > 2 * network_cache_size():
            cache.popitem(last=False)


def _cached(kind: str, grid_model: GridModel, compute: Callable[[], T]) -> T:
    key = (kind, network_version(grid_model))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            found: T = _CACHE[key]
            return found
    value = compute()  # outside the lock: a slow study must not block other networks' reads
    _put(_CACHE, key, value)
    return value


def grid_model_short_circuit(grid_model: GridModel) -> dict[int, float]:
    """IEC 60909 maximum short-circuit power (MVA) per bus of the community's network."""
    return _cached("sc", grid_model, lambda: short_circuit_mva(grid_model_net(grid_model)))


def grid_model_network_use(grid_model: GridModel) -> NetworkUse:
    """Use factors of the community's network at its base case (``grid.network_use``)."""
    return _cached("use", grid_model, lambda: network_use(grid_model_net(grid_model)))


@dataclass(frozen=True, slots=True)
class BusStrength:
    """One bus of the manager's network page."""

    bus: int
    label: str
    vn_kv: float
    short_circuit_mva: float
    hostable_export_kw: float
    head_use: float  # units of use of the network from the feeder head
    connection: bool  # a bus meter points can be connected to


def grid_model_bus_strength(grid_model: GridModel, *, min_ratio: float) -> list[BusStrength]:
    """Every bus with its short-circuit power, the export it can take at ``min_ratio`` and its
    use of the network from the feeder head, weakest connection bus first."""
    net = grid_model_net(grid_model)
    short_circuit = grid_model_short_circuit(grid_model)
    use = grid_model_network_use(grid_model)
    labels = bus_labels(net)
    connection = set(connection_buses(net))
    rows = [
        BusStrength(
            bus=bus,
            label=labels.get(bus, f"bus {bus}"),
            vn_kv=float(net.bus.at[bus, "vn_kv"]),
            short_circuit_mva=s_sc,
            hostable_export_kw=hostable_export_kw(s_sc, min_ratio),
            head_use=use.head_use(bus) if bus in use.position else 0.0,
            connection=bus in connection,
        )
        for bus, s_sc in short_circuit.items()
    ]
    return sorted(rows, key=lambda r: (not r.connection, r.short_circuit_mva, r.bus))
