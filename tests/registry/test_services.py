"""Write services: all-or-nothing, field-level errors for nested records, and attribution."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from registry.choices import DeathCause, FollowUpEventType, IntrathecalDrug
from registry.models import CsfResult, FollowUpEvent, IntrathecalDose, LumbarPuncture, Sledai2kAssessment
from registry.services import lumbar_puncture_record, patient_enrol, patient_record_death
from registry.services.bulk import bulk_record_create
from tests import factories as f

pytestmark = pytest.mark.django_db

WHEN = timezone.make_aware(dt.datetime(2021, 3, 3, 10, 0))


def record(patient, actor, **overrides):
    kwargs = {
        "patient": patient,
        "actor": actor,
        "reason": "LP on the ward",
        "performed_at": WHEN,
        "opening_pressure_mmh2o": 210,
        "csf": {"protein_g_per_l": Decimal("0.62"), "wbc_1e6_per_l": Decimal("6")},
        "doses": [
            {"drug": IntrathecalDrug.METHOTREXATE, "dose_mg": Decimal("10")},
            {"drug": IntrathecalDrug.DEXAMETHASONE, "dose_mg": Decimal("10")},
        ],
    }
    return lumbar_puncture_record(**(kwargs | overrides))


def test_lp_with_csf_and_doses_is_recorded_with_who_and_why():
    patient, nurse = f.PatientFactory(), f.UserFactory()
    lp = record(patient, nurse)
    assert lp.csf.protein_g_per_l == Decimal("0.62")
    assert sorted(d.drug for d in lp.doses.all()) == ["dexamethasone", "methotrexate"]
    for model in (LumbarPuncture, CsfResult, IntrathecalDose):
        latest = model.history.latest()
        assert latest.history_user == nurse
        assert latest.history_change_reason == "LP on the ward"
    for dose in lp.doses.all():  # written as a set: still one row each, as a save writes it
        (row,) = dose.history.all()
        assert (row.history_type, row.history_user, row.history_change_reason, row.version) == (
            "+",
            nurse,
            "LP on the ward",
            dose.version,
        )
        assert (row.drug, row.dose_mg) == (dose.drug, dose.dose_mg)


def test_one_bad_dose_writes_nothing_and_names_the_field():
    patient, nurse = f.PatientFactory(), f.UserFactory()
    with pytest.raises(ValidationError) as caught:
        record(
            patient,
            nurse,
            doses=[
                {"drug": IntrathecalDrug.DEXAMETHASONE, "dose_mg": Decimal("10")},
                {"drug": IntrathecalDrug.METHOTREXATE, "dose_mg": Decimal("120")},
            ],
        )
    assert "Did you mean 12 mg?" in caught.value.message_dict["doses.1.dose_mg"][0]
    assert LumbarPuncture.objects.count() == CsfResult.objects.count() == IntrathecalDose.objects.count() == 0
    assert LumbarPuncture.history.count() == 0


def test_nested_csf_error_is_prefixed_and_nothing_written():
    patient, nurse = f.PatientFactory(), f.UserFactory()
    with pytest.raises(ValidationError) as caught:
        record(patient, nurse, csf={"protein_g_per_l": Decimal("45")})
    assert "mg/dL" in caught.value.message_dict["csf.protein_g_per_l"][0]
    assert not LumbarPuncture.objects.exists()


def test_same_drug_twice_at_the_same_timing_is_refused():
    with pytest.raises(ValidationError) as caught:
        record(
            f.PatientFactory(),
            f.UserFactory(),
            doses=[
                {"drug": IntrathecalDrug.METHOTREXATE, "dose_mg": Decimal("10")},
                {"drug": IntrathecalDrug.METHOTREXATE, "dose_mg": Decimal("5")},
            ],
        )
    assert "doses.1.drug" in caught.value.message_dict


def test_enrol_creates_patient_and_identifiers_atomically():
    study, nurse = f.StudyFactory(), f.UserFactory()
    site = study.sites.first()
    patient = patient_enrol(
        study=study,
        site=site,
        study_code="NP9",
        sex="F",
        birth_year=1988,
        index_admission_date=dt.date(2022, 1, 4),
        full_name="Li Na",
        medical_record_number="A1",
        actor=nurse,
    )
    assert patient.identifier.full_name == "Li Na"
    assert patient.history.get().history_user == nurse
    with pytest.raises(ValidationError):
        patient_enrol(
            study=study,
            site=site,
            study_code="NP9",
            sex="F",
            birth_year=1988,
            index_admission_date=dt.date(2022, 1, 4),
            actor=nurse,
        )


def test_death_is_recorded_on_patient_and_as_event_and_replaces_last_contact():
    patient, nurse = f.PatientFactory(), f.UserFactory()
    f.FollowUpEventFactory(
        patient=patient, event_type=FollowUpEventType.LAST_CONTACT, event_date=dt.date(2021, 6, 1)
    )
    patient_record_death(
        patient=patient,
        death_date=dt.date(2021, 9, 1),
        cause=DeathCause.INFECTION,
        actor=nurse,
        reason="Death certificate received",
    )
    patient.refresh_from_db()
    assert patient.death_date == dt.date(2021, 9, 1)
    events = list(FollowUpEvent.objects.filter(patient=patient).values_list("event_type", flat=True))
    assert events == [FollowUpEventType.DEATH]


def test_death_before_a_recorded_alive_contact_is_refused():
    patient = f.PatientFactory()
    f.FollowUpEventFactory(
        patient=patient, event_type=FollowUpEventType.LAST_CONTACT, event_date=dt.date(2021, 6, 1)
    )
    with pytest.raises(ValidationError):
        patient_record_death(
            patient=patient,
            death_date=dt.date(2021, 5, 1),
            cause=DeathCause.OTHER,
            actor=f.UserFactory(),
            reason="x",
        )
    patient.refresh_from_db()
    assert patient.death_date is None


def test_bulk_path_validates_computes_scores_and_writes_history():
    patient, loader = f.PatientFactory(), f.UserFactory()
    good = Sledai2kAssessment(patient=patient, assessed_on=dt.date(2021, 3, 1), seizure=True, fever=True)
    created = bulk_record_create([good], actor=loader, reason="import")
    assert created[0].total == 9
    assert Sledai2kAssessment.objects.get().total == 9
    assert Sledai2kAssessment.history.get().history_user == loader
    bad = Sledai2kAssessment(patient=patient, assessed_on=dt.date(2099, 1, 1))
    with pytest.raises(ValidationError) as caught:
        bulk_record_create([bad], actor=loader, reason="import")
    assert "sledai2kassessment[0].assessed_on" in caught.value.message_dict
    assert Sledai2kAssessment.objects.count() == 1


def test_bulk_path_checks_sites_and_mrns_for_the_whole_batch(django_assert_max_num_queries):
    from registry.models import Patient, PatientIdentifier

    study, loader = f.StudyFactory(), f.UserFactory()
    site = study.sites.first()
    taken = f.PatientIdentifierFactory(
        patient=f.PatientFactory(study=study, site=site), medical_record_number="M-1"
    )
    patients = [
        Patient(
            study=study,
            site=site,
            study_code=f"B{i}",
            sex="F",
            birth_year=1990,
            index_admission_date=dt.date(2021, 1, 1),
        )
        for i in range(50)
    ]
    with django_assert_max_num_queries(12):
        bulk_record_create(patients, actor=loader, reason="import")
    outsider = Patient(
        study=study,
        site=f.SiteFactory(),
        study_code="X",
        sex="F",
        birth_year=1990,
        index_admission_date=dt.date(2021, 1, 1),
    )
    with pytest.raises(ValidationError) as caught:
        bulk_record_create([outsider], actor=loader, reason="import")
    assert "does not take part" in caught.value.message_dict["patient[0].site"][0]
    identifiers = [
        PatientIdentifier(patient=p, full_name="x", medical_record_number=f"M-{i}")
        for i, p in enumerate(patients[:3], start=2)
    ]
    identifiers.append(PatientIdentifier(patient=patients[3], full_name="y", medical_record_number="M-2"))
    with pytest.raises(ValidationError) as caught:
        bulk_record_create(identifiers, actor=loader, reason="import")
    assert list(caught.value.message_dict) == ["patientidentifier[3].medical_record_number"]
    clash = PatientIdentifier(
        patient=patients[10], full_name="z", medical_record_number=taken.medical_record_number
    )
    with pytest.raises(ValidationError, match="already enrolled"):
        bulk_record_create([clash], actor=loader, reason="import")
