from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "marketplace.ledger"
    label = "ledger"
    verbose_name = "Ledger, metering and settlement"

    def ready(self) -> None:
        from marketplace.ledger.keys import ledger_key

        # On first start: create the key file now, and refuse to start with a bad key rather
        # than fail at the first settlement.
        ledger_key()
