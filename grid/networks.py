"""Grid models for communities: reference networks, JSON upload/download, validation, bus mapping.

Everything here works on plain pandapower nets; there is no Django and no database. All reference
networks ship with the installed ``pandapower`` and ``simbench`` packages, so nothing is downloaded
at run time.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandapower as pp
import pandapower.networks as pn
import pandapower.topology as top
import simbench

# Buses at or below this nominal voltage count as low voltage (LV) connection points.
LV_MAX_KV = 1.0


class NetworkInvalid(ValueError):  # noqa: N818 - the domain name reads better than "...Error"
    """A grid model cannot be used: the message says why, in one line, for the manager's page."""


@dataclass(frozen=True, slots=True)
class ReferenceNetwork:
    """A network that ships with the installed packages, with its label for the admin pages."""

    name: str
    label: str
    description: str
    builder: Callable[[], Any]
    has_profiles: bool = False


def _simbench(code: str) -> Callable[[], Any]:
    def build() -> Any:
        return simbench.get_simbench_net(code)

    return build


REFERENCE_NETWORKS: dict[str, ReferenceNetwork] = {
    net.name: net
    for net in (
        ReferenceNetwork(
            name="cigre_lv",
            label="CIGRE LV European benchmark",
            description=(
                "CIGRE task force C6.04.02 low-voltage network: residential, industrial and "
                "commercial feeders behind three 20/0.4 kV transformers; 44 buses, 15 loads."
            ),
            builder=pn.create_cigre_network_lv,
        ),
        ReferenceNetwork(
            name="kerber_landnetz_kabel_1",
            label="Kerber rural cable network 1",
            description=(
                "Kerber 'Landnetz Kabel 1': a rural German 0.4 kV cable feeder behind one "
                "transformer; 8 household loads."
            ),
            builder=pn.create_kerber_landnetz_kabel_1,
        ),
        ReferenceNetwork(
            name="kerber_vorstadtnetz_kabel_1",
            label="Kerber suburban cable network 1",
            description=(
                "Kerber 'Vorstadtnetz Kabel 1': a suburban German 0.4 kV cable network; "
                "294 buses, 146 household loads."
            ),
            builder=pn.create_kerber_vorstadtnetz_kabel_1,
        ),
        ReferenceNetwork(
            name="1-LV-rural1--0-sw",
            label="SimBench LV rural 1",
            description=(
                "SimBench 1-LV-rural1--0-sw: small rural 0.4 kV grid, 13 loads and 4 PV plants, "
                "with a year of 15-minute load and PV profiles."
            ),
            builder=_simbench("1-LV-rural1--0-sw"),
            has_profiles=True,
        ),
        ReferenceNetwork(
            name="1-LV-semiurb4--0-sw",
            label="SimBench LV semi-urban 4",
            description=(
                "SimBench 1-LV-semiurb4--0-sw: semi-urban 0.4 kV grid, 41 loads and 1 PV plant, "
                "with a year of 15-minute load and PV profiles."
            ),
            builder=_simbench("1-LV-semiurb4--0-sw"),
            has_profiles=True,
        ),
        ReferenceNetwork(
            name="1-LV-urban6--0-sw",
            label="SimBench LV urban 6",
            description=(
                "SimBench 1-LV-urban6--0-sw: urban 0.4 kV grid, 111 loads and 5 PV plants, "
                "with a year of 15-minute load and PV profiles."
            ),
            builder=_simbench("1-LV-urban6--0-sw"),
            has_profiles=True,
        ),
        ReferenceNetwork(
            name="1-MV-semiurb--0-sw",
            label="SimBench MV semi-urban",
            description=(
                "SimBench 1-MV-semiurb--0-sw: semi-urban 20 kV grid behind two 110/20 kV "
                "transformers, 115 loads on 112 buses and 121 generators, with a year of "
                "15-minute profiles. Each load is a secondary substation: the homes connected at "
                "its bus stand for the low-voltage network behind it, which is not modelled."
            ),
            builder=_simbench("1-MV-semiurb--0-sw"),
            has_profiles=True,
        ),
        ReferenceNetwork(
            name="1-MV-urban--0-sw",
            label="SimBench MV urban",
            description=(
                "SimBench 1-MV-urban--0-sw: urban 10 kV cable grid behind two 110/10 kV "
                "transformers, 139 loads on 134 buses and 134 generators, with a year of "
                "15-minute profiles. Each load is a secondary substation: the homes connected at "
                "its bus stand for the low-voltage network behind it, which is not modelled."
            ),
            builder=_simbench("1-MV-urban--0-sw"),
            has_profiles=True,
        ),
    )
}


@functools.cache
def _reference_template(name: str) -> Any:
    # SimBench reads its CSV tables on every call (3-4 s); build once per process and hand out
    # deep copies (~15 ms) so no caller can change another caller's network.
    return REFERENCE_NETWORKS[name].builder()


def reference_network(name: str) -> Any:
    """A fresh copy of the named reference network (a ``pandapowerNet``)."""
    if name not in REFERENCE_NETWORKS:
        known = ", ".join(sorted(REFERENCE_NETWORKS))
        raise NetworkInvalid(f"unknown reference network {name!r}; known: {known}")
    return copy.deepcopy(_reference_template(name))


