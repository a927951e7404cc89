"""Scenario runs are listed read-only in the admin."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from simulation.models import SimulationRun


@pytest.mark.django_db
def test_runs_are_listed_and_cannot_be_typed_in(client: Client) -> None:
    SimulationRun.objects.create(name="Elecbay case 5.1", variant="flexible_control=game",
                                 scenario={"name": "x"}, intervals_total=48)  # fmt: skip
    admin = User.objects.create_superuser("op@example.org", "a-long-password-1")
    client.force_login(admin)
    listing = client.get("/admin/simulation/simulationrun/")
    assert listing.status_code == 200
    assert "flexible_control=game" in listing.content.decode()
    assert client.get("/admin/simulation/simulationrun/add/").status_code == 403
