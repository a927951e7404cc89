"""Writes of the ledger app: readings, settlement, ledger postings and verification."""

from marketplace.ledger.services.ledger import (
    LedgerLine,
    ledger_account_for_community,
    ledger_account_for_member,
    ledger_post,
)
from marketplace.ledger.services.readings import (
    CSV_COLUMNS,
    ReadingReport,
    ReadingRow,
    meter_reading_accept,
    meter_readings_import_csv,
    meter_readings_submit,
    readings_simulate,
)
from marketplace.ledger.services.settlement import (
    SettlementResult,
    interval_settle,
    settlement_adjust,
)
from marketplace.ledger.services.verification import ledger_verify

__all__ = [
    "CSV_COLUMNS",
    "LedgerLine",
    "ReadingReport",
    "ReadingRow",
    "SettlementResult",
    "interval_settle",
    "ledger_account_for_community",
    "ledger_account_for_member",
    "ledger_post",
    "ledger_verify",
    "meter_reading_accept",
    "meter_readings_import_csv",
    "meter_readings_submit",
    "readings_simulate",
    "settlement_adjust",
]
