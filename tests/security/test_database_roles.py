"""Medium finding: append-only audit in the recommended deployment.

As the ``postgres`` superuser (what the README suggested) the application could TRUNCATE history,
``ALTER TABLE … DISABLE TRIGGER`` and set ``session_replication_role = replica`` — all three worked.
``manage.py database_roles`` makes the role the web server should connect as: neither owner nor
superuser. Connected as that role, each of the three is refused, and so are UPDATE and DELETE on
audit rows, while the registry's ordinary reads and writes still work.
"""

from __future__ import annotations

import os

import psycopg2
import pytest
from django.core.management import call_command
from django.db import connection

from audit.immutability import audit_tables

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="database roles are PostgreSQL's"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def app_role():
    name = f"registry_test_app_{os.getpid()}"
    call_command("database_roles", app_role=name, create=True, stdout=open(os.devnull, "w"))  # noqa: SIM115
    yield name
    with connection.cursor() as cursor:
        cursor.execute(f"DROP OWNED BY {name}")
        cursor.execute(f"DROP ROLE {name}")


def _as(role: str):
    settings = connection.settings_dict
    database = psycopg2.connect(
        dbname=settings["NAME"],
        user=role,
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
    )
    database.autocommit = True
    return database


def _refused(database, statement: str) -> str:
    with pytest.raises(psycopg2.Error) as refusal, database.cursor() as cursor:
        cursor.execute(statement)
    return str(refusal.value)


def test_app_role_cannot_truncate_disable_triggers_or_skip_them(app_role):
    history = "registry_historicalpatient"
    assert history in audit_tables()
    database = _as(app_role)
    assert "permission denied" in _refused(database, f"TRUNCATE {history}")
    assert "must be owner" in _refused(
        database, f"ALTER TABLE {history} DISABLE TRIGGER audit_rows_are_immutable"
    )
    assert "permission denied" in _refused(database, "SET session_replication_role = replica")
    assert "permission denied" in _refused(database, f"UPDATE {history} SET history_change_reason = 'x'")
    assert "permission denied" in _refused(database, f"DELETE FROM {history}")
    assert "permission denied" in _refused(database, "TRUNCATE audit_securityevent")
    assert "permission denied" in _refused(database, "CREATE TABLE escape_hatch (id int)")
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        assert cursor.fetchone() == (False, False, False)
        cursor.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user"
        )
        assert cursor.fetchone() == (0,)
    database.close()


def test_app_role_does_what_the_registry_needs(app_role):
    database = _as(app_role)
    with database.cursor() as cursor:
        cursor.execute(
            "INSERT INTO accounts_site (code, name, city, country, created_at, updated_at, version) "
            "VALUES ('roles', 'Roles test', 'Beijing', '', now(), now(), 1) RETURNING id"
        )
        site_id = cursor.fetchone()[0]
        cursor.execute("UPDATE accounts_site SET name = 'Renamed' WHERE id = %s", [site_id])
        cursor.execute(
            "INSERT INTO audit_securityevent (kind, occurred_at, username, path, detail) "
            "VALUES ('export', now(), 'role-test', '', '{}') RETURNING id"
        )
        event_id = cursor.fetchone()[0]
        cursor.execute("SELECT username FROM audit_securityevent WHERE id = %s", [event_id])
        assert cursor.fetchone() == ("role-test",)
        cursor.execute("DELETE FROM accounts_site WHERE id = %s", [site_id])
    assert "permission denied" in _refused(database, f"DELETE FROM audit_securityevent WHERE id = {event_id}")
    database.close()


def test_grants_are_renewed_after_migrate_when_the_app_role_is_set(app_role, settings):
    with connection.cursor() as cursor:
        cursor.execute(f"REVOKE ALL ON TABLE accounts_site FROM {app_role}")
    settings.DATABASE_APP_ROLE = app_role
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT has_table_privilege(%s, 'accounts_site', 'SELECT')", [app_role])
        assert cursor.fetchone() == (True,)
        cursor.execute("SELECT has_table_privilege(%s, 'accounts_historicalsite', 'UPDATE')", [app_role])
        assert cursor.fetchone() == (False,)
