"""Bulk inserts on PostgreSQL write their history rows with COPY: each row reads exactly as the
record it records (every tracked value, tricky text included), with the date, user, reason and "+"."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import User
from registry.choices import Sex
from registry.models import IntrathecalDose, LumbarPuncture, Patient
from registry.services.bulk import bulk_record_create
from tests import factories as f

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's"),
]

TRICKY = 'tab\there, new\nline, back\\slash, \\N, carriage\rreturn, quote " and é'


def _enrolled_patient() -> Patient:
    """A patient of a new study at a new site of it."""
    study, site = f.StudyFactory(), f.SiteFactory()
    study.sites.add(site)
    return f.PatientFactory(study=study, site=site)


def tricky_punctures(patient: Patient, n: int, *, note_code: bool) -> list[LumbarPuncture]:
    """Three LPs n days on, with tricky text, a missing-data code and (``note_code``) a tricky one."""
    return [
        LumbarPuncture(
            patient=patient,
            performed_at=timezone.make_aware(dt.datetime(2021, 1, 3 + i + n, 9, 30, 15)),
            route="lumbar",
            opening_pressure_mmh2o=None if i else 180,
            post_lp_headache=bool(i),
            other_complication=TRICKY if i == 0 else "",
            missing_codes=(
                {"opening_pressure_mmh2o": "ND", "note": TRICKY}
                if note_code
                else {"opening_pressure_mmh2o": "ND"}
            )
            if i
            else {},
        )
        for i in range(3)
    ]


def history_matches(model, objects, actor: User, reason: str) -> None:
    tracked = [field.attname for field in model.history.model.tracked_fields]
    saved = {obj.pk: obj for obj in model._default_manager.filter(pk__in=[o.pk for o in objects])}
    rows = {row.id: row for row in model.history.model.objects.filter(id__in=list(saved))}
    assert set(rows) == set(saved), "one history row per record"
    for pk, obj in saved.items():
        row = rows[pk]
        assert {name: getattr(row, name) for name in tracked} == {
            name: getattr(obj, name) for name in tracked
        }
        assert (row.history_type, row.history_user_id, row.history_change_reason) == ("+", actor.pk, reason)
        assert abs(row.history_date - timezone.now()) < dt.timedelta(minutes=1)


def test_history_rows_by_copy_read_as_their_records():
    actor = f.UserFactory()
    study, site = f.StudyFactory(), f.SiteFactory()
    study.sites.add(site)
    patients = [
        Patient(
            study=study,
            site=site,
            study_code=f"CP{i}",
            sex=Sex.FEMALE,
            birth_year=1980,
            index_admission_date=dt.date(2021, 1, 2),
        )
        for i in range(3)
    ]
    bulk_record_create(patients, actor=actor, reason=TRICKY)
    history_matches(Patient, patients, actor, TRICKY)

    punctures = [
        LumbarPuncture(
            patient=patients[i],
            performed_at=timezone.make_aware(dt.datetime(2021, 1, 3, 9, 30, 15)),
            route="lumbar",
            opening_pressure_mmh2o=None if i else 180,
            post_lp_headache=bool(i),
            other_complication=TRICKY if i == 0 else "",
            missing_codes={"opening_pressure_mmh2o": "ND"} if i else {},
        )
        for i in range(3)
    ]
    bulk_record_create(punctures, actor=actor, reason="import")
    history_matches(LumbarPuncture, punctures, actor, "import")

    doses = [
        IntrathecalDose(
            lumbar_puncture=punctures[0], drug="methotrexate", dose_mg=Decimal("12.50"), course_number=1
        ),
        IntrathecalDose(
            lumbar_puncture=punctures[1], drug="dexamethasone", dose_mg=Decimal("10"), volume_ml=None
        ),
    ]
    bulk_record_create(doses, actor=actor, reason="import")
    history_matches(IntrathecalDose, doses, actor, "import")


def _stored(model, objects) -> list[dict]:
    """The rows as the database holds them, without what differs by design (key, creation time)."""
    skip = {"id", "created_at", "updated_at"}
    rows = model._default_manager.filter(pk__in=[o.pk for o in objects]).order_by("pk").values()
    return [{name: value for name, value in row.items() if name not in skip} for row in rows]


def test_records_by_copy_are_stored_as_bulk_create_stores_them():
    """The same tricky objects written by COPY and by Django's INSERT read back identically, with
    keys from the table's sequence in order, their creation times and version set, and saved state."""
    from accounts.audited import audited_bulk_write
    from registry.services.copy_in import copy_insert

    patient = _enrolled_patient()
    inserted, copied = (tricky_punctures(patient, n, note_code=True) for n in (0, 10))
    with audited_bulk_write():
        LumbarPuncture.objects.bulk_create(inserted)
        before = timezone.now()
        copy_insert(LumbarPuncture, copied)
    assert [o.pk for o in copied] == sorted(o.pk for o in copied)
    assert min(o.pk for o in copied) > max(o.pk for o in inserted)
    assert all(not o._state.adding and o.created_at >= before and o.version == 1 for o in copied)
    stored = LumbarPuncture.objects.filter(pk__in=[o.pk for o in copied]).values_list("pk", "created_at")
    assert {o.pk: o.created_at for o in copied} == dict(stored), (
        "each object holds the stamp it was stored with"
    )
    assert len({o.created_at for o in copied}) == 1, "one reading of the clock for the batch"
    by_insert, by_copy = _stored(LumbarPuncture, inserted), _stored(LumbarPuncture, copied)
    for row in (*by_insert, *by_copy):
        row.pop("performed_at")  # chosen ten days apart above
    assert by_copy == by_insert
    doses = [
        IntrathecalDose(lumbar_puncture=copied[0], drug="methotrexate", dose_mg=Decimal("12.50")),
        IntrathecalDose(lumbar_puncture=copied[1], drug="other", drug_other=TRICKY, dose_mg=Decimal("0.1")),
    ]
    with audited_bulk_write():
        copy_insert(IntrathecalDose, doses)
    assert [
        (d.lumbar_puncture_id, d.dose_mg, d.drug_other)
        for d in IntrathecalDose.objects.filter(pk__in=[d.pk for d in doses]).order_by("pk")
    ] == [(copied[0].pk, Decimal("12.50"), ""), (copied[1].pk, Decimal("0.1"), TRICKY)]


