"""The demo loads' replay (``tests.replay``) gives back exactly the rows the load wrote, and runs the
load again whenever it cannot."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection, models, transaction

from accounts.services import system_user
from analytics.reports.invalidation import report_fingerprint
from registry.models import Patient
from registry.services import record_save
from tests import factories as f
from tests import replay

pytestmark = pytest.mark.django_db

_keys = itertools.count()


def _key(name: str) -> str:
    """A key no other test (nor another run of this one) has used in this process or this run."""
    return f"{__name__} {name} {os.getpid()} {next(_keys)} {dt.datetime.now().isoformat()}"


def _every_table() -> dict[str, tuple]:
    """Rows, highest key and a digest of every value, per table."""
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor if connection.vendor == "postgresql" else wrapper
        return {table.name: replay._state(cursor, table) for table in replay._tables()}


def _in_rolled_back_savepoint(function):
    with transaction.atomic():
        result = function()
        transaction.set_rollback(True)
    return result


def _study_with_records() -> None:
    """Records through the services (history rows, versions, JSON, decimals, moments)."""
    actor = system_user()
    patient = f.PatientFactory(study=f.StudyFactory(code="replayed"))
    lp = f.LumbarPunctureFactory(
        patient=patient, opening_pressure_mmh2o=None, missing_codes={"opening_pressure_mmh2o": "ND"}
    )
    csf = f.CsfResultFactory(lumbar_puncture=lp, protein_g_per_l=Decimal("0.45"))
    csf.ngs_findings = "written twice: 'quotes', % and \\ and a\nnewline, \\N, é 中"
    record_save(csf, actor=actor, reason="Replayed")


def test_a_replay_writes_every_row_the_build_wrote_value_for_value():
    key = _key("records")
    built = []

    def build():
        built.append(1)
        _study_with_records()

    def first():
        assert replay.replayed(key, build) is False
        return _every_table(), Patient.objects.get(study__code="replayed").study_id

    after_build, study_id = _in_rolled_back_savepoint(first)
    assert not Patient.objects.filter(study__code="replayed").exists()
    # A report run kept from the first build's data would be found under these tokens.
    kept_under = report_fingerprint(study_id, None)

    def second():
        assert replay.replayed(key, build) is True
        return _every_table(), report_fingerprint(study_id, None)

    replayed_tables, fingerprint = _in_rolled_back_savepoint(second)
    assert replayed_tables == after_build
    assert fingerprint != kept_under  # the replay replaced the tokens, as the build's writes did
    assert built == [1]


def test_a_database_in_another_state_builds_again():
    key = _key("other state")
    built = []

    def build():
        built.append(1)
        f.StudyFactory(code="replayed")

    _in_rolled_back_savepoint(lambda: replay.replayed(key, build))
    f.SiteFactory(code="elsewhere")  # a row the first build did not find
    assert _in_rolled_back_savepoint(lambda: replay.replayed(key, build)) is False
    assert built == [1, 1]


def test_a_build_that_changes_a_row_it_found_is_never_replayed():
    site = f.SiteFactory(code="north", name="North")
    key = _key("changes")
    built = []

    def build():
        built.append(1)
        models.QuerySet(type(site)).filter(pk=site.pk).update(name=f"North {len(built)}")  # past history

    for _ in range(2):
        assert _in_rolled_back_savepoint(lambda: replay.replayed(key, build)) is False
    assert built == [1, 1]


def test_the_other_worker_replays_from_the_file_the_first_one_wrote(monkeypatch, tmp_path):
    monkeypatch.setenv("REGISTRY_REPLAY_DIR", str(tmp_path / "replay"))
    key = _key("file")
    built = []

    def build():
        built.append(1)
        _study_with_records()

    after_build = _in_rolled_back_savepoint(lambda: (replay.replayed(key, build), _every_table())[1])
    monkeypatch.delitem(replay._memory, key)  # a process that never built it
    assert [path.suffix for path in (tmp_path / "replay").iterdir()] == [".pickle"]
    assert _in_rolled_back_savepoint(lambda: (replay.replayed(key, build), _every_table())) == (
        True,
        after_build,
    )
    assert built == [1]


def test_content_types_written_again_do_not_count_unless_the_rows_refer_to_them():
    key, refers = _key("content types"), _key("a permission")
    built = []

    def build():
        built.append(1)
        f.StudyFactory(code="replayed")

    def permission():
        built.append(2)
        patient = ContentType.objects.get_for_model(Patient)
        Permission.objects.create(codename="replayed", name="Replayed", content_type=patient)

    _in_rolled_back_savepoint(lambda: (replay.replayed(key, build), replay.replayed(refers, permission)))
    # After a transactional test Django writes the content types again under new keys.
    ContentType.objects.create(app_label="elsewhere", model="written_again")
    assert _in_rolled_back_savepoint(lambda: replay.replayed(key, build)) is True
    assert _in_rolled_back_savepoint(lambda: replay.replayed(refers, permission)) is False
    assert built == [1, 2, 2]
