"""Site moves from registry to accounts, keeping its rows, its history and every reference."""


import concurrency.fields
import django.core.validators
import django.db.models.deletion
import simple_history.models
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_study_administrator_role'),
        ('registry', '0005_history_reasons_as_text'),
    ]

    operations = [
        # Site moves from registry to accounts (users, sites and roles form the bottom floor). The
        # tables stay where they are here; accounts.0006 renames them once every reference points here.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Site',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('code', models.CharField(max_length=32, unique=True, validators=[django.core.validators.RegexValidator('^[a-z0-9][a-z0-9_-]*$', "Use lower-case letters, digits, '-' or '_' (for example 'pumch' or 'lm').")])),
                        ('name', models.CharField(max_length=200)),
                        ('city', models.CharField(blank=True, max_length=100)),
                        ('country', models.CharField(blank=True, max_length=100)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('version', concurrency.fields.AutoIncVersionField(default=0, help_text='Incremented on every save; a stale version is refused.')),
                    ],
                    options={
                        'ordering': ['name'],
                        'db_table': 'registry_site',
                    },
                ),
                migrations.CreateModel(
                    name='HistoricalSite',
                    fields=[
                        ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                        ('code', models.CharField(db_index=True, max_length=32, validators=[django.core.validators.RegexValidator('^[a-z0-9][a-z0-9_-]*$', "Use lower-case letters, digits, '-' or '_' (for example 'pumch' or 'lm').")])),
                        ('name', models.CharField(max_length=200)),
                        ('city', models.CharField(blank=True, max_length=100)),
                        ('country', models.CharField(blank=True, max_length=100)),
                        ('created_at', models.DateTimeField(blank=True, editable=False)),
                        ('updated_at', models.DateTimeField(blank=True, editable=False)),
                        ('version', concurrency.fields.AutoIncVersionField(default=0, help_text='Incremented on every save; a stale version is refused.')),
                        ('history_id', models.AutoField(primary_key=True, serialize=False)),
                        ('history_date', models.DateTimeField(db_index=True)),
                        ('history_change_reason', models.TextField(null=True)),
                        ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                        ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'verbose_name': 'historical site',
                        'db_table': 'registry_historicalsite',
                        'verbose_name_plural': 'historical sites',
                        'ordering': ('-history_date', '-history_id'),
                        'get_latest_by': ('history_date', 'history_id'),
                    },
                    bases=(simple_history.models.HistoricalChanges, models.Model),
                ),
                migrations.AlterField(
                    model_name='historicalsitemembership',
                    name='site',
                    field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='accounts.site'),
                ),
                migrations.AlterField(
                    model_name='sitemembership',
                    name='site',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='accounts.site'),
                ),
            ],
            database_operations=[],
        ),
    ]