def _history(model, objects) -> list[dict]:
    """The history rows of ``objects``, every column but what differs by design (keys, times)."""
    skip = {"history_id", "id", "history_date", "created_at", "updated_at", "performed_at"}
    rows = model.history.model.objects.filter(id__in=[o.pk for o in objects]).order_by("id").values()
    return [{name: value for name, value in row.items() if name not in skip} for row in rows]


def test_history_rows_by_copy_equal_simple_historys_column_for_column():
    """The records' cells reused for their history rows write what simple-history's own bulk path
    (``bulk_create_with_history``, an INSERT) writes, every column, tricky text included."""
    from simple_history.utils import bulk_create_with_history

    from accounts.audited import audited_bulk_write

    actor = f.UserFactory()
    patient = _enrolled_patient()
    by_orm, by_copy = (tricky_punctures(patient, n, note_code=False) for n in (0, 10))
    with audited_bulk_write():
        bulk_create_with_history(by_orm, LumbarPuncture, default_user=actor, default_change_reason=TRICKY)
    bulk_record_create(by_copy, actor=actor, reason=TRICKY)
    orm_rows, copy_rows = _history(LumbarPuncture, by_orm), _history(LumbarPuncture, by_copy)
    assert len(copy_rows) == 3 and copy_rows == orm_rows
    assert copy_rows[0]["other_complication"] == TRICKY and copy_rows[0]["history_change_reason"] == TRICKY


def test_a_history_row_by_copy_without_an_actor_has_no_user():
    # As simple-history's own bulk path (SQLite's) records it: a write no user made (a fixture's).
    patient = f.PatientFactory()
    performed_at = timezone.now() - dt.timedelta(days=1)
    created = bulk_record_create(
        [LumbarPuncture(patient=patient, performed_at=performed_at)], actor=None, reason="fixture"
    )
    row = LumbarPuncture.history.get(id=created[0].pk)
    assert (row.history_user_id, row.history_change_reason, row.history_type) == (None, "fixture", "+")
