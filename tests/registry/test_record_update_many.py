"""``record_update_many``: stored records changed in set queries, under the same rules as ``record_save``."""

from __future__ import annotations

import pytest
from concurrency.exceptions import RecordModifiedError
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.audited import UnauditedWriteError
from registry.models import LumbarPuncture, Patient
from registry.services import record_save
from registry.services.bulk import record_update_many
from review.models import ReviewStatus
from tests import factories as f

pytestmark = pytest.mark.django_db


def stored(patient, count: int) -> list[LumbarPuncture]:
    made = [f.LumbarPunctureFactory(patient=patient, opening_pressure_mmh2o=180) for _ in range(count)]
    return list(LumbarPuncture.objects.filter(pk__in=[lp.pk for lp in made]).order_by("pk"))


def raised(records: list[LumbarPuncture], pressure: int = 240) -> list[LumbarPuncture]:
    for record in records:
        record.opening_pressure_mmh2o = pressure
    return records


@pytest.mark.parametrize("pressures", [(240, 240), (230, 250)], ids=["alike", "each its own"])
def test_each_record_gets_the_version_and_history_row_a_save_would_give_it(pressures):
    patient, actor = f.PatientFactory(), f.UserFactory()
    one, *many = stored(patient, 3)
    before = {lp.pk: lp.updated_at for lp in many}
    record_save(raised([one])[0], actor=actor, reason="one by one")
    for record, pressure in zip(many, pressures, strict=True):
        record.opening_pressure_mmh2o = pressure
    record_update_many(many, ["opening_pressure_mmh2o"], actor=actor, reason="as a set")
    saved = one.history.order_by("-history_id").first()
    for record, pressure in zip(many, pressures, strict=True):
        record.refresh_from_db()
        assert record.opening_pressure_mmh2o == pressure
        assert record.version == one.version == 2, "raised by one, as a save raises it"
        assert record.updated_at > before[record.pk]
        row = record.history.order_by("-history_id").first()
        assert (row.history_type, row.history_user_id, row.history_change_reason) == (
            "~",
            actor.pk,
            "as a set",
        )
        assert (row.version, row.opening_pressure_mmh2o) == (saved.version, pressure)
        assert record.history.count() == one.history.count() == 2


def test_a_record_changed_since_it_was_read_refuses_the_set():
    patient, actor = f.PatientFactory(), f.UserFactory()
    records = stored(patient, 3)
    elsewhere = LumbarPuncture.objects.get(pk=records[1].pk)
    record_save(raised([elsewhere], 200)[0], actor=actor, reason="someone else")
    with pytest.raises(RecordModifiedError) as refused:
        record_update_many(raised(records), ["opening_pressure_mmh2o"], actor=actor, reason="stale")
    assert refused.value.target.pk == records[1].pk
    pressures = LumbarPuncture.objects.order_by("pk").values_list("opening_pressure_mmh2o", "version")
    assert list(pressures) == [(180, 1), (200, 2), (180, 1)], "nothing written, not even the fresh ones"


def test_a_record_refused_by_its_field_rules_writes_nothing():
    patient, actor = f.PatientFactory(), f.UserFactory()
    records = raised(stored(patient, 3))
    records[2].opening_pressure_mmh2o = 5  # below the measurable range
    with pytest.raises(ValidationError) as refused:
        record_update_many(records, ["opening_pressure_mmh2o"], actor=actor, reason="bad")
    with pytest.raises(ValidationError) as one_by_one:
        record_save(records[2], actor=actor, reason="bad")
    assert (
        refused.value.message_dict["lumbarpuncture[2].opening_pressure_mmh2o"]
        == (one_by_one.value.message_dict["opening_pressure_mmh2o"])
    ), "the same message as a save, at the record's position"
    assert set(LumbarPuncture.objects.values_list("opening_pressure_mmh2o", flat=True)) == {180}


def test_a_locked_section_refuses_the_set_a_submitted_one_needs_the_reason_a_verified_one_reopens():
    patient, actor = f.PatientFactory(), f.UserFactory()
    records = stored(patient, 2)
    review = f.locked_section(patient)
    with pytest.raises(ValidationError, match="section is locked"):
        record_update_many(raised(records), ["opening_pressure_mmh2o"], actor=actor, reason="late")
    review.status, review.locked_by, review.locked_at = ReviewStatus.SUBMITTED, None, None
    review.save()
    with pytest.raises(ValidationError) as refused:
        record_update_many(raised(records), ["opening_pressure_mmh2o"], actor=actor, reason=" ")
    assert "lumbarpuncture[0].change_reason" in refused.value.message_dict
    assert set(LumbarPuncture.objects.values_list("version", flat=True)) == {1}
    review.status = ReviewStatus.VERIFIED
    review.save()
    record_update_many(raised(records), ["opening_pressure_mmh2o"], actor=actor, reason="found in the notes")
    review.refresh_from_db()
    assert review.status == ReviewStatus.SUBMITTED
    assert review.history.first().history_change_reason == "Changed after verification: found in the notes"


def test_only_stored_records_a_patient_owns_and_never_a_bare_bulk_update():
    patient, actor = f.PatientFactory(), f.UserFactory()
    with pytest.raises(TypeError, match="not Patient"):
        record_update_many([patient], ["sex"], actor=actor, reason="x")
    with pytest.raises(TypeError, match="stored"):
        record_update_many(
            [LumbarPuncture(patient=patient, performed_at=timezone.now())], ["route"], actor=actor, reason="x"
        )
    records = raised(stored(patient, 2))
    with pytest.raises(UnauditedWriteError):
        LumbarPuncture.objects.bulk_update(records, ["opening_pressure_mmh2o"])
    with pytest.raises(UnauditedWriteError):
        LumbarPuncture.objects.filter(patient=patient).update(opening_pressure_mmh2o=200)
    with pytest.raises(UnauditedWriteError):
        Patient.objects.bulk_update([patient], ["sex"])