def network_to_json(net: Any) -> str:
    """The net as pandapower's JSON format, for storing with the community."""
    return str(pp.to_json(net))


# What an uploaded network's JSON may name for pandapower's decoder to import and build: the
# net itself, its tables and the values in them. pandapower's decoder imports any "_module"
# it is given and returns any function ("_class": "function") before its own checks run, so
# every object is checked against this list before pandapower sees the file.
ALLOWED_TYPES: dict[str, frozenset[str]] = {
    "pandapower.auxiliary": frozenset({"pandapowerNet"}),
    "pandas.core.frame": frozenset({"DataFrame"}),
    "pandas.core.series": frozenset({"Series"}),
    "pandas.core.indexes.base": frozenset({"Index"}),
    "pandas.core.indexes.range": frozenset({"RangeIndex"}),
    "pandas.core.indexes.numeric": frozenset({"Index", "Int64Index", "Float64Index"}),
    "numpy": frozenset(
        {"array", "bool_", "float16", "float32", "float64"}
        | {f"{kind}{bits}" for kind in ("int", "uint") for bits in (8, 16, 32, 64)}
    ),
    "builtins": frozenset({"tuple", "set", "frozenset"}),
}
# A pandapower net is about eight levels deep (net, tables, dtypes, standard types, nested
# JSON strings); anything far deeper is refused before it can exhaust the parser.
MAX_NESTING = 32
TOO_DEEP = f"the JSON nests deeper than {MAX_NESTING} levels"


def _check_allowed(document: Any) -> None:
    """Raise ``NetworkInvalid`` for a type not in ``ALLOWED_TYPES`` or nesting beyond the limit.

    Iterative, so no input can make it recurse too deep; strings that are themselves JSON (the
    tables' content, as pandapower writes them) are parsed and checked as part of the document.
    """
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            text = value.strip()
            if text[:1] in ("{", "[") or "_module" in text:
                try:
                    inner = json.loads(text)
                except RecursionError:
                    raise NetworkInvalid(TOO_DEEP) from None
                except ValueError:
                    if "_module" in text:
                        raise NetworkInvalid("the JSON holds a malformed embedded object") from None
                    continue
                stack.append((inner, depth))
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_NESTING:
            raise NetworkInvalid(TOO_DEEP)
        if isinstance(value, dict):
            if "_module" in value or "_class" in value:
                module, name = value.get("_module"), value.get("_class")
                if not (isinstance(module, str) and isinstance(name, str)) or name not in (
                    ALLOWED_TYPES.get(module, frozenset())
                ):
                    raise NetworkInvalid(
                        f"the JSON names {str(module)[:60]}.{str(name)[:60]}, which a network "
                        "does not need (allowed: pandapower's net, pandas tables, numpy values)"
                    )
            stack.extend((item, depth + 1) for item in value.values())
        else:
            stack.extend((item, depth + 1) for item in value)


