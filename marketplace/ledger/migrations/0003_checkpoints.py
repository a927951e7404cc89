"""Signed checkpoints outside the ledger tables, and TRUNCATE refused on PostgreSQL.

The checkpoint table is append-only like the entries (row triggers refuse UPDATE and DELETE on
PostgreSQL, UPDATE on SQLite). A statement-level trigger refuses TRUNCATE on entries,
transactions and checkpoints: a TRUNCATE fires no row trigger, so 0002 did not stop it. The test
suite's flush still empties them, in a transaction that sets ``session_replication_role`` (which
takes a superuser, see conftest.py), so the guard cannot be switched off by the application role.
"""

import django.utils.timezone
from django.db import migrations, models

APPEND_ONLY = ("ledger_ledgercheckpoint",)
NO_TRUNCATE = ("ledger_ledgerentry", "ledger_ledgertransaction", "ledger_ledgercheckpoint")


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for table in APPEND_ONLY:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();"
            )
        for table in NO_TRUNCATE:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();"
            )
    elif vendor == "sqlite":
        for table in APPEND_ONLY:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'ledger history is append-only: UPDATE on "
                f"{table} refused'); END;"
            )


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for table in NO_TRUNCATE:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};")
        for table in APPEND_ONLY:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};")
    elif vendor == "sqlite":
        for table in APPEND_ONLY:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only;")


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0002_append_only_triggers'),
    ]

    operations = [
        migrations.CreateModel(
            name='LedgerCheckpoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField(default=django.utils.timezone.now)),
                ('head_sequence', models.PositiveBigIntegerField(unique=True)),
                ('head_hash', models.CharField(max_length=64)),
                ('entry_count', models.PositiveBigIntegerField()),
                ('credit_total', models.DecimalField(decimal_places=2, max_digits=14)),
                ('mac', models.CharField(max_length=64)),
            ],
            options={
                'ordering': ('-head_sequence',),
                'get_latest_by': 'head_sequence',
            },
        ),
        migrations.AddField(
            model_name='ledgerverification',
            name='checkpoint_sequence',
            field=models.PositiveBigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='ledgerverification',
            name='problem',
            field=models.CharField(blank=True, choices=[('edited', 'An entry was edited'), ('link_broken', 'An entry was removed or inserted'), ('forged_append', 'An entry after the last checkpoint is not signed'), ('tail_deleted', 'Entries up to the last checkpoint are missing'), ('truncated', 'The ledger is empty but a checkpoint says otherwise'), ('rewritten', 'The chain does not end where the checkpoint says'), ('unbalanced', 'A transaction does not sum to zero'), ('checkpoint_forged', 'A checkpoint is not signed with the ledger key'), ('checkpoint_removed', 'Checkpoints were removed from the database')], max_length=20),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
