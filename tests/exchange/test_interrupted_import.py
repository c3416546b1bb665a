"""Killing an import mid-way leaves no partial rows: the whole file is one transaction.

Runs the real command in a child process against a scratch database (PostgreSQL when the suite runs
on PostgreSQL, else an SQLite file), kills it with SIGKILL once it is writing, and looks.
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
def scratch_database(tmp_path):
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        yield f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
        return
    import psycopg2

    config = settings.DATABASES["default"]
    name = f"scratch_import_{uuid.uuid4().hex[:8]}"
    params = {
        "host": config["HOST"] or "127.0.0.1",
        "port": config["PORT"] or 5432,
        "user": config["USER"],
        "dbname": "postgres",
    }
    admin = psycopg2.connect(**params)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    yield f"postgres://{config['USER']}@{params['host']}:{params['port']}/{name}"
    admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def manage(url: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        **kwargs,
    )


def count(url: str, expression: str) -> str:
    return manage(url, "shell", "-c", f"print({expression})").stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_killing_an_import_midway_leaves_nothing_behind(scratch_database, tmp_path):
    url = scratch_database
    manage(url, "migrate", "--noinput")
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
    while count(url, "__import__('exchange.models').models.ImportBatch.objects.count()") == "0":
        assert child.poll() is None, (
            "the import finished before it could be interrupted; make the file bigger"
        )
        assert time.monotonic() < deadline
        time.sleep(0.3)
    time.sleep(2)  # well inside the rows
    assert child.poll() is None, "the import finished before it could be interrupted; make the file bigger"
    child.kill()
    child.wait()
    assert count(url, "__import__('registry.models').models.Patient.objects.count()") == "0"
    assert count(url, "__import__('registry.models').models.Patient.history.count()") == "0"
    status = count(url, "__import__('exchange.models').models.ImportBatch.objects.get().status")
    assert status == "running", "the batch row is the trace of the interrupted import"
    # The next import (or the import page) sees that its process is gone and says so.
    marked = count(url, "__import__('exchange.batches').batches.batches_mark_interrupted()")
    assert marked == "1"
    status = count(url, "__import__('exchange.models').models.ImportBatch.objects.get().status")
    assert status == "interrupted"
