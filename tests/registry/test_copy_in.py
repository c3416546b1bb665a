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
