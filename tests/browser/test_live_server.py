"""The browser tests' live server on SQLite serves every request on the test's own connection."""

import pytest
from django.db import connection, connections

pytestmark = pytest.mark.django_db(transaction=True)


def test_on_sqlite_the_live_server_shares_the_test_connection(live_server):
    """Else each server thread opens its own connection to the shared-cache memory database, and two
    requests at once fail on its table locks (conftest.live_server)."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL gives each server thread its own connection, as in production")
    assert live_server.thread.connections_override.get("default") is connections["default"]
