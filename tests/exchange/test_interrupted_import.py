"""Killing an import mid-way leaves no partial rows: the whole file is one transaction.

Runs the real command in a child process against a scratch copy of the test database (PostgreSQL
when the suite runs on PostgreSQL, else an SQLite file), kills it with SIGKILL once it is writing,
and looks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
PATIENTS = 150_000  # the set-based importer writes 6,000 patients in about a second


@pytest.fixture
def scratch_database(tmp_path, transactional_db):
    """A copy of this worker's empty test database (running the migrations again in a
    child process took 20 s): SQLite's backup API into a file, or PostgreSQL's CREATE DATABASE …
    TEMPLATE, which needs the template's connections closed. Transactional, so that nothing of the
    test's own is open while it is copied."""
    from django.db import connection, connections

    config = settings.DATABASES["default"]
    if connection.vendor == "sqlite":
        import sqlite3

        path = tmp_path / "scratch.sqlite3"
        connection.ensure_connection()
        with sqlite3.connect(path) as target:
            connection.connection.backup(target)
        yield f"sqlite:///{path}"
        return
    import psycopg2

    connection.close()
    name = f"scratch_import_{uuid.uuid4().hex[:8]}"
    params = {
        "host": config["HOST"] or "127.0.0.1",
        "port": config["PORT"] or 5432,
        "user": config["USER"],
        "dbname": "postgres",
    }
    admin = psycopg2.connect(**params)
    admin.autocommit = True
    template = connection.settings_dict["NAME"]
    connections.close_all()
    _wait_for_template_to_be_free(admin.cursor(), template)
    admin.cursor().execute(f'CREATE DATABASE {name} TEMPLATE "{template}"')
    yield f"postgres://{config['USER']}@{params['host']}:{params['port']}/{name}"
    admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def _wait_for_template_to_be_free(cursor, template: str, patience_s: float = 15.0) -> None:
    """CREATE DATABASE … TEMPLATE refuses while anyone else is connected to the template. Earlier
    tests of this xdist worker start processes on its test database (a Celery worker, gunicorn) that
    may still be closing, and live-server threads may hold a connection: give them time to go, then
    end the sessions that remain — nothing outside this worker uses its test database."""
    others = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    deadline, terminated = time.monotonic() + patience_s, False
    while True:
        cursor.execute(others, [template])
        if not cursor.fetchall():
            return
        if time.monotonic() > deadline:
            assert not terminated, f"sessions on {template} outlived pg_terminate_backend"
            cursor.execute(f"SELECT pg_terminate_backend(pid) FROM ({others}) AS lingering", [template])
            deadline, terminated = time.monotonic() + 5.0, True
        time.sleep(0.2)


def manage(url: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url}
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, **kwargs
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done


def count(url: str, sql: str) -> str:
    """One value read with plain SQL: a Django process per look (1-2 s each) made most of this test."""
    if url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30) as connection:
            row = connection.execute(sql).fetchone()
    else:
        import psycopg2

        with psycopg2.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute(sql)
            row = cursor.fetchone()
        connection.close()
    return str(row[0]) if row else ""


@pytest.mark.slow
def test_killing_an_import_midway_leaves_nothing_behind(scratch_database, tmp_path):
    url = scratch_database
    manage(
        url,
        "shell",
        "-c",
        "from accounts.services import system_user; from demo.common import "
        "ensure_sites_and_studies; ensure_sites_and_studies(actor=system_user())",
    )
    csv = tmp_path / "patients.csv"
    lines = ["study_code,site,sex,birth_year,index_admission_date"]
    lines += [f"K{i:05d},north,F,1990,2021-03-01" for i in range(PATIENTS)]
    csv.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "DATABASE_URL": url}
    child = subprocess.Popen(
        [sys.executable, "manage.py", "import_records", str(csv), "--study", "npsle"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while count(url, "SELECT count(*) FROM exchange_importbatch") == "0":
        assert child.poll() is None, (
            "the import finished before it could be interrupted; make the file bigger"
        )
        assert time.monotonic() < deadline
        time.sleep(0.3)
    time.sleep(2)  # well inside the rows
    assert child.poll() is None, "the import finished before it could be interrupted; make the file bigger"
    child.kill()
    child.wait()
    assert count(url, "SELECT count(*) FROM registry_patient") == "0"
    assert count(url, "SELECT count(*) FROM registry_historicalpatient") == "0"
    status = count(url, "SELECT status FROM exchange_importbatch")
    assert status == "running", "the batch row is the trace of the interrupted import"
    # The next import (or the import page) sees that its process is gone and says so.
    marked = manage(
        url, "shell", "-c", "from exchange.batches import batches_mark_interrupted as m; print(m())"
    )
    assert marked.stdout.strip().splitlines()[-1] == "1"
    status = count(url, "SELECT status FROM exchange_importbatch")
    assert status == "interrupted"
