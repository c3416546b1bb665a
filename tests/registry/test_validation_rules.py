"""Every validation rule of the foundation, through the model, a ModelForm and the admin.

Each case builds one invalid, unsaved record on top of valid saved ones and names the field the
error must be attached to and a fragment of the plain-language message. The same case is then
submitted three ways; each must refuse it with that field-level message and write nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from registry import models as m
from registry.choices import (
    Consciousness,
    CsfCytology,
    CtcaeTerm,
    DeathCause,
    DischargeOutcomeCode,
    DiseaseArea,
    DriverMutation,
    EanoEsmoType,
    FollowUpEventType,
    IntrathecalDrug,
    NpsleSyndrome,
    Specimen,
)
from tests import factories as f

from .entry_paths import admin_errors, admin_post, form_errors

pytestmark = pytest.mark.django_db


def today():
    """Read when a case is built, not when the module is collected: a run that crosses midnight took
    "tomorrow" from the day before (2026-12-08, 00:05: a SLEDAI dated tomorrow was today)."""
    return timezone.localdate()


def at(day: dt.date, hour: int = 9) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def dead_patient(**kwargs) -> m.Patient:
    return f.PatientFactory(death_date=dt.date(2021, 6, 1), death_cause=DeathCause.SLE_RELATED, **kwargs)


@dataclass(frozen=True)
class Rule:
    build: Callable[[], m.Model]
    field: str
    message: str


RULES: dict[str, Rule] = {
    # Patient
    "patient birth date in the future": Rule(
        lambda: f.PatientFactory.build(
            study=f.StudyFactory(),
            birth_date=today() + dt.timedelta(days=3),
            birth_year=today().year,
            index_admission_date=dt.date(2021, 1, 1),
        ),
        "birth_date",
        "in the future",
    ),
    "patient admitted before birth": Rule(
        lambda: f.PatientFactory.build(study=f.StudyFactory(), index_admission_date=dt.date(1980, 1, 1)),
        "index_admission_date",
        "before the patient's birth",
    ),
    "patient birth year contradicts date": Rule(
        lambda: f.PatientFactory.build(study=f.StudyFactory(), birth_year=1991),
        "birth_year",
        "does not match",
    ),
    "patient without birth date or year": Rule(
        lambda: f.PatientFactory.build(study=f.StudyFactory(), birth_date=None, birth_year=None),
        "birth_date",
        "at least the birth year",
    ),
    "patient death before index": Rule(
        lambda: f.PatientFactory.build(
            study=f.StudyFactory(), death_date=dt.date(2020, 1, 1), death_cause=DeathCause.OTHER
        ),
        "death_date",
        "before the index admission",
    ),
    "patient death without cause": Rule(
        lambda: f.PatientFactory.build(study=f.StudyFactory(), death_date=dt.date(2021, 5, 1)),
        "death_cause",
        "cause of death",
    ),
    "patient site outside study": Rule(
        lambda: f.PatientFactory.build(study=f.StudyFactory(), site=f.SiteFactory()),
        "site",
        "does not take part",
    ),
    "patient study code reused in study": Rule(
        lambda: f.PatientFactory.build(study=(p := f.PatientFactory()).study, study_code=p.study_code),
        "study_code",
        "already",
    ),
    "patient identifier MRN reused at site": Rule(
        lambda: f.PatientIdentifierFactory.build(
            patient=f.PatientFactory(study=(i := f.PatientIdentifierFactory()).patient.study),
            medical_record_number=i.medical_record_number,
        ),
        "medical_record_number",
        "already enrolled",
    ),
    # NPSLE
    "NPSLE diagnosis in an LM study": Rule(
        lambda: f.NpsleDiagnosisFactory.build(patient=f.PatientFactory(area=DiseaseArea.LM)),
        "patient",
        "NPSLE",
    ),
    "C3 typed in mg/dL": Rule(
        lambda: f.NpsleDiagnosisFactory.build(patient=f.PatientFactory(), c3_g_per_l=Decimal("62")),
        "c3_g_per_l",
        "mg/dL",
    ),
    "syndrome onset before birth": Rule(
        lambda: f.NpsleManifestationFactory.build(
            diagnosis=f.NpsleDiagnosisFactory(), onset_date=dt.date(1985, 1, 1)
        ),
        "onset_date",
        "before the patient's birth",
    ),
    "syndrome recorded twice": Rule(
        lambda: f.NpsleManifestationFactory.build(
            diagnosis=f.NpsleManifestationFactory().diagnosis, syndrome=NpsleSyndrome.PSYCHOSIS
        ),
        "syndrome",
        "already recorded",
    ),
    "SLEDAI assessed in the future": Rule(
        lambda: f.SledaiFactory.build(patient=f.PatientFactory(), assessed_on=today() + dt.timedelta(days=1)),
        "assessed_on",
        "in the future",
    ),
    # LM
    "ECOG above 5": Rule(
        lambda: f.LmDiagnosisFactory.build(patient=f.PatientFactory(area=DiseaseArea.LM), ecog=6), "ecog", "5"
    ),
    "LM diagnosed before the lung cancer": Rule(
        lambda: f.LmDiagnosisFactory.build(
            patient=f.PatientFactory(area=DiseaseArea.LM), primary_diagnosis_date=dt.date(2021, 5, 1)
        ),
        "lm_diagnosis_date",
        "before the lung cancer",
    ),
    "EANO type I without malignant cytology": Rule(
        lambda: f.LmDiagnosisFactory.build(
            patient=f.PatientFactory(area=DiseaseArea.LM),
            eano_esmo_type=EanoEsmoType.TYPE_I,
            csf_cytology=CsfCytology.NORMAL,
        ),
        "eano_esmo_type",
        "malignant cells",
    ),
    "wild-type combined with a mutation": Rule(
        lambda: f.MutationFindingFactory.build(
            diagnosis=f.MutationFindingFactory().diagnosis,
            specimen=Specimen.TISSUE,
            mutation=DriverMutation.WILD_TYPE,
        ),
        "mutation",
        "cannot be combined",
    ),
    # CAR-T / ICANS
    "marrow blasts above 100%": Rule(
        lambda: f.CarTInfusionFactory.build(
            patient=f.PatientFactory(area=DiseaseArea.ICANS), marrow_blasts_pct=Decimal("120")
        ),
        "marrow_blasts_pct",
        "between 0 and 100",
    ),
    "ICE items ticked for an unarousable patient": Rule(
        lambda: f.IcansAssessmentFactory.build(
            patient=f.PatientFactory(area=DiseaseArea.ICANS),
            consciousness=Consciousness.UNAROUSABLE,
            orientation_year=True,
        ),
        "consciousness",
        "cannot perform the ICE",
    ),
    "ICANS assessment in an NPSLE study": Rule(
        lambda: f.IcansAssessmentFactory.build(patient=f.PatientFactory()), "patient", "ICANS"
    ),
    # Lumbar puncture and CSF
    "opening pressure typed in cmH2O": Rule(
        lambda: f.LumbarPunctureFactory.build(
            patient=f.PatientFactory(), opening_pressure_mmh2o=18, closing_pressure_mmh2o=None
        ),
        "opening_pressure_mmh2o",
        "cmH2O",
    ),
    "closing pressure above opening": Rule(
        lambda: f.LumbarPunctureFactory.build(
            patient=f.PatientFactory(), opening_pressure_mmh2o=150, closing_pressure_mmh2o=200
        ),
        "closing_pressure_mmh2o",
        "swapped",
    ),
    "LP after death": Rule(
        lambda: f.LumbarPunctureFactory.build(patient=dead_patient(), performed_at=at(dt.date(2021, 7, 1))),
        "performed_at",
        "after the patient's recorded death",
    ),
    "LP in the future": Rule(
        lambda: f.LumbarPunctureFactory.build(
            patient=f.PatientFactory(), performed_at=at(today() + dt.timedelta(days=2))
        ),
        "performed_at",
        "in the future",
    ),
    "LP before birth": Rule(
        lambda: f.LumbarPunctureFactory.build(
            patient=f.PatientFactory(), performed_at=at(dt.date(1989, 1, 1))
        ),
        "performed_at",
        "before the patient's birth",
    ),
    "CSF protein typed in mg/dL": Rule(
        lambda: f.CsfResultFactory.build(
            lumbar_puncture=f.LumbarPunctureFactory(), protein_g_per_l=Decimal("45")
        ),
        "protein_g_per_l",
        "mg/dL or mg/L",
    ),
    "CSF glucose typed in mg/dL": Rule(
        lambda: f.CsfResultFactory.build(
            lumbar_puncture=f.LumbarPunctureFactory(), glucose_mmol_per_l=Decimal("60")
        ),
        "glucose_mmol_per_l",
        "mg/dL",
    ),
    "CSF chloride implausible": Rule(
        lambda: f.CsfResultFactory.build(
            lumbar_puncture=f.LumbarPunctureFactory(), chloride_mmol_per_l=Decimal("12")
        ),
        "chloride_mmol_per_l",
        "outside the plausible",
    ),
    "second CSF result for one LP": Rule(
        lambda: f.CsfResultFactory.build(lumbar_puncture=f.CsfResultFactory().lumbar_puncture),
        "lumbar_puncture",
        "already exists",
    ),
    # Intrathecal doses: the per-drug caps from the one dose table
    "methotrexate 120 mg": Rule(
        lambda: f.IntrathecalDoseFactory.build(
            lumbar_puncture=f.LumbarPunctureFactory(), dose_mg=Decimal("120")
        ),
        "dose_mg",
        "Did you mean 12 mg",
    ),
    "dexamethasone above 20 mg": Rule(
        lambda: f.IntrathecalDoseFactory.build(
            lumbar_puncture=f.LumbarPunctureFactory(),
            drug=IntrathecalDrug.DEXAMETHASONE,
            dose_mg=Decimal("25"),
        ),
        "dose_mg",
        "limit of 20 mg",
    ),
    "pemetrexed above 50 mg": Rule(
        lambda: f.IntrathecalDoseFactory.build(
            lumbar_puncture=f.LumbarPunctureFactory(), drug=IntrathecalDrug.PEMETREXED, dose_mg=Decimal("55")
        ),
        "dose_mg",
        "limit of 50 mg",
    ),
    "cytarabine above 100 mg": Rule(
        lambda: f.IntrathecalDoseFactory.build(
            lumbar_puncture=f.LumbarPunctureFactory(), drug=IntrathecalDrug.CYTARABINE, dose_mg=Decimal("150")
        ),
        "dose_mg",
        "limit of 100 mg",
    ),
    "liposomal cytarabine above 50 mg": Rule(
        lambda: f.IntrathecalDoseFactory.build(
            lumbar_puncture=f.LumbarPunctureFactory(),
            drug=IntrathecalDrug.LIPOSOMAL_CYTARABINE,
            dose_mg=Decimal("500"),
        ),
        "dose_mg",
        "Did you mean 50 mg",
    ),
    "other drug without a name": Rule(
        lambda: f.IntrathecalDoseFactory.build(
            lumbar_puncture=f.LumbarPunctureFactory(), drug=IntrathecalDrug.OTHER
        ),
        "drug_other",
        "Name the drug",
    ),
    # Adverse events
    "AE grade 5 without a death": Rule(
        lambda: f.AdverseEventFactory.build(
            patient=f.PatientFactory(), ctcae_term=CtcaeTerm.INFECTION, grade=5
        ),
        "grade",
        "record the patient's date of death",
    ),
    "headache above grade 3": Rule(
        lambda: f.AdverseEventFactory.build(patient=f.PatientFactory(), grade=4),
        "grade",
        "only up to grade 3",
    ),
    "AE grade contradicts its lab value": Rule(
        lambda: f.AdverseEventFactory.build(
            patient=f.PatientFactory(),
            ctcae_term=CtcaeTerm.PLATELET_DECREASED,
            grade=2,
            lab_value=Decimal("40"),
        ),
        "grade",
        "as grade 3",
    ),
    "AE resolves before onset": Rule(
        lambda: f.AdverseEventFactory.build(patient=f.PatientFactory(), resolution_date=dt.date(2021, 3, 1)),
        "resolution_date",
        "before its onset",
    ),
    "AE after death": Rule(
        lambda: f.AdverseEventFactory.build(patient=dead_patient(), onset_date=dt.date(2021, 7, 1)),
        "onset_date",
        "after the patient's recorded death",
    ),
    # Therapy and outcomes
    "therapy ends before it starts": Rule(
        lambda: f.SystemicTherapyFactory.build(patient=f.PatientFactory(), end_date=dt.date(2021, 2, 1)),
        "end_date",
        "cannot end before it starts",
    ),
    "discharge before admission": Rule(
        lambda: f.DischargeOutcomeFactory.build(
            patient=f.PatientFactory(), discharge_date=dt.date(2021, 2, 1)
        ),
        "discharge_date",
        "before the index admission",
    ),
    "death at discharge without a death date": Rule(
        lambda: f.DischargeOutcomeFactory.build(
            patient=f.PatientFactory(), outcome=DischargeOutcomeCode.DEATH
        ),
        "discharge_date",
        "date of death",
    ),
    "follow-up event before the index admission": Rule(
        lambda: f.FollowUpEventFactory.build(patient=f.PatientFactory(), event_date=dt.date(2021, 1, 1)),
        "event_date",
        "after the index admission",
    ),
    "relapse after death": Rule(
        lambda: f.FollowUpEventFactory.build(patient=dead_patient(), event_date=dt.date(2021, 8, 1)),
        "event_date",
        "after the patient's recorded death",
    ),
    "follow-up event in the future": Rule(
        lambda: f.FollowUpEventFactory.build(
            patient=f.PatientFactory(), event_date=today() + dt.timedelta(days=30)
        ),
        "event_date",
        "in the future",
    ),
    "death event without the death date": Rule(
        lambda: f.FollowUpEventFactory.build(patient=f.PatientFactory(), event_type=FollowUpEventType.DEATH),
        "event_date",
        "recorded date of death",
    ),
    "relapse after CAR-T in a study of another disease": Rule(
        lambda: f.FollowUpEventFactory.build(
            patient=f.PatientFactory(), event_type=FollowUpEventType.CART_RELAPSE
        ),
        "event_type",
        "recorded only in an ICANS after CAR-T cells study",
    ),
    "relapse after CAR-T without an infusion": Rule(
        lambda: f.FollowUpEventFactory.build(
            patient=f.PatientFactory(area=DiseaseArea.ICANS), event_type=FollowUpEventType.CART_RELAPSE
        ),
        "event_date",
        "Record the CAR-T infusion first",
    ),
    "relapse after CAR-T on the infusion day": Rule(
        lambda: f.FollowUpEventFactory.build(
            patient=f.CarTInfusionFactory(infusion_date=dt.date(2021, 4, 1)).patient,
            event_type=FollowUpEventType.CART_RELAPSE,
            event_date=dt.date(2021, 4, 1),
        ),
        "event_date",
        "must come after the first infusion (2021-04-01)",
    ),
    "response assessment before index": Rule(
        lambda: f.ResponseAssessmentFactory.build(
            patient=f.PatientFactory(), assessed_on=dt.date(2020, 12, 1)
        ),
        "assessed_on",
        "cannot precede the index admission",
    ),
}


def assert_refused(errors: dict[str, list[str]], rule: Rule) -> None:
    assert rule.field in errors, f"expected an error on {rule.field!r}, got {errors}"
    assert any(rule.message in message for message in errors[rule.field]), errors[rule.field]


@pytest.mark.parametrize("name", RULES)
def test_model_refuses(name):
    rule = RULES[name]
    instance = rule.build()
    with pytest.raises(ValidationError) as caught:
        instance.full_clean()
    assert_refused(caught.value.message_dict, rule)


@pytest.mark.parametrize("name", RULES)
def test_form_refuses(name):
    rule = RULES[name]
    instance = rule.build()
    before = type(instance).objects.count()
    assert_refused(form_errors(instance), rule)
    assert type(instance).objects.count() == before


@pytest.mark.parametrize("name", RULES)
def test_admin_refuses_and_changes_nothing(name, admin_client):
    rule = RULES[name]
    instance = rule.build()
    model = type(instance)
    before = model.objects.count()
    history_before = model.history.count()
    response = admin_post(admin_client, instance)
    assert response.status_code == 200, "the admin should re-show the form, not redirect"
    assert_refused(admin_errors(response), rule)
    assert model.objects.count() == before
    assert model.history.count() == history_before


def test_changing_death_date_checks_existing_records():
    """Cross-record: moving a death date before an existing LP is refused on the patient."""
    lp = f.LumbarPunctureFactory()
    patient = lp.patient
    patient.death_date = dt.date(2021, 3, 1)
    patient.death_cause = DeathCause.INFECTION
    with pytest.raises(ValidationError) as caught:
        patient.full_clean()
    assert any("lumbar puncture" in msg for msg in caught.value.message_dict["death_date"])


VALID = {
    "patient": lambda: f.PatientFactory.build(study=(study := f.StudyFactory()), site=study.sites.first()),
    "lumbar puncture": lambda: f.LumbarPunctureFactory.build(patient=f.PatientFactory()),
    "intrathecal dose": lambda: f.IntrathecalDoseFactory.build(lumbar_puncture=f.LumbarPunctureFactory()),
    "adverse event": lambda: f.AdverseEventFactory.build(patient=f.PatientFactory()),
    "ICANS assessment": lambda: f.IcansAssessmentFactory.build(
        patient=f.PatientFactory(area=DiseaseArea.ICANS)
    ),
}


@pytest.mark.parametrize("name", VALID)
def test_valid_records_pass_every_path(name, admin_client):
    """The factories' defaults are valid, so each refusal above is the rule's own doing."""
    instance = VALID[name]()
    instance.full_clean()
    assert form_errors(instance) == {}
    response = admin_post(admin_client, instance)
    assert response.status_code == 302, admin_errors(response)
