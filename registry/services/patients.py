"""Enrolment and death: the patient-level writes that touch more than one record."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Site, User

from ..choices import DeathCause, FollowUpEventType
from ..models import FollowUpEvent, Patient, PatientIdentifier, Study
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
    actor: User,
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
def patient_move_site(*, patient: Patient, to_site: Site, actor: User, reason: str) -> Patient:
    """Move a patient to another site of its study: the only way a patient's site changes.

    Imports, the API and the admin never change it; who may move (the move right at both sites) is
    the caller's check. One history row records the new site, the person and the reason.
    """
    patient = Patient.objects.select_for_update().select_related("site", "study").get(pk=patient.pk)
    reason = reason.strip()
    errors: dict[str, str] = {}
    if not reason:
        errors["reason"] = "Give the reason for the move (it is kept in the patient's history)."
    if to_site.pk == patient.site_id:
        errors["site"] = f"The patient is already enrolled at {to_site}."
    elif not patient.study.sites.filter(pk=to_site.pk).exists():
        errors["site"] = f"{to_site} does not take part in the study {patient.study.code}."
    else:
        identifier = PatientIdentifier.objects.filter(patient=patient).first()
        mrn = identifier.medical_record_number if identifier else ""
        if mrn and (
            PatientIdentifier.objects.filter(
                patient__study_id=patient.study_id, patient__site=to_site, medical_record_number=mrn
            ).exists()
        ):
            errors["site"] = f"{to_site} already has a patient of this study with this medical record number."
    if errors:
        raise ValidationError(errors)
    from_site = patient.site
    patient.site = to_site
    return record_save(
        patient, actor=actor, reason=f"Moved from {from_site.code} to {to_site.code}: {reason}"
    )


@transaction.atomic
def patient_record_death(
    *, patient: Patient, death_date: dt.date, cause: DeathCause | str, actor: User, reason: str
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
