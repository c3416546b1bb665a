"""factory_boy factories for every registry model: valid by default, one line to make invalid."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from accounts.models import Role, Site, SiteMembership, User
from demo.common import ensure_sites_and_studies
from registry import models as m
from registry.choices import (
    Attribution,
    CarTTarget,
    CtcaeTerm,
    DischargeOutcomeCode,
    DiseaseArea,
    DriverMutation,
    FollowUpEventType,
    HaematologicalMalignancy,
    IntrathecalDrug,
    LpRoute,
    NpsleSyndrome,
    NsclcHistology,
    PathogenTestType,
    ScreeningStep,
    Section,
    Sex,
    Specimen,
    SystemicTherapyCategory,
    TestResult,
)
from registry.services import record_save
from review.models import ReviewStatus, SectionReview

INDEX_DATE = dt.date(2021, 3, 1)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct-horse-battery")


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"site{n}")
    name = factory.LazyAttribute(lambda o: f"Hospital {o.code}")
    city = "Beijing"


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.Study
        django_get_or_create = ("code",)
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"study{n}")
    disease_area = DiseaseArea.NPSLE
    title = factory.LazyAttribute(lambda o: f"Study {o.code}")

    @factory.post_generation
    def sites(self, create, extracted, **kwargs):
        if not create:
            return
        self.sites.add(*(extracted or [SiteFactory()]))


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SiteMembership

    user = factory.SubFactory(UserFactory)
    site = factory.SubFactory(SiteFactory)
    role = Role.DATA_ENTRY


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.Patient

    class Params:
        area = DiseaseArea.NPSLE

    study = factory.SubFactory(StudyFactory, disease_area=factory.SelfAttribute("..area"))
    site = factory.LazyAttribute(lambda o: o.study.sites.first())
    study_code = factory.Sequence(lambda n: f"P{n:05d}")
    sex = Sex.FEMALE
    birth_date = dt.date(1990, 6, 15)
    birth_year = 1990
    index_admission_date = INDEX_DATE


class PatientIdentifierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.PatientIdentifier

    patient = factory.SubFactory(PatientFactory)
    full_name = factory.Faker("name")
    medical_record_number = factory.Sequence(lambda n: f"MRN{n:06d}")


class NpsleDiagnosisFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.NpsleDiagnosis

    patient = factory.SubFactory(PatientFactory)
    sle_duration_months = 24
    anti_dsdna = TestResult.POSITIVE
    c3_g_per_l = Decimal("0.62")
    c4_g_per_l = Decimal("0.09")


class NpsleManifestationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.NpsleManifestation

    diagnosis = factory.SubFactory(NpsleDiagnosisFactory)
    syndrome = NpsleSyndrome.PSYCHOSIS
    onset_date = INDEX_DATE - dt.timedelta(days=5)


class SledaiFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.Sledai2kAssessment

    patient = factory.SubFactory(PatientFactory)
    assessed_on = INDEX_DATE
    psychosis = True
    low_complement = True


class LmDiagnosisFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.LmDiagnosis

    patient = factory.SubFactory(PatientFactory, area=DiseaseArea.LM)
    histology = NsclcHistology.ADENOCARCINOMA
    lm_diagnosis_date = INDEX_DATE
    ecog = 1


class MutationFindingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.MutationFinding

    diagnosis = factory.SubFactory(LmDiagnosisFactory)
    specimen = Specimen.TISSUE
    mutation = DriverMutation.EGFR_L858R


class CarTInfusionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.CarTInfusion

    patient = factory.SubFactory(PatientFactory, area=DiseaseArea.ICANS)
    underlying_malignancy = HaematologicalMalignancy.ALL
    product = "CD19 CAR-T"
    target = CarTTarget.CD19
    infusion_date = INDEX_DATE
    dose_1e6_cells_per_kg = Decimal("1.0")


class IcansAssessmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.IcansAssessment

    patient = factory.SubFactory(PatientFactory, area=DiseaseArea.ICANS)
    assessed_at = factory.LazyFunction(lambda: timezone.make_aware(dt.datetime(2021, 3, 6, 8, 0)))


class CrsAssessmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.CrsAssessment

    patient = factory.SubFactory(PatientFactory, area=DiseaseArea.ICANS)
    assessed_at = factory.LazyFunction(lambda: timezone.make_aware(dt.datetime(2021, 3, 4, 8, 0)))
    fever = True


class LumbarPunctureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.LumbarPuncture

    patient = factory.SubFactory(PatientFactory)
    performed_at = factory.Sequence(
        lambda n: timezone.make_aware(dt.datetime(2021, 3, 2, 9, 0) + dt.timedelta(days=7 * n))
    )
    route = LpRoute.LUMBAR
    opening_pressure_mmh2o = 180
    closing_pressure_mmh2o = 120


class CsfResultFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.CsfResult

    lumbar_puncture = factory.SubFactory(LumbarPunctureFactory)
    wbc_1e6_per_l = Decimal("4")
    protein_g_per_l = Decimal("0.45")
    glucose_mmol_per_l = Decimal("3.10")
    chloride_mmol_per_l = Decimal("124.0")


class PathogenTestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.PathogenTest

    csf_result = factory.SubFactory(CsfResultFactory)
    test = PathogenTestType.CRYPTOCOCCAL_ANTIGEN
    result = TestResult.NEGATIVE


class IntrathecalDoseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.IntrathecalDose

    lumbar_puncture = factory.SubFactory(LumbarPunctureFactory)
    drug = IntrathecalDrug.METHOTREXATE
    dose_mg = Decimal("10")
    volume_ml = Decimal("10")
    course_number = 1


class SystemicTherapyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.SystemicTherapy

    patient = factory.SubFactory(PatientFactory)
    category = SystemicTherapyCategory.METHYLPREDNISOLONE_PULSE
    agent = "methylprednisolone"
    dose_description = "500 mg/day ×3 days"
    start_date = INDEX_DATE
    end_date = INDEX_DATE + dt.timedelta(days=2)


class AdverseEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.AdverseEvent

    patient = factory.SubFactory(PatientFactory)
    ctcae_term = CtcaeTerm.HEADACHE
    grade = 1
    onset_date = INDEX_DATE + dt.timedelta(days=2)
    attribution = Attribution.LUMBAR_PUNCTURE


class DischargeOutcomeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.DischargeOutcome

    patient = factory.SubFactory(PatientFactory)
    outcome = DischargeOutcomeCode.PARTIAL_IMPROVEMENT
    discharge_date = INDEX_DATE + dt.timedelta(days=20)


class ResponseAssessmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.ResponseAssessment

    patient = factory.SubFactory(PatientFactory)
    assessed_on = INDEX_DATE + dt.timedelta(days=28)


class FollowUpEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.FollowUpEvent

    patient = factory.SubFactory(PatientFactory)
    event_type = FollowUpEventType.NPSLE_RELAPSE
    event_date = INDEX_DATE + dt.timedelta(days=400)


class ScreeningLogEntryFactory(factory.django.DjangoModelFactory):
    """A count of a study's screening log at one of its sites (the possible cases identified)."""

    class Meta:
        model = m.ScreeningLogEntry

    study = factory.SubFactory(StudyFactory)
    site = factory.LazyAttribute(lambda o: o.study.sites.first())
    period_start = dt.date(2013, 1, 1)
    period_end = dt.date(2021, 6, 30)
    step = ScreeningStep.IDENTIFIED
    patients = 463


def study_at_demo_sites(code: str, *, area: DiseaseArea, title: str, actor: User, reason: str) -> m.Study:
    """A new, empty study of ``area`` at the sites of that area's demo study: somewhere to generate a
    cohort beside the demo's own (the demo and export tests), the demo study left as it was."""
    demo = ensure_sites_and_studies(actor=actor)[area]
    study = record_save(m.Study(code=code, disease_area=area, title=title), actor=actor, reason=reason)
    study.sites.set(demo.sites.all())
    return study


def locked_section(
    patient: m.Patient,
    section: str = Section.PROCEDURES,
    *,
    by: User | None = None,
    at: dt.datetime | None = None,
) -> SectionReview:
    """A section of the patient's record locked (signed) by a reviewer, ``at`` now unless given."""
    return SectionReview.objects.create(
        patient=patient,
        section=section,
        status=ReviewStatus.LOCKED,
        locked_by=by or UserFactory(),
        locked_at=at or timezone.now(),
    )
