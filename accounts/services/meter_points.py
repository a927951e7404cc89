"""Writes for meter points: registration, edits of capacity and assets, the manager's approval
(with the capacities and the place on the network) and the bus assignment.

A member's registration is a declaration: the meter point stays ``pending`` until a manager of
its community approves it. Only an approved meter point posts, bids, reports readings or is
settled, so a self-declared capacity never reaches the market.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts import permissions
from accounts.models import Membership, MembershipStatus, MeterPoint, MeterPointStatus, User
from accounts.services.audit import audit_record
from config.errors import ApplicationError, ErrorCode
from marketplace.models import Community, MarketRules
from notifications.events import Event, announce

CAPACITY_FIELDS = ("import_capacity_kw", "export_capacity_kw")


def max_connection_kw(community: Community) -> Decimal | None:
    """The community's maximum connection (its current rules), or None without rules."""
    rules = MarketRules.objects.filter(community=community).order_by("-created_at", "-pk").first()
    return None if rules is None else rules.max_connection_kw


def check_max_connection(
    *, community: Community, import_capacity_kw: Decimal, export_capacity_kw: Decimal
) -> None:
    """Refuse a capacity above the community's ``max_connection_kw`` rule, naming the field."""
    limit = max_connection_kw(community)
    if limit is None:
        return
    for field, value in (
        ("import_capacity_kw", import_capacity_kw),
        ("export_capacity_kw", export_capacity_kw),
    ):
        if value > limit:
            raise ApplicationError(
                ErrorCode.ABOVE_MAX_CONNECTION,
                f"{value} kW is above this community's maximum connection of {limit} kW; "
                "a larger connection needs the community manager to raise the rule.",
                field=field,
            )


def meter_point_check_values(
    *,
    label: str,
    import_capacity_kw: Decimal,
    export_capacity_kw: Decimal,
    pv_kwp: Decimal,
    battery_kwh: Decimal,
    battery_kw: Decimal,
    flexible_load_kw: Decimal,
) -> None:
    if not label.strip():
        raise ApplicationError(ErrorCode.REQUIRED, "Give the meter point a label.", field="label")
    for field, value in (
        ("import_capacity_kw", import_capacity_kw),
        ("export_capacity_kw", export_capacity_kw),
    ):
        if value <= 0:
            raise ApplicationError(
                ErrorCode.OUT_OF_RANGE, "Capacity must be greater than 0 kW.", field=field
            )
    for field, value in (
        ("pv_kwp", pv_kwp),
        ("battery_kwh", battery_kwh),
        ("battery_kw", battery_kw),
        ("flexible_load_kw", flexible_load_kw),
    ):
        if value < 0:
            raise ApplicationError(ErrorCode.OUT_OF_RANGE, "Must not be negative.", field=field)


def meter_point_register(
    *,
    membership: Membership,
    label: str,
    import_capacity_kw: Decimal,
    export_capacity_kw: Decimal,
    pv_kwp: Decimal = Decimal("0"),
    battery_kwh: Decimal = Decimal("0"),
    battery_kw: Decimal = Decimal("0"),
    flexible_load_kw: Decimal = Decimal("0"),
    registered_by: User | None = None,
    now: datetime | None = None,
) -> MeterPoint:
    """A member registers a grid connection; it is pending until a manager approves it
    (``meter_point_approve``) with its capacities and its place on the network.

    ``now``: when the connection was registered (default: now). Settlement expects readings
    of every meter point that existed when an interval ended, so a simulation of a past
    period registers its homes before the period starts.
    """
    if registered_by is not None and not permissions.can_register_meter_point(
        registered_by, membership
    ):
        raise ApplicationError(
            ErrorCode.PERMISSION_DENIED,
            "You can register meter points only for your own membership.",
            field="membership",
        )
    if membership.status != MembershipStatus.APPROVED:
        raise ApplicationError(
            ErrorCode.NOT_APPROVED,
            "Only approved members can register meter points.",
            field="membership",
        )
    meter_point_check_values(
        label=label,
        import_capacity_kw=import_capacity_kw,
        export_capacity_kw=export_capacity_kw,
        pv_kwp=pv_kwp,
        battery_kwh=battery_kwh,
        battery_kw=battery_kw,
        flexible_load_kw=flexible_load_kw,
    )
    check_max_connection(
        community=membership.community,
        import_capacity_kw=import_capacity_kw,
        export_capacity_kw=export_capacity_kw,
    )
    with transaction.atomic():
        meter_point = MeterPoint.objects.create(
            membership=membership,
            label=label.strip(),
            import_capacity_kw=import_capacity_kw,
            export_capacity_kw=export_capacity_kw,
            pv_kwp=pv_kwp,
            battery_kwh=battery_kwh,
            battery_kw=battery_kw,
            flexible_load_kw=flexible_load_kw,
            created_at=now or timezone.now(),
        )
        audit_record(
            kind="meter_point.registered",
            actor=registered_by,
            community=membership.community,
            meter_point=meter_point.pk,
        )
    return meter_point


