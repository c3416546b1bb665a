"""The recommended PostgreSQL deployment: an owner role for migrations, an application role for the web.

The history tables are append-only through a trigger (``audit.immutability``), but a role that owns
the tables or is a superuser can still ``TRUNCATE`` them, ``ALTER TABLE … DISABLE TRIGGER`` or set
``session_replication_role = replica`` (which skips triggers). So the web server connects as an
application role that is neither: it may read and write the case-record tables and only read and
add rows to the audit tables; it cannot truncate, alter or own anything.

- The owner role (``--owner-role``) owns the tables: run ``migrate`` as it.
- The application role (``--app-role``) is what ``DATABASE_URL`` of the running server names.
After each ``migrate`` the grants are renewed for new tables (automatically when
``DATABASE_APP_ROLE`` is set, or by running ``manage.py database_roles`` again).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.db import connections

from .immutability import audit_tables

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _role(name: str) -> str:
    if not ROLE_NAME.match(name):
        raise ValueError(f"{name!r} is not a plain PostgreSQL role name (lower case letters, digits, _).")
    return name


def create_role_sql(app_role: str, *, database: str, password: str | None) -> list[str]:
    """Create the application role (once, as a superuser): it can sign in and nothing more."""
    role = _role(app_role)
    login = "LOGIN" + (" PASSWORD %(password)s" if password else "")
    return [
        f"CREATE ROLE {role} {login} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT",
        f'GRANT CONNECT ON DATABASE "{database}" TO {role}',
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"REVOKE CREATE ON SCHEMA public FROM {role}",
    ]


def grant_sql(app_role: str, tables: list[str], *, audit: set[str], sequences: list[str]) -> list[str]:
    """Table by table: the audit tables SELECT and INSERT only; the others SELECT, INSERT, UPDATE, DELETE.

    Nothing grants TRUNCATE, TRIGGER, REFERENCES or ownership; every statement starts from REVOKE ALL,
    so re-running it also takes back anything granted by hand.
    """
    role = _role(app_role)
    statements = []
    for table in tables:
        quoted = '"' + table.replace('"', '""') + '"'
        statements.append(f"REVOKE ALL ON TABLE {quoted} FROM {role}")
        rights = "SELECT, INSERT" if table in audit else "SELECT, INSERT, UPDATE, DELETE"
        statements.append(f"GRANT {rights} ON TABLE {quoted} TO {role}")
    for sequence in sequences:
        statements.append(f'GRANT USAGE, SELECT ON SEQUENCE "{sequence}" TO {role}')
    return statements


def current_grants(app_role: str, using: str = "default") -> list[str]:
    """The grant statements for every table of the database as it is now."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        tables = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY sequencename"
        )
        sequences = [row[0] for row in cursor.fetchall()]
    return grant_sql(app_role, tables, audit=set(audit_tables()), sequences=sequences)


def apply(statements: list[str], *, params: dict | None = None, using: str = "default") -> None:
    with connections[using].cursor() as cursor:
        for statement in statements:
            cursor.execute(statement, params if "%(" in statement else None)


def renew_grants_after_migrate(using: str = "default", **kwargs) -> None:
    """post_migrate: renew the application role's grants for tables a migration added."""
    app_role = getattr(settings, "DATABASE_APP_ROLE", "")
    if app_role and connections[using].vendor == "postgresql":
        apply(current_grants(app_role, using), using=using)
