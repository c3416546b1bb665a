"""Site now lives in accounts: references are re-pointed in the state only (the tables are unchanged)."""


import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_site_moves_from_registry'),
        ('registry', '0005_history_reasons_as_text'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='historicalpatient',
                    name='site',
                    field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='accounts.site'),
                ),
                migrations.AlterField(
                    model_name='patient',
                    name='site',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='patients', to='accounts.site'),
                ),
                migrations.AlterField(
                    model_name='study',
                    name='sites',
                    field=models.ManyToManyField(blank=True, related_name='studies', to='accounts.site'),
                ),
                migrations.DeleteModel(
                    name='HistoricalSite',
                ),
                migrations.DeleteModel(
                    name='Site',
                ),
            ],
            database_operations=[],
        ),
    ]
