"""Django app config for the simulation: prosumer agents, scenarios, reports and the live demo."""

from django.apps import AppConfig


class SimulationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "simulation"
    verbose_name = "Simulation and agents"
