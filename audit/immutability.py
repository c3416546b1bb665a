"""Audit rows are append-only: on PostgreSQL a trigger refuses UPDATE and DELETE on every history table.

The trigger is (re)created after each migrate for every django-simple-history table and for the
security and action events, so tables added by later migrations are covered too. The application's database
role therefore cannot rewrite history, whatever route a request takes. A trigger does not stop the
tables' owner or a superuser (TRUNCATE, DISABLE TRIGGER, session_replication_role): the web server
connects as a role that is neither (audit/database_roles.py, ``manage.py database_roles``).
"""

from __future__ import annotations

from django.apps import apps
from django.db import connections

FUNCTION = """
CREATE OR REPLACE FUNCTION audit_rows_are_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit rows of % cannot be changed or deleted', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

TRIGGER = """
CREATE OR REPLACE TRIGGER audit_rows_are_immutable
BEFORE UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION audit_rows_are_immutable();
"""


def audit_tables() -> list[str]:
    """Every history table (simple-history's Historical* models), security and action events, signatures,
    query messages."""
    tables = []
    for model in apps.get_models():
        if model.__name__.startswith("Historical") and hasattr(model, "history_id"):
            tables.append(model._meta.db_table)
    for label in (
        "audit.SecurityEvent",
        "audit.ActionEvent",
        "audit.ActionEventPatient",
        "review.ElectronicSignature",
        "review.QueryMessage",
    ):
        tables.append(apps.get_model(label)._meta.db_table)
    return sorted(set(tables))


def protect_audit_tables(using: str = "default", **kwargs) -> None:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    existing = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        cursor.execute(FUNCTION)
        for table in audit_tables():
            if table in existing:
                cursor.execute(TRIGGER.format(table=connection.ops.quote_name(table)))
