"""Shared fixtures: paths to the shared reference material."""

import collections
import os
from pathlib import Path

import pytest


def _find_shared_dir() -> Path | None:
    """The workplace's shared reference material: $REGISTRY_SHARED_DIR, ../shared beside the checkout,
    or the workplace's own copy (a clean clone elsewhere, as CI makes, has no ../shared)."""
    candidates = [
        os.environ.get("REGISTRY_SHARED_DIR"),
        Path(__file__).resolve().parent.parent.parent / "shared",
        "/work/shared",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "reference").is_dir():
            return Path(candidate)
    return None


SHARED_DIR = _find_shared_dir()


def pytest_configure(config):
    """Tests hash passwords with MD5, as Django's own test suite does: the production hasher's million
    PBKDF2 rounds cost 0.7 s per user here, and the suite creates users by the thousand (measured
    with py-spy: the CI run spent most of its time in pbkdf2). Sign-in itself is unchanged."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    if hasattr(config, "workerinput"):
        # An xdist worker's temporary directory lies in the run's (pytest keeps the last three runs):
        # the demo loads one worker built are replayed by the other from there (tests/replay.py).
        os.environ["REGISTRY_REPLAY_DIR"] = str(Path(config.option.basetemp).parent / "replay")


def shared_fixture_group(item: pytest.Item) -> str | None:
    """The package or module whose tests share a fixture this test uses, built once for them.

    A package-scoped fixture of ours (the demo studies of tests/reports) groups its whole package; a
    module-scoped one (a report run, the R oracle's batch, the access matrix's world) the module.
    Fixtures of plugins (pytest-django's) do not count: their ``baseid`` is empty.
    """
    module = item.nodeid.split("::")[0]
    group = None
    for fixturedefs in item._fixtureinfo.name2fixturedefs.values():
        fixturedef = fixturedefs[-1]
        if not fixturedef.baseid:
            continue
        if fixturedef.scope == "package":
            return fixturedef.baseid
        if fixturedef.scope in ("module", "class"):
            group = module
    return group


def pytest_itemcollected(item):
    """Under ``--dist loadgroup`` (pyproject.toml) the tests sharing a module- or package-scoped
    fixture run on one xdist worker, so the fixture is built once, not once per worker that
    happened to receive some of them (plain ``--dist load`` split the report-PDF module, the
    R-oracle batch and the demo studies between both workers, each building them). xdist sends the
    largest groups first; the other tests are balanced one by one."""
    group = shared_fixture_group(item)
    if group is not None:
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """xdist 3.8 tells its scheduler a test's group by appending ``@group`` to ``item._nodeid``, which
    pytest 9 no longer reads (the node id is ``item._id``), so no group reached the scheduler and
    loadgroup balanced test by test. Until xdist follows, the suffix is written where pytest 9 keeps it."""
    if not getattr(config.option, "loadgroup", False):  # set in xdist workers under --dist loadgroup
        return
    from _pytest.nodeid import NodeId  # imported here: only xdist workers under pytest 9 need it

    seen = collections.Counter(item.nodeid for item in items)
    for item in items:
        nodeid = item.nodeid
        if seen[nodeid] > 1:
            # schemathesis 4.32 gives every operation of a test one node id under pytest 9; xdist's
            # group scheduler keys tests by node id and would run one of them: the name tells them apart.
            nodeid = f"{nodeid.split('::')[0]}::{item.name}"
        mark = item.get_closest_marker("xdist_group")
        if mark is not None:
            nodeid = f"{nodeid}@{mark.args[0]}"
        if nodeid != item.nodeid:
            item._id = NodeId.parse(nodeid)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test databases are built from the models (``--no-migrations`` in pyproject.toml): running
    the 75 migrations cost each xdist worker ~17 s of CPU rendering model states (cProfile:
    ``render_multiple`` 33 of 38 s), building the tables from the models ~1 s. What the migrations
    add that no model declares is the PostgreSQL search indexes of registry 0013, applied here from
    that migration, so the search tests still read its plans. The migrations themselves are applied
    by ``.ci/run`` to a fresh PostgreSQL and a fresh SQLite database, and ``makemigrations --check``
    keeps them equal to the models."""
    from importlib import import_module

    from django.db import connections

    search_indexes = import_module("registry.migrations.0013_search_indexes")
    with django_db_blocker.unblock():
        for connection in connections.all():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    for statement in search_indexes.POSTGRESQL:
                        cursor.execute(statement)
    yield


@pytest.fixture(autouse=True)
def _axes_only_where_tested(request, settings):
    """django-axes needs the request in authenticate(); tests that sign in with client.login() turn
    it off. Tests marked ``axes`` (and the browser tests, which sign in through the page) keep it."""
    if request.node.get_closest_marker("axes") is None and request.node.get_closest_marker("browser") is None:
        settings.AXES_ENABLED = False


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if SHARED_DIR is None:
        pytest.fail("shared reference material not found: set REGISTRY_SHARED_DIR to the shared/ folder")
    return SHARED_DIR


@pytest.fixture(scope="module")
def lm_demo(django_db_setup, django_db_blocker):
    """The LM demo cohort in each test module that asks, rolled back afterwards: loaded once per run
    and replayed after (``tests.replay``)."""
    from django.db import transaction

    from tests.replay import load_demo_replayed

    with django_db_blocker.unblock(), transaction.atomic():
        load_demo_replayed(only=["lm"])
        yield
        transaction.set_rollback(True)