METER_POINT_EDITABLE = (
    "label",
    "import_capacity_kw",
    "export_capacity_kw",
    "pv_kwp",
    "battery_kwh",
    "battery_kw",
    "flexible_load_kw",
)


@transaction.atomic
def meter_point_update(
    *, meter_point: MeterPoint, updated_by: User | None, **changes: Any
) -> MeterPoint:
    """The member (or the community's manager) changes a meter point's label, capacity or assets.

    The bus is not among the fields: only `meter_point_assign_bus` sets it. A member who changes
    the capacity of an approved meter point sends it back to pending: the approved capacities
    are the manager's, and trading and settlement rely on them.
    """
    unknown = set(changes) - set(METER_POINT_EDITABLE)
    if unknown:
        raise ApplicationError(
            ErrorCode.NOT_EDITABLE, f"Cannot change {', '.join(sorted(unknown))}.", field=None
        )
    meter_point = MeterPoint.objects.select_related("membership__community").get(pk=meter_point.pk)
    community = meter_point.membership.community
    if updated_by is not None and not permissions.can_edit_meter_point(updated_by, meter_point):
        raise ApplicationError(
            ErrorCode.PERMISSION_DENIED, "This is not your meter point.", field="meter_point"
        )
    values = {field: getattr(meter_point, field) for field in METER_POINT_EDITABLE}
    values.update(changes)
    meter_point_check_values(**values)
    values["label"] = values["label"].strip()
    changed = [
        field for field in METER_POINT_EDITABLE if getattr(meter_point, field) != values[field]
    ]
    if set(CAPACITY_FIELDS) & set(changed):
        check_max_connection(
            community=community,
            import_capacity_kw=values["import_capacity_kw"],
            export_capacity_kw=values["export_capacity_kw"],
        )
    for field in changed:
        setattr(meter_point, field, values[field])
    by_manager = updated_by is None or permissions.can_manage(updated_by, community)
    if (
        set(CAPACITY_FIELDS) & set(changed)
        and not by_manager
        and meter_point.status == MeterPointStatus.APPROVED
    ):
        meter_point.status = MeterPointStatus.PENDING
        meter_point.status_reason = "The member changed its capacity; awaiting approval again."
        changed += ["status", "status_reason"]
    if changed:
        meter_point.save(update_fields=changed)
        audit_record(
            kind="meter_point.updated",
            actor=updated_by,
            community=community,
            meter_point=meter_point.pk,
            fields=changed,
        )
    return meter_point


def check_bus(*, community: Community, bus: int) -> None:
    """Raise unless the bus is a connection bus of the community's grid model (forms use it)."""
    from grid.models import GridModel  # grid depends on accounts' models, not the reverse

    grid_model = GridModel.objects.filter(community=community).first()
    if grid_model is None:
        raise ApplicationError(
            ErrorCode.INVALID_NETWORK, "The community has no grid model yet.", field="bus"
        )
    if bus not in grid_model.connection_buses:
        raise ApplicationError(
            ErrorCode.UNKNOWN_BUS,
            f"Bus {bus} is not a connection bus of the community's grid model.",
            field="bus",
        )


def check_elements(*, community: Community, bus: int, elements: Sequence[str]) -> list[str]:
    """The named network elements, normalised ("load 3"), each an element on ``bus`` of the
    community's network; raises naming the first that is not."""
    from grid.models import GridModel

    grid_model = GridModel.objects.filter(community=community).first()
    known: dict[str, int] = grid_model.elements if grid_model is not None else {}
    names = []
    for raw in elements:
        name = " ".join(str(raw).split())
        if not name:
            continue
        if known.get(name) != bus:
            where = f"on bus {bus}" if name in known else "in the community's network"
            raise ApplicationError(
                ErrorCode.UNKNOWN_BUS,
                f"{name!r} is not a load or generator {where} (e.g. 'load 3', 'sgen 1').",
                field="network_elements",
            )
        names.append(name)
    return sorted(set(names))


@transaction.atomic
def meter_point_assign_bus(
    *,
    meter_point: MeterPoint,
    bus: int,
    assigned_by: User | None,
    network_elements: Sequence[str] | None = None,
    power_factor: Decimal | None = None,
) -> MeterPoint:
    """The manager connects a meter point to a bus of the community's grid model, optionally
    naming the network elements it stands for (else a share of the bus's) and its power factor.
    """
    community = meter_point.membership.community
    if assigned_by is not None:
        permissions.require_manage(assigned_by, community)
    check_bus(community=community, bus=bus)
    # Elements it already names must be on the new bus as well.
    elements = meter_point.network_elements if network_elements is None else network_elements
    meter_point.network_elements = check_elements(
        community=community, bus=bus, elements=elements or []
    )
    meter_point.bus = bus
    fields = ["bus", "network_elements"]
    if power_factor is not None:
        if not Decimal("0.5") <= power_factor <= Decimal("1"):
            raise ApplicationError(
                ErrorCode.OUT_OF_RANGE,
                "The power factor must be between 0.5 and 1.",
                field="power_factor",
            )
        meter_point.power_factor = power_factor
        fields.append("power_factor")
    meter_point.save(update_fields=fields)
    audit_record(
        kind="meter_point.bus_assigned",
        actor=assigned_by,
        community=community,
        meter_point=meter_point.pk,
        bus=bus,
        network_elements=list(meter_point.network_elements),
        power_factor=str(meter_point.power_factor),
    )
    return meter_point


