"""The market fixtures (community, interval, members) for these tests."""

from marketplace.tests.fixtures import alice, bob, carol, community, interval

__all__ = ["alice", "bob", "carol", "community", "interval"]
