"""PeerGrid's REST API for third parties (version 1): DRF views over the shared services."""
