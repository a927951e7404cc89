"""Seed the demo community: a manager, a regulator and a dozen prosumers on a real LV grid."""

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
    meter_point_assign_bus,
    meter_point_register,
)
from grid.models import GridModel
from grid.services import grid_model_use_reference
from marketplace.models import Community
from marketplace.services.communities import community_create

DEMO_SLUG = "sonnenfeld"
DEMO_PASSWORD = "peergrid-demo"  # noqa: S105 - published in the README on purpose
DEMO_NETWORK = "cigre_lv"
PROSUMER_COUNT = 12


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
            user = self._user(demo_email("prosumer", number), display_name=f"Prosumer {number}")
            membership = Membership.objects.filter(user=user, community=community).first()
            if membership is None:
                membership = membership_request(user=user, community=community)
            if membership.status != MembershipStatus.APPROVED:
                membership = membership_approve(membership=membership, decided_by=manager)
            if not membership.meter_points.exists():
                # Every third home has a battery, two in three have PV: a mixed neighbourhood.
                has_pv = number % 3 != 0
                meter_point = meter_point_register(
                    membership=membership,
                    label=f"Home {number}",
                    import_capacity_kw=Decimal("17.000"),
                    export_capacity_kw=Decimal("10.000") if has_pv else Decimal("3.000"),
                    pv_kwp=Decimal(4 + number % 5) if has_pv else Decimal("0"),
                    battery_kwh=Decimal("10") if number % 3 == 1 else Decimal("0"),
                    battery_kw=Decimal("5") if number % 3 == 1 else Decimal("0"),
                )
                if buses:
                    meter_point_assign_bus(
                        meter_point=meter_point,
                        bus=buses[(number - 1) % len(buses)],
                        assigned_by=manager,
                    )
        return created
