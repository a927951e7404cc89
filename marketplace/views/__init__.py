"""The prosumer's web pages: dashboard, board and trades (see ``marketplace.urls``)."""
