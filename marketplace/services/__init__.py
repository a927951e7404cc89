"""Writes of the marketplace: each service is one transaction and enforces its rules."""
