"""How the market's tables are stored on PostgreSQL (migration 0015)."""

from __future__ import annotations

import pytest
from django.db import connection


@pytest.mark.django_db
def test_trade_pages_keep_room_for_their_updates() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL storage parameter")
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", ["marketplace_trade"])
        (options,) = cursor.fetchone()
    assert "fillfactor=50" in (options or [])
