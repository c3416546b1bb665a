"""Model-level facts: exports, computed scores on save, database backstops."""

import datetime as dt

import pytest
from django.apps import apps
from django.db import IntegrityError, transaction

from registry import models as registry_models
from registry.choices import Consciousness
from registry.models import CsfResult, IcansAssessment, LmDiagnosis, Patient
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_registry_models_exports_every_model():
    concrete = {
        model.__name__
        for model in apps.get_app_config("registry").get_models()
        if not model.__name__.startswith("Historical")
    }
    assert concrete == set(registry_models.__all__)
    assert all(hasattr(registry_models, name) for name in concrete)


def test_every_model_keeps_history():
    for model in apps.get_app_config("registry").get_models():
        if not model.__name__.startswith("Historical"):
            assert hasattr(model, "history"), model.__name__


def test_sledai_total_is_computed_on_save_and_cannot_be_typed():
    assessment = f.SledaiFactory(psychosis=True, low_complement=True, arthritis=True)
    assert assessment.total == 14
    assessment.total = 99
    assessment.save()
    assessment.refresh_from_db()
    assert assessment.total == 14
    assessment.seizure = True
    assessment.save(update_fields=["seizure"])
    assessment.refresh_from_db()
    assert assessment.total == 22


def test_icans_grade_is_computed_from_its_items():
    assessment = f.IcansAssessmentFactory(
        orientation_year=True,
        orientation_month=True,
        naming_object_1=True,
        consciousness=Consciousness.AWAKENS_TO_VOICE,
    )
    assert (assessment.ice_score, assessment.icans_grade) == (3, 2)


@pytest.mark.parametrize(
    ("make", "update"),
    [
        (
            lambda: f.IcansAssessmentFactory(),
            lambda obj: IcansAssessment._base_manager.filter(pk=obj.pk).update(ice_score=11),
        ),
        (
            lambda: f.LmDiagnosisFactory(),
            lambda obj: LmDiagnosis._base_manager.filter(pk=obj.pk).update(ecog=6),
        ),
        (
            lambda: f.PatientFactory(),
            lambda obj: Patient._base_manager.filter(pk=obj.pk).update(death_date=dt.date(2021, 1, 1)),
        ),
        (
            lambda: f.AdverseEventFactory(),
            lambda obj: type(obj)._base_manager.filter(pk=obj.pk).update(grade=6),
        ),
    ],
    ids=["ICE above 10", "ECOG above 5", "death without cause", "grade 6"],
)
def test_database_constraints_hold_when_validation_is_bypassed(make, update):
    """Through Django's unguarded base manager, standing in for raw SQL that skips every Python check."""
    obj = make()
    with pytest.raises(IntegrityError), transaction.atomic():
        update(obj)


def test_one_csf_result_per_lp_in_the_database():
    csf = f.CsfResultFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        CsfResult.objects.create(lumbar_puncture=csf.lumbar_puncture)


def test_study_codes_are_unique():
    f.StudyFactory(code="npsle")
    with pytest.raises(IntegrityError), transaction.atomic():
        registry_models.Study.objects.create(code="npsle", disease_area="npsle", title="again")


def test_age_at_index():
    patient = Patient(
        birth_date=dt.date(1990, 3, 1), birth_year=1990, index_admission_date=dt.date(2021, 3, 1)
    )
    assert patient.age_at_index_years == pytest.approx(31.0, abs=0.01)
    patient.birth_date = None
    assert patient.age_at_index_years == 31.0
