"""Leave room on the trade table's pages for the updates every trade gets after its insert.

Each interval's trades are written once by clearing (one COPY) and then updated in place: the
grid check sets each side's network use, confirmation sets the confirmed energy, curtailment
its amount and reason. None of those columns is indexed, so PostgreSQL could keep every new
row version on the same page (a HOT update) and skip the table's nine indexes; at the default
fillfactor of 100 the pages are full and next to none were (166 of 27,226 updates in a 1,000-home
simulation). At 50 each page keeps room for the next versions; a 1,000-row update took 2-7 ms
instead of 26-37 ms. PostgreSQL only (SQLite has no such setting); new pages only, nothing
is rewritten.
"""

from django.db import migrations

TABLE = "marketplace_trade"


def _set(apps, schema_editor, option: str) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(TABLE)} {option}")


def forwards(apps, schema_editor) -> None:
    _set(apps, schema_editor, "SET (fillfactor = 50)")


def backwards(apps, schema_editor) -> None:
    _set(apps, schema_editor, "RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("marketplace", "0014_bid_exclusion_reason"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
