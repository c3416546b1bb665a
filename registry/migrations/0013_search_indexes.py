"""Indexes for the patient search on PostgreSQL: case-insensitive prefixes of study code and MRN, and
trigram matching of names (pg_trgm). SQLite (development, tests) keeps its plain indexes: this
migration does nothing there."""

from django.db import migrations

POSTGRESQL = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    # Match Django's istartswith: UPPER(column::text) LIKE UPPER('q') || '%'.
    "CREATE INDEX IF NOT EXISTS patient_code_prefix ON registry_patient "
    "(UPPER(study_code::text) text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS identifier_mrn_prefix ON registry_patientidentifier "
    "(UPPER(medical_record_number::text) text_pattern_ops)",
    # icontains: UPPER(column::text) LIKE '%' || UPPER('q') || '%', served by a trigram index.
    "CREATE INDEX IF NOT EXISTS identifier_name_trigram ON registry_patientidentifier "
    "USING gin (UPPER(full_name::text) gin_trgm_ops)",
]
REVERSE = [
    "DROP INDEX IF EXISTS identifier_name_trigram",
    "DROP INDEX IF EXISTS identifier_mrn_prefix",
    "DROP INDEX IF EXISTS patient_code_prefix",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("registry", "0012_missing_data_codes")]

    operations = [migrations.RunPython(_run(POSTGRESQL), _run(REVERSE), elidable=False)]