def network_from_json(text: str) -> Any:
    """Load a pandapower net from JSON; anything else raises ``NetworkInvalid`` (one line).

    Nothing the file names is imported unless it is in ``ALLOWED_TYPES``.
    """
    try:
        document = json.loads(text)
    except RecursionError:
        raise NetworkInvalid(TOO_DEEP) from None
    except (TypeError, ValueError) as exc:
        raise NetworkInvalid(f"the file is not JSON: {exc}") from None
    _check_allowed(document)
    try:
        net = pp.from_json_string(text)
    except Exception as exc:  # pandapower raises anything from KeyError to its own errors
        raise NetworkInvalid(
            f"the JSON is not a pandapower network: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from None
    if not isinstance(net, pp.pandapowerNet):
        raise NetworkInvalid(
            "the JSON is not a pandapower network (export one with pandapower.to_json)"
        )
    return net


def validate_network(net: Any) -> None:
    """Raise ``NetworkInvalid`` unless the net has buses, an external grid and a base case that
    converges; the check runs on a copy, so the caller's net is not changed."""
    if not isinstance(net, pp.pandapowerNet):
        raise NetworkInvalid("not a pandapower network")
    if "bus" not in net or len(net.bus) == 0:
        raise NetworkInvalid("the network has no buses")
    ext_grid = net.get("ext_grid")
    if ext_grid is None or not ext_grid.get("in_service", []).astype(bool).any():
        raise NetworkInvalid(
            "the network has no external grid (ext_grid): trades with the outside grid need one"
        )
    work = copy.deepcopy(net)
    try:
        pp.runpp(work, numba=False)
    except pp.LoadflowNotConverged:
        raise NetworkInvalid(
            "the base case power flow does not converge (check loads, line data and the external "
            "grid)"
        ) from None
    except Exception as exc:  # a malformed table surfaces as any error inside pandapower
        raise NetworkInvalid(
            f"the base case power flow failed: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from None
    if not work.converged:
        raise NetworkInvalid("the base case power flow does not converge")


def _slack_buses(net: Any) -> set[int]:
    ext = net.ext_grid[net.ext_grid.in_service]
    return {int(b) for b in ext.bus}


def connection_buses(net: Any) -> list[int]:
    """Buses where meter points can be connected, sorted: in-service buses with a load, or, for a
    net without loads, every in-service LV bus except the slack."""
    in_service = net.bus.index[net.bus.in_service.astype(bool)]
    loads = net.load[net.load.in_service.astype(bool)] if len(net.load) else net.load
    with_load = sorted({int(b) for b in loads.bus if b in in_service})
    if with_load:
        return with_load
    slack = _slack_buses(net)
    lv = net.bus.loc[in_service]
    return sorted(int(b) for b in lv.index[lv.vn_kv <= LV_MAX_KV] if int(b) not in slack)


def element_buses(net: Any) -> dict[str, int]:
    """Each in-service load and static generator a meter point can stand for, by name
    (``"load 3"``, ``"sgen 1"``), with its bus: what forms check a mapping against."""
    found: dict[str, int] = {}
    for table in ("load", "sgen"):
        frame = net.get(table)
        if frame is None or not len(frame):
            continue
        live = frame[frame.in_service.astype(bool)]
        for index, bus in zip(live.index, live.bus, strict=True):
            found[f"{table} {int(index)}"] = int(bus)
    return found


def bus_labels(net: Any) -> dict[int, str]:
    """A display name per bus: the net's own name if it has one, else ``bus <index>``."""
    labels: dict[int, str] = {}
    for idx, name in net.bus.name.items():
        text = str(name).strip() if name is not None and name == name else ""  # NaN != NaN
        labels[int(idx)] = text or f"bus {idx}"
    return labels


def _geo_point(value: Any) -> tuple[float, float] | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        geo = json.loads(value) if isinstance(value, str) else value
        x, y = geo["coordinates"][:2]
        return float(x), float(y)
    except (TypeError, ValueError, KeyError, IndexError):
        return None


def _tree_layout(net: Any) -> dict[int, tuple[float, float]]:
    # Breadth-first from the slack: depth goes down the page, leaves are spread across it. LV
    # grids are (almost) radial, so this draws them readably without matplotlib or igraph.
    graph = top.create_nxgraph(net, respect_switches=True, include_out_of_service=False)
    roots = sorted(_slack_buses(net)) or sorted(int(b) for b in net.bus.index)[:1]
    seen: set[int] = set()
    depth: dict[int, int] = {}
    children: dict[int, list[int]] = {}
    order: list[int] = []
    for root in roots + sorted(int(n) for n in graph.nodes):
        if root in seen:
            continue
        seen.add(root)
        depth[root] = 0
        queue = deque([root])
        while queue:
            node = queue.popleft()
            order.append(node)
            children[node] = []
            for nxt in sorted(int(n) for n in graph.neighbors(node)):
                if nxt not in seen:
                    seen.add(nxt)
                    depth[nxt] = depth[node] + 1
                    children[node].append(nxt)
                    queue.append(nxt)
    xs: dict[int, float] = {}
    next_leaf = 0.0

    def place(node: int) -> float:
        nonlocal next_leaf
        kids = children.get(node, [])
        if not kids:
            xs[node] = next_leaf
            next_leaf += 1.0
        else:
            xs[node] = sum(place(k) for k in kids) / len(kids)
        return xs[node]

    roots_in_order = [n for n in order if depth[n] == 0]
    for root in roots_in_order:
        place(root)
    return {n: (xs[n], -float(depth[n])) for n in xs}


def network_geometry(net: Any) -> dict[str, Any]:
    """Bus positions and branches for drawing, as JSON-serialisable data.

    ``{"buses": [{"bus", "label", "x", "y", "vn_kv"}], "lines": [{"line", "from_bus",
    "to_bus"}], "trafos": [{"trafo", "hv_bus", "lv_bus"}], "source": "geodata"|"layout"}``.
    The net's own coordinates are used when every bus has one, else a tree layout is computed.
    """
    points: dict[int, tuple[float, float]] = {}
    if "geo" in net.bus:
        for idx, value in net.bus.geo.items():
            point = _geo_point(value)
            if point is not None:
                points[int(idx)] = point
    source = "geodata"
    if len(points) < len(net.bus):
        points = _tree_layout(net)
        source = "layout"
    labels = bus_labels(net)
    buses = [
        {
            "bus": int(idx),
            "label": labels[int(idx)],
            "x": points.get(int(idx), (0.0, 0.0))[0],
            "y": points.get(int(idx), (0.0, 0.0))[1],
            "vn_kv": float(vn),
        }
        for idx, vn in net.bus.vn_kv.items()
    ]
    lines = [
        {"line": int(idx), "from_bus": int(f), "to_bus": int(t)}
        for idx, f, t in zip(net.line.index, net.line.from_bus, net.line.to_bus, strict=True)
    ]
    trafos = [
        {"trafo": int(idx), "hv_bus": int(h), "lv_bus": int(lo)}
        for idx, h, lo in zip(net.trafo.index, net.trafo.hv_bus, net.trafo.lv_bus, strict=True)
    ]
    return {"buses": buses, "lines": lines, "trafos": trafos, "source": source}
