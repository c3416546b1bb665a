"""The import batch's site is now accounts.Site (state only: same table, same column)."""


import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    # Every reference must point at accounts.Site before registry forgets its own Site.
    run_before = [('registry', '0006_site_moves_to_accounts')]

    dependencies = [
        ('accounts', '0005_site_moves_from_registry'),
        ('exchange', '0003_interrupted_import_batches'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='importbatch',
                    name='site',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='imports', to='accounts.site'),
                ),
            ],
            database_operations=[],
        ),
    ]
