"""Writes for meter points: registration, edits of capacity and assets, the bus assignment."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts import permissions
from accounts.models import Membership, MembershipStatus, MeterPoint, User
from accounts.services.audit import audit_record
from config.errors import ApplicationError, ErrorCode
from marketplace.models import Community


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
) -> MeterPoint:
    """A member registers a grid connection; the manager maps it to a bus afterwards."""
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

    The bus is not among the fields: only `meter_point_assign_bus` sets it.
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
    for field in changed:
        setattr(meter_point, field, values[field])
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


@transaction.atomic
def meter_point_assign_bus(
    *, meter_point: MeterPoint, bus: int, assigned_by: User | None
) -> MeterPoint:
    """The manager connects a meter point to a bus of the community's grid model."""
    community = meter_point.membership.community
    if assigned_by is not None:
        permissions.require_manage(assigned_by, community)
    check_bus(community=community, bus=bus)
    meter_point.bus = bus
    meter_point.save(update_fields=["bus"])
    audit_record(
        kind="meter_point.bus_assigned",
        actor=assigned_by,
        community=community,
        meter_point=meter_point.pk,
        bus=bus,
    )
    return meter_point
