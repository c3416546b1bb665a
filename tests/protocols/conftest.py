"""Shared fixtures of the protocol tests: the seed protocols, people, and patients with courses."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Role
from protocols.seed import ensure_seed_protocols
from protocols.services import course_start, injection_record
from registry.choices import DiseaseArea, DoseTiming, IntrathecalDrug, SystemicTherapyCategory
from registry.models import IntrathecalDose, LumbarPuncture
from tests import factories as f

START = dt.date(2021, 3, 1)


@pytest.fixture
def seeds():
    return ensure_seed_protocols()


@pytest.fixture
def nurse():
    return f.UserFactory(username="nurse", first_name="Lin", last_name="Wei")


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def patient_in(area: str, *, site=None, **fields):
    study = f.StudyFactory(code=f"p-{area}", disease_area=area, sites=[site] if site else None)
    return f.PatientFactory(study=study, site=site or study.sites.first(), **fields)


def with_vitamins(patient, start: dt.date = START - dt.timedelta(days=10)):
    """Folic acid and vitamin B12 from 10 days before the course, ongoing (the LM protocol's rule)."""
    for category in (SystemicTherapyCategory.FOLIC_ACID, SystemicTherapyCategory.VITAMIN_B12):
        f.SystemicTherapyFactory(
            patient=patient, category=category, agent=category.label, start_date=start, end_date=None
        )
    return patient


@pytest.fixture
def lm_patient():
    return with_vitamins(patient_in(DiseaseArea.LM, index_admission_date=dt.date(2021, 2, 15)))


@pytest.fixture
def npsle_patient():
    return patient_in(DiseaseArea.NPSLE, index_admission_date=dt.date(2021, 2, 25))


@pytest.fixture
def icans_patient():
    return patient_in(DiseaseArea.ICANS, index_admission_date=dt.date(2021, 2, 20))


def start(patient, protocol, actor, day: dt.date = START):
    return course_start(patient=patient, protocol=protocol, start_date=day, actor=actor, reason="Test course")


def dose(drug: str, mg: str, timing: str = DoseTiming.WITH) -> IntrathecalDose:
    return IntrathecalDose(drug=drug, dose_mg=Decimal(mg), timing=timing)


def lm_doses(pemetrexed_mg: str) -> list[IntrathecalDose]:
    return [
        dose(IntrathecalDrug.DEXAMETHASONE, "2.5", DoseTiming.BEFORE),
        dose(IntrathecalDrug.PEMETREXED, pemetrexed_mg),
        dose(IntrathecalDrug.DEXAMETHASONE, "2.5", DoseTiming.AFTER),
    ]


def give(patient, day: dt.date, doses, actor, *, hour: int = 10, pressure: int = 180, **kwargs):
    """Record an LP with doses through the service; returns the outcome."""
    return injection_record(
        lp=LumbarPuncture(patient=patient, performed_at=at(day, hour), opening_pressure_mmh2o=pressure),
        doses=doses,
        actor=actor,
        reason=kwargs.pop("reason", "Test injection"),
        **kwargs,
    )


def member(site, role: str = Role.DATA_ENTRY, **fields):
    user = f.UserFactory(**fields)
    f.MembershipFactory(user=user, site=site, role=role)
    return user


def npsle_doses(*, methotrexate: bool = True) -> list[IntrathecalDose]:
    doses = [dose(IntrathecalDrug.DEXAMETHASONE, "10")]
    return [*doses, dose(IntrathecalDrug.METHOTREXATE, "10")] if methotrexate else doses
