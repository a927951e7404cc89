"""The entries' hashes stay unique, as constraints: ``unique=True`` on a CharField also built a
``varchar_pattern_ops`` index per column on PostgreSQL, for LIKE queries no one runs on a hash,
and every entry written paid for both. The new unique indexes are built before the old ones go,
so the chain is never without its no-fork guarantee."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0007_metering_source'),
    ]

    operations = [
        migrations.AddConstraint(
            model_name='ledgerentry',
            constraint=models.UniqueConstraint(fields=('prev_hash',), name='ledger_entry_prev_hash_unique'),
        ),
        migrations.AddConstraint(
            model_name='ledgerentry',
            constraint=models.UniqueConstraint(fields=('hash',), name='ledger_entry_hash_unique'),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='hash',
            field=models.CharField(max_length=64),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='prev_hash',
            field=models.CharField(max_length=64),
        ),
    ]