@transaction.atomic
def meter_point_approve(
    *,
    meter_point: MeterPoint,
    approved_by: User | None,
    import_capacity_kw: Decimal | None = None,
    export_capacity_kw: Decimal | None = None,
    bus: int | None = None,
    network_elements: Sequence[str] | None = None,
    power_factor: Decimal | None = None,
    now: datetime | None = None,
) -> MeterPoint:
    """A manager of the community approves a meter point with its capacities and its place on
    the network; from then on it may post, bid, report readings and be settled.

    Capacities left out keep the declared ones; either must be above 0 and at most the
    community's ``max_connection_kw``. In a community with a grid model the meter point needs
    a bus (given here or assigned before), and the named network elements must be on it.
    Approving again (e.g. with new capacities) is allowed; the member is told each time.
    """
    meter_point = (
        MeterPoint.objects.select_related("membership__community")
        .select_for_update(of=("self",))
        .get(pk=meter_point.pk)
    )
    community = meter_point.membership.community
    if approved_by is not None:
        permissions.require_manage(approved_by, community)
    if meter_point.membership.status not in (MembershipStatus.APPROVED, MembershipStatus.SUSPENDED):
        raise ApplicationError(
            ErrorCode.NOT_APPROVED,
            "The meter point's membership is not approved.",
            field="membership",
        )
    imported = meter_point.import_capacity_kw if import_capacity_kw is None else import_capacity_kw
    exported = meter_point.export_capacity_kw if export_capacity_kw is None else export_capacity_kw
    for field, value in (("import_capacity_kw", imported), ("export_capacity_kw", exported)):
        if value <= 0:
            raise ApplicationError(
                ErrorCode.OUT_OF_RANGE, "Capacity must be greater than 0 kW.", field=field
            )
    check_max_connection(
        community=community, import_capacity_kw=imported, export_capacity_kw=exported
    )
    from grid.models import GridModel  # grid depends on accounts' models, not the reverse

    has_grid = GridModel.objects.filter(community=community).exists()
    place = meter_point.bus if bus is None else bus
    if has_grid and place is None:
        raise ApplicationError(
            ErrorCode.UNKNOWN_BUS,
            "Choose the bus of the community's network this meter point is connected to.",
            field="bus",
        )
    if bus is not None or (network_elements is not None and place is not None):
        assert place is not None
        meter_point_assign_bus(
            meter_point=meter_point,
            bus=place,
            assigned_by=approved_by,
            network_elements=network_elements,
            power_factor=power_factor,
        )
    elif power_factor is not None:
        raise ApplicationError(
            ErrorCode.REQUIRED, "Give the bus with the power factor.", field="bus"
        )
    meter_point.import_capacity_kw = imported
    meter_point.export_capacity_kw = exported
    meter_point.status = MeterPointStatus.APPROVED
    meter_point.status_reason = ""
    meter_point.decided_at = now or timezone.now()
    meter_point.decided_by = approved_by
    meter_point.save(
        update_fields=[*CAPACITY_FIELDS, "status", "status_reason", "decided_at", "decided_by"]
    )
    audit_record(
        kind="meter_point.approved",
        actor=approved_by,
        community=community,
        meter_point=meter_point.pk,
        import_capacity_kw=str(imported),
        export_capacity_kw=str(exported),
        bus=meter_point.bus,
    )
    announce(Event.METER_POINT_APPROVED, meter_point.pk)
    return meter_point


@transaction.atomic
def meter_point_reject(
    *,
    meter_point: MeterPoint,
    rejected_by: User | None,
    reason: str = "",
    now: datetime | None = None,
) -> MeterPoint:
    """A manager refuses a meter point (not this community's network, a capacity no connection
    agreement backs); it can no longer trade until approved."""
    meter_point = (
        MeterPoint.objects.select_related("membership__community")
        .select_for_update(of=("self",))
        .get(pk=meter_point.pk)
    )
    community = meter_point.membership.community
    if rejected_by is not None:
        permissions.require_manage(rejected_by, community)
    meter_point.status = MeterPointStatus.REJECTED
    meter_point.status_reason = reason.strip()[:500]
    meter_point.decided_at = now or timezone.now()
    meter_point.decided_by = rejected_by
    meter_point.save(update_fields=["status", "status_reason", "decided_at", "decided_by"])
    audit_record(
        kind="meter_point.rejected",
        actor=rejected_by,
        community=community,
        meter_point=meter_point.pk,
        reason=meter_point.status_reason,
    )
    return meter_point
