"""The moved Site tables take accounts' names (the rows, history, triggers and grants move with them)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_site_moves_from_registry"),
        ("registry", "0006_site_moves_to_accounts"),
    ]

    operations = [
        migrations.AlterModelTable(name="site", table=None),
        migrations.AlterModelTable(name="historicalsite", table=None),
    ]
