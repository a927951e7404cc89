"""Django app config for the simulation: prosumer agents, scenarios, reports and the live demo."""

from django.apps import AppConfig


class SimulationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "simulation"
    verbose_name = "Simulation and agents"

    def ready(self) -> None:
        # The market replays its clock without knowing who trades on it; the demo listens.
        from marketplace.signals import clock_replayed
        from simulation.demo import demo_on_clock_replayed

        clock_replayed.connect(demo_on_clock_replayed, dispatch_uid="simulation.demo")
