"""Oversight: the regulators' read-only, anonymised dashboards over every community's market."""
