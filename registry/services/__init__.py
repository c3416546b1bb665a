"""Write services: every change to a case record goes through here (pages, admin actions, API,
importers, demo loader), so validation and attribution (who, when, why) live in one place."""

from .diagnoses import lm_diagnosis_save, npsle_diagnosis_save
from .patients import patient_enrol, patient_move_site, patient_record_death
from .procedures import lumbar_puncture_record, lumbar_puncture_save
from .records import record_delete, record_save
from .screening import screening_entry_delete, screening_entry_save

__all__ = [
    "lm_diagnosis_save",
    "npsle_diagnosis_save",
    "lumbar_puncture_record",
    "lumbar_puncture_save",
    "patient_enrol",
    "patient_move_site",
    "patient_record_death",
    "record_delete",
    "record_save",
    "screening_entry_delete",
    "screening_entry_save",
]
