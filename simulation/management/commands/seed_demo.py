"""Seed the demo community: a manager, a regulator, a dozen robot homes and two community plants.

The homes (the demo logins ``prosumer01`` … ``prosumer12``) and the plants are the demo's own
robots (``SimulatedHousehold``): batteries, water heaters, EVs and PV in a mixed neighbourhood,
a community wind turbine and a biomass CHP plant on SimBench's profiles. Anyone else who joins
Sonnenfeld trades by hand.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, MembershipStatus, User
from accounts.services import (
    community_manager_add,
    membership_approve,
    membership_request,
    meter_point_approve,
    meter_point_register,
)
from grid.models import GridModel
from grid.services import grid_model_use_reference
from marketplace.models import Community
from marketplace.services.communities import community_create
from simulation.demo import DEMO_SLUG, robot_household_add

DEMO_PASSWORD = "peergrid-demo"  # noqa: S105 - published in the README on purpose
DEMO_NETWORK = "cigre_lv"
PROSUMER_COUNT = 12
# The community's own plants: (login, name, asset limits). Costs sit between feed-in and retail.
PLANTS = (
    ("wind", "Sonnenfeld community wind", {"kind": "wind", "kw": 8.0, "cost_per_kwh": 0.09}),
    ("chp", "Sonnenfeld biomass CHP", {"kind": "chp", "kw": 3.0, "cost_per_kwh": 0.14}),
)


def home_assets(number: int) -> dict[str, Any]:
    """Home ``number``'s assets: two in three have PV, every third a battery, half a water
    heater, every fourth an EV; three household profiles and two pricing strategies."""
    assets: dict[str, Any] = {
        "load_profile": ("H0-A", "H0-B", "H0-C")[number % 3],
        "peak_kw": 3.0 + number % 4 * 0.5,
        "pv_kwp": float(4 + number % 5) if number % 3 != 0 else 0.0,
        "strategy": "zi-c" if number % 2 else "truthful",
    }
    if number % 3 == 1:
        assets["battery"] = {"capacity_kwh": 10.0, "power_kw": 5.0}
    if number % 2 == 0:
        assets["water_heater"] = {"volume_l": 200.0, "power_kw": 2.0, "litres_per_day": 120.0}
    if number % 4 == 0:
        assets["ev"] = {"charger_kw": 7.0, "energy_need_kwh": 10.0}
    return assets


def demo_email(role: str, number: int | None = None) -> str:
    return f"{role}{number:02d}@peergrid.local" if number is not None else f"{role}@peergrid.local"


class Command(BaseCommand):
    help = "Create (or reuse) the demo community with its manager, regulator and prosumers."

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = int(options["verbosity"])
        with transaction.atomic():
            created = self._seed()
        verb = "Created" if created else "Reused"
        self.stdout.write(self.style.SUCCESS(f"{verb} the demo community '{DEMO_SLUG}'."))
        self.stdout.write(f"Demo logins (password {DEMO_PASSWORD}):")
        for email, what in (
            (demo_email("admin"), "superuser"),
            (demo_email("manager"), "community manager (admin pages)"),
            (demo_email("regulator"), "regulator (dashboards)"),
            (demo_email("prosumer", 1), f"prosumer (and {PROSUMER_COUNT - 1} more up to 12)"),
            (demo_email("wind"), "the community wind turbine (a member like any other)"),
        ):
            self.stdout.write(f"  {email:<32} {what}")

    def _step(self, message: str) -> None:
        if self.verbosity:
            self.stdout.write(f"  {message}")
            self.stdout.flush()

    def _user(self, email: str, **extra: Any) -> User:
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email, DEMO_PASSWORD, **extra)
        return user

    def _seed(self) -> bool:
        community = Community.objects.filter(slug=DEMO_SLUG).first()
        created = community is None
        if community is None:
            self._step(f"creating the community '{DEMO_SLUG}' and its market rules")
            community = community_create(
                name="Sonnenfeld Energy Community",
                slug=DEMO_SLUG,
                timezone="Europe/Berlin",
                currency="EUR",
                description=(
                    "A demo neighbourhood on the CIGRE low-voltage reference network: homes with "
                    "rooftop PV and batteries trading with each other every 15 minutes."
                ),
            )
        self._step("operator, community manager and regulator accounts")
        self._user(demo_email("admin"), is_staff=True, is_superuser=True, display_name="Operator")
        manager = self._user(demo_email("manager"), display_name="Demo community manager")
        community_manager_add(user=manager, community=community, added_by=None)
        self._user(demo_email("regulator"), is_regulator=True, display_name="Demo regulator")

        if not GridModel.objects.filter(community=community).exists():
            self._step(f"loading the {DEMO_NETWORK} reference network and its base-case power flow")
            grid_model_use_reference(community=community, name=DEMO_NETWORK)
        buses: list[int] = community.grid_model.connection_buses

        for number in range(1, PROSUMER_COUNT + 1):
            self._step(f"prosumer {number}/{PROSUMER_COUNT}: {demo_email('prosumer', number)}")
            assets = home_assets(number)
            battery = assets.get("battery", {})
            self._robot(
                community, manager, buses, number,
                email=demo_email("prosumer", number), name=f"Prosumer {number}",
                label=f"Home {number}", assets=assets,
                import_kw=Decimal("17.000"),
                export_kw=Decimal(str(assets["pv_kwp"] + battery.get("power_kw", 0.0) or 3.0)),
                pv_kwp=Decimal(str(assets["pv_kwp"])),
                battery_kwh=Decimal(str(battery.get("capacity_kwh", 0))),
                battery_kw=Decimal(str(battery.get("power_kw", 0))),
            )  # fmt: skip
        for offset, (login, name, plant) in enumerate(PLANTS, start=PROSUMER_COUNT + 1):
            self._step(f"community plant: {name}")
            self._robot(
                community, manager, buses, offset,
                email=demo_email(login), name=name, label=name, assets={"plant": plant},
                import_kw=Decimal("1.000"), export_kw=Decimal(str(plant["kw"])),
                pv_kwp=Decimal("0"), battery_kwh=Decimal("0"), battery_kw=Decimal("0"),
            )  # fmt: skip
        return created

    def _robot(
        self,
        community: Community,
        manager: User,
        buses: list[int],
        number: int,
        *,
        email: str,
        name: str,
        label: str,
        assets: dict[str, Any],
        import_kw: Decimal,
        export_kw: Decimal,
        pv_kwp: Decimal,
        battery_kwh: Decimal,
        battery_kw: Decimal,
    ) -> None:
        user = self._user(email, display_name=name)
        membership = Membership.objects.filter(user=user, community=community).first()
        if membership is None:
            membership = membership_request(user=user, community=community)
        if membership.status != MembershipStatus.APPROVED:
            membership = membership_approve(membership=membership, decided_by=manager)
        meter_point = membership.meter_points.order_by("pk").first()
        if meter_point is None:
            meter_point = meter_point_register(
                membership=membership,
                label=label,
                import_capacity_kw=import_kw,
                export_capacity_kw=export_kw,
                pv_kwp=pv_kwp,
                battery_kwh=battery_kwh,
                battery_kw=battery_kw,
            )
            # The demo's manager approves each connection as declared, on its bus.
            meter_point = meter_point_approve(
                meter_point=meter_point,
                approved_by=manager,
                bus=buses[(number - 1) % len(buses)] if buses else None,
            )
        # The demo's own logins are its robots; the seed never touches anyone else's meter point.
        robot_household_add(meter_point=meter_point, assets=assets)
