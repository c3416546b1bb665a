"""Concurrency on PostgreSQL with real connections: no lost updates, and no change to a locked record.

Two worker threads (each with its own database connection) race in every trial, released together
by a barrier. Skipped on SQLite, which serialises writers on a file lock and cannot show the race.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from concurrency.exceptions import RecordModifiedError
from django.core.exceptions import ValidationError
from django.db import connection, connections

from accounts.models import Role
from registry.models import SystemicTherapy
from registry.services import record_save
from review import services
from review.guards import RecordLockedError
from review.models import ReviewStatus, SectionReview
from tests import factories as f

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL's concurrent connections"),
]

STALE_WRITE_TRIALS = 1000
LOCK_RACE_TRIALS = 200
PASSWORD = "reviewer-password-1"


@pytest.fixture
def pool():
    executor = ThreadPoolExecutor(max_workers=2)
    yield executor
    barrier = threading.Barrier(2)

    def close():
        barrier.wait()
        connections.close_all()

    list(executor.map(lambda _: close(), range(2)))
    executor.shutdown()


def race(pool, first, second):
    """Run two callables at the same moment on the two worker threads; return their outcomes."""
    barrier = threading.Barrier(2)

    def run(work):
        barrier.wait()
        try:
            return work()
        except Exception as exc:  # the outcome of the race is what the test inspects
            return exc

    return [future.result() for future in [pool.submit(run, first), pool.submit(run, second)]]


def test_no_lost_update_in_1000_concurrent_stale_writes(pool):
    therapy = f.SystemicTherapyFactory(agent="start")
    nurse = f.UserFactory()
    lost = successes = refusals = 0
    for trial in range(STALE_WRITE_TRIALS):
        # Both writers start from the same version, as two people who opened the same form.
        copies = [SystemicTherapy.objects.get(pk=therapy.pk) for _ in range(2)]
        before = copies[0].version
        for label, copy in zip("ab", copies, strict=True):
            copy.agent = f"{label}-{trial}"

        def writer(copy):
            return lambda: record_save(copy, actor=nurse, reason="concurrent edit")

        outcomes = race(pool, writer(copies[0]), writer(copies[1]))
        saved = [
            copy for copy, outcome in zip(copies, outcomes, strict=True) if not isinstance(outcome, Exception)
        ]
        refused = [o for o in outcomes if isinstance(o, RecordModifiedError)]
        unexpected = [
            o for o in outcomes if isinstance(o, Exception) and not isinstance(o, RecordModifiedError)
        ]
        assert not unexpected, unexpected
        current = SystemicTherapy.objects.get(pk=therapy.pk)
        if len(saved) != 1 or current.agent != saved[0].agent or current.version != before + 1:
            lost += 1
        successes += len(saved)
        refusals += len(refused)
    assert lost == 0
    assert (successes, refusals) == (STALE_WRITE_TRIALS, STALE_WRITE_TRIALS)
    assert SystemicTherapy.history.filter(id=therapy.pk, history_type="~").count() == STALE_WRITE_TRIALS


def test_locking_and_editing_at_once_never_leaves_a_locked_record_changed(pool):
    site = f.SiteFactory()
    nurse, reviewer = f.UserFactory(), f.UserFactory(password=PASSWORD)
    f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
    f.MembershipFactory(user=reviewer, site=site, role=Role.REVIEWER)
    patient = f.PatientFactory(study=f.StudyFactory(sites=[site]), site=site)
    therapy = f.SystemicTherapyFactory(patient=patient, agent="start")
    services.section_submit(patient=patient, section="therapy", actor=nurse)
    locked_trials = edited_trials = 0
    for trial in range(LOCK_RACE_TRIALS):
        services.section_verify(patient=patient, section="therapy", actor=reviewer)
        before = SystemicTherapy.objects.get(pk=therapy.pk)
        copy = SystemicTherapy.objects.get(pk=therapy.pk)
        copy.agent = f"edited-{trial}"

        outcomes = race(
            pool,
            lambda: services.sections_lock(
                patient=patient, sections=["therapy"], actor=reviewer, password=PASSWORD
            ),
            lambda copy=copy: record_save(copy, actor=nurse, reason="edit during locking"),
        )
        lock_outcome, edit_outcome = outcomes
        review = SectionReview.objects.get(patient=patient, section="therapy")
        current = SystemicTherapy.objects.get(pk=therapy.pk)
        if review.status == ReviewStatus.LOCKED:
            # The lock won: the edit was refused and the record is as it was when locked.
            assert isinstance(edit_outcome, RecordLockedError), edit_outcome
            assert current.agent == before.agent and current.version == before.version
            locked_trials += 1
            services.section_unlock(
                patient=patient, section="therapy", actor=reviewer, reason="next trial", password=PASSWORD
            )
        else:
            # The edit won: it sent the section back to submitted, so the lock was refused.
            assert isinstance(lock_outcome, ValidationError) and "verified" in str(lock_outcome), lock_outcome
            assert current.agent == copy.agent
            assert review.status == ReviewStatus.SUBMITTED
            edited_trials += 1
    assert locked_trials + edited_trials == LOCK_RACE_TRIALS
