"""A write makes stale only the reports that read it: its study's, for viewers who see its site."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache
from django.db import connection, transaction

from accounts.models import Site
from accounts.services import system_user
from analytics.reports import invalidation
from analytics.reports.invalidation import _OnCommit, invalidate, patients_key, site_key
from analytics.reports.runner import report_run
from protocols.models import Protocol
from registry.models import LumbarPuncture, Patient
from registry.services.bulk import bulk_record_create
from registry.services.records import record_delete, record_save
from tests import factories as f
from tests.reports.conftest import researcher

pytestmark = pytest.mark.django_db


def cached(study, viewer=None) -> bool:
    return report_run(study=study, filters={}, options={}, viewer=viewer)[1]


def touch(record) -> None:
    """An edit that changes nothing a report reads but is a real audited write."""
    record_save(record, actor=system_user(), reason="test: re-saved")


def test_a_write_to_lm_leaves_the_icans_report_cached_and_a_write_to_icans_does_not(demo):
    # ICANS (13 patients) rather than NPSLE (150): the same rule, a report a fifth as long to compute.
    icans, lm = demo["icans"], demo["lm"]
    assert not cached(icans)
    assert cached(icans)

    touch(LumbarPuncture.objects.filter(patient__study=lm).first())
    assert cached(icans), "an LM write leaves the ICANS report alone"

    touch(LumbarPuncture.objects.filter(patient__study=icans).first())
    assert not cached(icans), "an ICANS write recomputes the ICANS report"
    assert cached(icans)

    record_delete(LumbarPuncture.objects.filter(patient__study=icans).last(), actor=system_user(), reason="t")
    assert not cached(icans), "so does a deletion"


def test_a_write_at_one_site_leaves_viewers_of_other_sites_cached(demo):
    npsle = demo["npsle"]
    sites = list(Site.objects.filter(patients__study=npsle).distinct().order_by("code"))
    assert len(sites) >= 2, "the NPSLE demo spans sites, so scoping can be seen"
    first, second = sites[0], sites[1]
    first_viewer = researcher("first-site", first.code)
    second_viewer = researcher("second-site", second.code)
    assert not cached(npsle, first_viewer) and not cached(npsle, second_viewer) and not cached(npsle)

    touch(Patient.objects.filter(study=npsle, site=first).first())
    assert not cached(npsle, first_viewer), "the first site's viewer sees the write"
    assert not cached(npsle), "so does a viewer of every site"
    assert cached(npsle, second_viewer), "the second site's viewer does not"

    moved = Patient.objects.filter(study=npsle, site=first).first()
    moved.site = second
    touch(moved)
    assert not cached(npsle, first_viewer) and not cached(npsle, second_viewer), "a move stales both sites"


def test_bulk_writes_the_study_record_and_reference_data_invalidate_too(demo):
    icans, lm = demo["icans"], demo["lm"]
    assert not cached(icans)
    patient = Patient.objects.filter(study=icans).first()
    earlier = patient.lumbar_punctures.first().performed_at - dt.timedelta(days=1)
    bulk_record_create(
        [LumbarPuncture(patient=patient, performed_at=earlier)],
        actor=system_user(),
        reason="test: bulk",
    )
    assert not cached(icans), "a bulk insert recomputes its study's report"

    touch(lm)
    assert cached(icans), "another study's record leaves it alone"
    touch(icans)
    assert not cached(icans), "its own study record does not"

    touch(Protocol.objects.first())
    assert not cached(icans), "reference data (protocols) feeds every report"


def scheduled_replacements() -> list:
    """The report-token replacements waiting for this transaction's commit."""
    return [func for _, func, *_ in connection.run_on_commit if isinstance(func, _OnCommit)]


def test_a_transaction_replaces_its_tokens_once_on_commit_whatever_it_wrote():
    first, second, third = site_key(1, 1), site_key(1, 2), patients_key(1)
    invalidate([first, third])
    invalidate([second, third])
    try:
        with transaction.atomic():
            invalidate([first])
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    invalidate([first])
    replacements = scheduled_replacements()
    assert len(replacements) == 1, "one replacement on commit, not one per write"
    assert {first, second, third} <= replacements[0].keys
    tokens = cache.get_many([first, second, third])
    replacements[0]()
    after = cache.get_many([first, second, third])
    assert all(after[key] != tokens[key] for key in (first, second, third)), "every touched token is replaced"


def test_a_rolled_back_savepoint_does_not_take_the_later_writes_replacement_with_it(monkeypatch):
    # Start as a transaction whose first write is inside the savepoint (earlier fixtures may have written).
    monkeypatch.delitem(invalidation._PENDING, transaction.get_connection(), raising=False)
    before = scheduled_replacements()
    try:
        with transaction.atomic():
            invalidate([site_key(2, 1)])
            assert len(scheduled_replacements()) == len(before) + 1
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert scheduled_replacements() == before, "the rollback dropped the savepoint's replacement"
    invalidate([site_key(2, 2)])
    new = [func for func in scheduled_replacements() if func not in before]
    assert len(new) == 1, "the write after the rollback schedules its own replacement"
    assert new[0].keys == {site_key(2, 2)}


def test_a_transaction_replaces_a_token_once_until_it_reads_a_fingerprint(monkeypatch):
    monkeypatch.delitem(invalidation._PENDING, transaction.get_connection(), raising=False)
    replaced: list[list[str]] = []
    real = invalidation._replace
    monkeypatch.setattr(invalidation, "_replace", lambda keys: (replaced.append(list(keys)), real(keys)))
    first, second = site_key(3, 1), site_key(3, 2)
    with transaction.atomic():
        invalidate([first])
        invalidate([first, second])
        assert replaced == [[first], [second]], (
            "a token already replaced in the transaction waits for the commit"
        )
        fingerprint = invalidation.report_fingerprint(3, [1])
        invalidate([first])
        assert replaced[-1] == [first], (
            "after the transaction read a fingerprint, its next write replaces again"
        )
        assert invalidation.report_fingerprint(3, [1]) != fingerprint
        assert scheduled_replacements()[-1].keys == {first, second}


def test_a_transaction_reads_a_patients_study_and_site_once_and_again_after_a_move(
    django_assert_num_queries, monkeypatch
):
    here, there = f.SiteFactory(code="here"), f.SiteFactory(code="there")
    study = f.StudyFactory(code="owners", sites=[here, there])
    patient = f.PatientFactory(study=study, site=here)
    lumbar_puncture = f.LumbarPunctureFactory(patient=patient)
    # A transaction of its own: forget what the factories' writes read.
    monkeypatch.delitem(invalidation._PENDING, transaction.get_connection(), raising=False)
    with transaction.atomic():
        with django_assert_num_queries(1):
            for _ in range(3):
                keys = invalidation.keys_for(lumbar_puncture, stored=False)
        assert keys == {patients_key(study.pk), site_key(study.pk, here.pk)}
        patient.site = there
        touch(patient)
        assert invalidation.keys_for(lumbar_puncture, stored=False) == {
            patients_key(study.pk),
            site_key(study.pk, there.pk),
        }, "the patient's move is read again by its records' next writes"
