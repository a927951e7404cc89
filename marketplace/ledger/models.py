"""Meter readings, settlements and the hash-chained double-entry ledger."""
