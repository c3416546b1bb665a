"""Enrolment and death: the patient-level writes that touch more than one record."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction

from ..choices import DeathCause, FollowUpEventType
from ..models import FollowUpEvent, Patient, PatientIdentifier, Site, Study
from .records import attribute, record_save


@transaction.atomic
def patient_enrol(
    *,
    study: Study,
    site: Site,
    study_code: str,
    sex: str,
    index_admission_date: dt.date,
    birth_date: dt.date | None = None,
    birth_year: int | None = None,
    full_name: str = "",
    medical_record_number: str = "",
    actor,
    reason: str = "Enrolled",
) -> Patient:
    """Create a patient and, when given, their identifiers, in one transaction."""
    patient = Patient(
        study=study,
        site=site,
        study_code=study_code,
        sex=sex,
        birth_date=birth_date,
        birth_year=birth_year,
        index_admission_date=index_admission_date,
    )
    record_save(patient, actor=actor, reason=reason)
    if full_name or medical_record_number:
        identifier = PatientIdentifier(
            patient=patient, full_name=full_name, medical_record_number=medical_record_number
        )
        record_save(identifier, actor=actor, reason=reason)
    return patient


@transaction.atomic
def patient_record_death(
    *, patient: Patient, death_date: dt.date, cause: DeathCause | str, actor, reason: str
) -> FollowUpEvent:
    """Record (or correct) a death on the patient and as a follow-up event, keeping the two in agreement.

    A 'last contact (alive)' event on or before the death is superseded by the death and removed;
    one after it means the date is wrong, and is refused.
    """
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    for contact in patient.follow_up_events.filter(event_type=FollowUpEventType.LAST_CONTACT):
        if contact.event_date > death_date:
            raise ValidationError(
                {
                    "death_date": f"The patient was recorded alive on {contact.event_date:%Y-%m-%d}, after this date."
                }
            )
        attribute(contact, actor=actor, reason=f"Superseded by death: {reason}")
        contact.delete()
    patient.death_date = death_date
    patient.death_cause = cause
    record_save(patient, actor=actor, reason=reason)
    event = patient.follow_up_events.filter(event_type=FollowUpEventType.DEATH).first() or FollowUpEvent(
        patient=patient, event_type=FollowUpEventType.DEATH
    )
    event.patient = patient
    event.event_date = death_date
    return record_save(event, actor=actor, reason=reason)
