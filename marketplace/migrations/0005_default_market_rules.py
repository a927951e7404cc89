"""Give every community without market rules the default version (admin-added communities had
none, so their rules page failed and the interval pipeline could not open their intervals)."""

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def add_default_rules(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    community_model = apps.get_model("marketplace", "Community")
    rules_model = apps.get_model("marketplace", "MarketRules")
    for community in community_model.objects.filter(rules__isnull=True):
        rules_model.objects.create(community=community)


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0004_community_horizon_due_at")]

    operations = [migrations.RunPython(add_default_rules, migrations.RunPython.noop)]
