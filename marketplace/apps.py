from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Marketplace"

    def ready(self) -> None:
        from marketplace.services.autopilot import autopilot_on_clock_replayed
        from marketplace.signals import clock_replayed

        # A replayed clock (``advance_intervals``) runs the members' autopilots as beat would.
        clock_replayed.connect(autopilot_on_clock_replayed, dispatch_uid="marketplace.autopilot")
