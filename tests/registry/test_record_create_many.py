"""``record_create_many``: new records in set queries, under the same rules as ``record_save`` one by one."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from registry.choices import Section
from registry.models import LumbarPuncture
from registry.services import record_save
from registry.services.bulk import record_create_many
from review.models import ReviewStatus, SectionReview
from tests import factories as f

pytestmark = pytest.mark.django_db


def punctures(patient, count: int, *, first_day: int = 1) -> list[LumbarPuncture]:
    start = timezone.now() - dt.timedelta(days=60)
    return [
        LumbarPuncture(
            patient=patient, performed_at=start + dt.timedelta(days=first_day + i), opening_pressure_mmh2o=180
        )
        for i in range(count)
    ]


def test_each_record_gets_the_history_row_a_save_would_give_it():
    patient, actor = f.PatientFactory(), f.UserFactory()
    saved = record_save(punctures(patient, 1)[0], actor=actor, reason="one by one")
    created = record_create_many(punctures(patient, 3, first_day=10), actor=actor, reason="as a set")
    assert all(record.pk for record in created)
    one = saved.history.get()
    for record in created:
        row = record.history.get()
        assert (row.history_type, row.history_user_id, row.history_change_reason) == (
            "+",
            actor.pk,
            "as a set",
        )
        assert row.version == one.version, "the same optimistic-lock version as a saved record"
        assert row.opening_pressure_mmh2o == 180


def test_a_record_refused_by_its_field_rules_writes_nothing():
    patient, actor = f.PatientFactory(), f.UserFactory()
    records = punctures(patient, 3)
    records[1].opening_pressure_mmh2o = 5  # below the measurable range
    with pytest.raises(ValidationError) as refused:
        record_create_many(records, actor=actor, reason="bad")
    assert "lumbarpuncture[1].opening_pressure_mmh2o" in refused.value.message_dict
    with pytest.raises(ValidationError) as one_by_one:
        record_save(records[1], actor=actor, reason="bad")
    assert (
        refused.value.message_dict["lumbarpuncture[1].opening_pressure_mmh2o"]
        == (one_by_one.value.message_dict["opening_pressure_mmh2o"])
    ), "the same message as a save"
    assert not LumbarPuncture.objects.exists()


def test_a_locked_section_refuses_the_set_and_a_submitted_one_needs_the_reason():
    patient, actor = f.PatientFactory(), f.UserFactory()
    review = f.locked_section(patient)
    with pytest.raises(ValidationError, match="section is locked"):
        record_create_many(punctures(patient, 2), actor=actor, reason="late entry")
    review.status, review.locked_by, review.locked_at = ReviewStatus.SUBMITTED, None, None
    review.save()
    with pytest.raises(ValidationError) as refused:
        record_create_many(punctures(patient, 2), actor=actor, reason="  ")
    assert "lumbarpuncture[0].change_reason" in refused.value.message_dict
    assert not LumbarPuncture.objects.exists()
    assert len(record_create_many(punctures(patient, 2), actor=actor, reason="found in the notes")) == 2


def test_a_verified_section_goes_back_to_submitted():
    patient, actor = f.PatientFactory(), f.UserFactory()
    SectionReview.objects.create(patient=patient, section=Section.PROCEDURES, status=ReviewStatus.VERIFIED)
    record_create_many(punctures(patient, 2), actor=actor, reason="found in the notes")
    review = SectionReview.objects.get(patient=patient, section=Section.PROCEDURES)
    assert review.status == ReviewStatus.SUBMITTED
    assert review.history.first().history_change_reason == "Changed after verification: found in the notes"
