"""A community's network changes without stranding a meter point.

``grid_network_change`` is how a manager replaces the network (a reference network or an
uploaded file, with optional profiles): every meter point of the community must still have a
place on the new network, its bus a connection bus and every element it names a load or
generator on that bus. A change that would strand meter points is refused with the list of them
and why, or accepted together with a remapping in the same transaction.

Remapping format (CSV, one meter point a line, header optional)::

    meter_point,bus,elements
    17,5,load 3;sgen 1
    18,6,

``elements`` are the network elements the meter point stands for, separated by ``;``; empty
means a share of its bus's elements.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from accounts.models import MeterPoint, User
from accounts.permissions import require_manage
from accounts.services.audit import audit_record
from config.errors import ApplicationError, ErrorCode
from grid.models import GridModel
from grid.networks import connection_buses, element_buses
from grid.services import grid_model_save, network_load_reference, network_load_upload
from marketplace.models import Community

MAX_REMAPPING_LINES = 10_000


@dataclass(frozen=True, slots=True)
class Place:
    """Where a meter point is to be on the network."""

    bus: int | None
    elements: tuple[str, ...]


def remapping_parse(text: str, *, community: Community) -> dict[int, Place]:
    """The remapping of the community's meter points; ``INVALID_NETWORK`` on ``remapping``
    naming the line of the first problem."""
    known = set(
        MeterPoint.objects.filter(membership__community=community).values_list("pk", flat=True)
    )
    places: dict[int, Place] = {}

    def refuse(number: int, why: str) -> ApplicationError:
        return ApplicationError(
            ErrorCode.INVALID_NETWORK, f"Remapping line {number}: {why}.", field="remapping"
        )

    lines = list(csv.reader(io.StringIO(text.strip())))
    if len(lines) > MAX_REMAPPING_LINES:
        raise ApplicationError(
            ErrorCode.INVALID_NETWORK, "The remapping is too long.", field="remapping"
        )
    for number, row in enumerate(lines, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if number == 1 and cells[0].lower() == "meter_point":
            continue
        if len(cells) not in (2, 3):
            raise refuse(number, "expected meter_point,bus,elements")
        if not cells[0].isdigit() or int(cells[0]) not in known:
            raise refuse(number, f"{cells[0]!r} is not a meter point of {community}")
        if not cells[1].isdigit():
            raise refuse(number, f"bus {cells[1]!r} is not a bus number")
        pk = int(cells[0])
        if pk in places:
            raise refuse(number, f"meter point {pk} appears twice")
        names = tuple(" ".join(n.split()) for n in (cells[2] if len(cells) == 3 else "").split(";"))
        places[pk] = Place(int(cells[1]), tuple(n for n in names if n))
    return places


def stranded_meter_points(*, net: Any, places: dict[int, Place]) -> list[tuple[int, str]]:
    """Each meter point whose place (``places``) does not fit ``net``, with the reason."""
    buses = set(connection_buses(net))
    elements = element_buses(net)
    stranded = []
    for pk, place in sorted(places.items()):
        if place.bus is None:
            continue  # not placed yet: nothing to strand (it cannot trade until it is)
        if place.bus not in buses:
            stranded.append((pk, f"bus {place.bus} is not a connection bus of the new network"))
            continue
        for name in place.elements:
            if elements.get(name) != place.bus:
                where = "not in the new network" if name not in elements else "not on its bus"
                stranded.append((pk, f"{name} is {where}"))
                break
    return stranded


def grid_network_change(
    *,
    community: Community,
    changed_by: User | None,
    reference_name: str = "",
    json_text: str = "",
    profiles_csv: str = "",
    remapping: str = "",
) -> GridModel:
    """Replace the community's network (a reference network by name, or an uploaded file) and
    remap meter points in one step; refuses, naming them, if any meter point would be stranded.
    """
    if changed_by is not None:
        require_manage(changed_by, community)
    if bool(reference_name) == bool(json_text):
        raise ApplicationError(
            ErrorCode.REQUIRED, "Choose a reference network or upload one.", field="network_file"
        )
    net = (
        network_load_reference(reference_name) if reference_name else network_load_upload(json_text)
    )
    remapped = remapping_parse(remapping, community=community) if remapping.strip() else {}
    places = {
        pk: Place(bus, tuple(elements or ()))
        for pk, bus, elements in MeterPoint.objects.filter(
            membership__community=community
        ).values_list("pk", "bus", "network_elements")
    }
    places.update(remapped)
    stranded = stranded_meter_points(net=net, places=places)
    if stranded:
        listed = "; ".join(f"meter point {pk}: {why}" for pk, why in stranded)
        raise ApplicationError(
            ErrorCode.INVALID_NETWORK,
            f"The new network would strand {len(stranded)} meter point(s) ({listed}). Upload it "
            "with a remapping of them (meter_point,bus,elements per line).",
            field="remapping",
        )
    with transaction.atomic():
        grid_model = grid_model_save(
            community=community,
            net=net,
            reference_name=reference_name,
            profiles_csv=profiles_csv,
        )
        for pk, place in sorted(remapped.items()):
            MeterPoint.objects.filter(pk=pk).update(
                bus=place.bus, network_elements=list(place.elements)
            )
        audit_record(
            kind="grid_model.changed",
            actor=changed_by,
            community=community,
            source=grid_model.source,
            reference_name=reference_name,
            remapped=sorted(remapped),
        )
    return grid_model
