"""Data-quality rules that raise queries by themselves.

Each rule looks at one patient's records and reports findings: a missing value the study needs, a
value beyond what is plausible (but not impossible, so the entry was accepted), or dates that
contradict each other across records. ``check_patient`` turns findings into open rule queries (one
per rule, record and field) and closes the rule queries whose finding has gone. It runs after every
committed change to a patient's records and for everyone in ``python manage.py run_quality_checks``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils import timezone

from registry import csf_limits
from registry.choices import Attribution, DiseaseArea, FollowUpEventType
from registry.models import (
    AdverseEvent,
    CsfResult,
    FollowUpEvent,
    IcansAssessment,
    IntrathecalDose,
    LumbarPuncture,
    Patient,
    ResponseAssessment,
    Sledai2kAssessment,
)
from registry.models.base import local_date

from .models import DataQuery, QueryMessage, QueryOrigin, QueryStatus


@dataclass(frozen=True)
class Finding:
    rule_code: str
    section: str
    message: str
    record: models.Model | None = None
    field_name: str = ""


Rule = Callable[[Patient], Iterator[Finding]]
RULES: list[Rule] = []


def rule(function: Rule) -> Rule:
    RULES.append(function)
    return function


# --- outliers: accepted on entry, but worth a second look ---------------------------------------

OUTLIERS = [
    # (model, field, low, high, unit)
    (LumbarPuncture, "opening_pressure_mmh2o", None, csf_limits.OPENING_PRESSURE_REVIEW_ABOVE_MMH2O, "mmH2O"),
    (CsfResult, "protein_g_per_l", None, csf_limits.PROTEIN_REVIEW_ABOVE_G_PER_L, "g/L"),
    (CsfResult, "wbc_1e6_per_l", None, csf_limits.WBC_REVIEW_ABOVE_1E6_PER_L, "×10⁶/L"),
    (CsfResult, "glucose_mmol_per_l", csf_limits.GLUCOSE_REVIEW_BELOW_MMOL_PER_L, None, "mmol/L"),
]


@rule
def implausible_values(patient: Patient) -> Iterator[Finding]:
    lps = LumbarPuncture.objects.filter(patient=patient)
    sources = {LumbarPuncture: lps, CsfResult: CsfResult.objects.filter(lumbar_puncture__in=lps)}
    for model, field, low, high, unit in OUTLIERS:
        for record in sources[model]:
            value = getattr(record, field)
            if value is None:
                continue
            label = model._meta.get_field(field).verbose_name
            if high is not None and value > high:
                yield Finding(
                    f"outlier_{field}",
                    "procedures",
                    f"{label} {value} {unit} is unusually high (above {high}); "
                    "please confirm against the source document.",
                    record,
                    field,
                )
            if low is not None and value < low:
                yield Finding(
                    f"outlier_{field}",
                    "procedures",
                    f"{label} {value} {unit} is unusually low (below {low}); "
                    "please confirm against the source document.",
                    record,
                    field,
                )
    for assessment in Sledai2kAssessment.objects.filter(patient=patient, total__gt=45):
        yield Finding(
            "outlier_sledai",
            "diagnosis",
            f"SLEDAI-2K of {assessment.total} is unusually high; please confirm the ticked descriptors.",
            assessment,
            "total",
        )


# --- missing values the analyses need -----------------------------------------------------------


@rule
def missing_values(patient: Patient) -> Iterator[Finding]:
    for lp in LumbarPuncture.objects.filter(patient=patient, opening_pressure_mmh2o__isnull=True):
        yield Finding(
            "missing_opening_pressure",
            "procedures",
            "The opening pressure is missing (needed for the ICP analyses).",
            lp,
            "opening_pressure_mmh2o",
        )
    area = patient.study.disease_area
    old_enough = patient.index_admission_date < timezone.localdate() - dt.timedelta(days=60)
    if area == DiseaseArea.NPSLE and not Sledai2kAssessment.objects.filter(patient=patient).exists():
        yield Finding("missing_sledai", "diagnosis", "No SLEDAI-2K assessment is recorded.", patient)
    if area == DiseaseArea.NPSLE and old_enough and not hasattr(patient, "discharge"):
        yield Finding(
            "missing_discharge",
            "outcomes",
            "No discharge outcome is recorded for the index admission.",
            patient,
        )
    if area == DiseaseArea.LM and hasattr(patient, "lm_diagnosis") and patient.lm_diagnosis.ecog is None:
        yield Finding(
            "missing_ecog", "diagnosis", "ECOG performance status is missing.", patient.lm_diagnosis, "ecog"
        )
    ends = FollowUpEvent.objects.filter(
        patient=patient, event_type__in=[FollowUpEventType.DEATH, FollowUpEventType.LAST_CONTACT]
    )
    if old_enough and not ends.exists():
        yield Finding(
            "missing_end_of_follow_up",
            "outcomes",
            "Neither a death nor a last contact is recorded; survival time cannot be computed.",
            patient,
        )


# --- dates that contradict each other across records ---------------------------------------------


@rule
def lumbar_puncture_before_admission(patient: Patient) -> Iterator[Finding]:
    index = patient.index_admission_date
    for lp in LumbarPuncture.objects.filter(patient=patient):
        if local_date(lp.performed_at) < index - dt.timedelta(days=30):
            yield Finding(
                "date_lp_before_admission",
                "procedures",
                "This lumbar puncture is more than 30 days before the index admission.",
                lp,
                "performed_at",
            )


@rule
def event_before_discharge(patient: Patient) -> Iterator[Finding]:
    discharge = getattr(patient, "discharge", None) if hasattr(patient, "discharge") else None
    if discharge is None:
        return
    for event in FollowUpEvent.objects.filter(
        patient=patient,
        event_date__lt=discharge.discharge_date,
        event_type__in=[FollowUpEventType.NPSLE_RELAPSE, FollowUpEventType.LM_PROGRESSION],
    ):
        yield Finding(
            "date_event_before_discharge",
            "outcomes",
            f"{event.get_event_type_display()} is dated before the discharge "
            f"from the index admission ({discharge.discharge_date:%Y-%m-%d}).",
            event,
            "event_date",
        )


@rule
def before_first_intrathecal_dose(patient: Patient) -> Iterator[Finding]:
    """Adverse events attributed to intrathecal therapy, and LM responses, before the first dose."""
    first_dose = (
        IntrathecalDose.objects.filter(lumbar_puncture__patient=patient)
        .order_by("lumbar_puncture__performed_at")
        .values_list("lumbar_puncture__performed_at", flat=True)
        .first()
    )
    if first_dose is None:
        return
    first_day = local_date(first_dose)
    for ae in AdverseEvent.objects.filter(
        patient=patient, attribution=Attribution.INTRATHECAL_THERAPY, onset_date__lt=first_day
    ):
        yield Finding(
            "date_ae_before_first_dose",
            "safety",
            f"Attributed to intrathecal therapy but begins before the first "
            f"intrathecal dose ({first_day:%Y-%m-%d}).",
            ae,
            "onset_date",
        )
    if patient.study.disease_area == DiseaseArea.LM:
        for response in ResponseAssessment.objects.filter(patient=patient, assessed_on__lt=first_day):
            yield Finding(
                "date_response_before_first_dose",
                "outcomes",
                "A response is assessed before the first intrathecal dose.",
                response,
                "assessed_on",
            )


@rule
def icans_before_infusion(patient: Patient) -> Iterator[Finding]:
    if patient.study.disease_area != DiseaseArea.ICANS:
        return
    infusion = patient.car_t_infusions.order_by("infusion_date").first()
    if infusion is None:
        return
    for assessment in IcansAssessment.objects.filter(patient=patient):
        if local_date(assessment.assessed_at) < infusion.infusion_date:
            yield Finding(
                "date_icans_before_infusion",
                "diagnosis",
                f"This ICANS assessment is before the CAR-T infusion ({infusion.infusion_date:%Y-%m-%d}).",
                assessment,
                "assessed_at",
            )


# --- from findings to queries -------------------------------------------------------------------


def findings(patient: Patient) -> list[Finding]:
    return [finding for check in RULES for finding in check(patient)]


def _key(content_type_id: int | None, object_id: int | None, field: str, code: str) -> tuple:
    return content_type_id, object_id, field, code


@transaction.atomic
def check_patient(patient: Patient) -> tuple[int, int]:
    """Open queries for new findings, close those whose finding has gone; returns (opened, closed)."""
    found: dict[tuple, Finding] = {}
    for finding in findings(patient):
        content_type = (
            ContentType.objects.get_for_model(finding.record) if finding.record is not None else None
        )
        key = _key(
            content_type.pk if content_type else None,
            finding.record.pk if finding.record is not None else None,
            finding.field_name,
            finding.rule_code,
        )
        found[key] = finding
    existing = {
        _key(q.content_type_id, q.object_id, q.field_name, q.rule_code): q
        for q in DataQuery.objects.filter(patient=patient, origin=QueryOrigin.RULE).exclude(
            status=QueryStatus.CLOSED
        )
    }
    opened = closed = 0
    for key, finding in found.items():
        if key in existing:
            continue
        content_type_id, object_id, field_name, rule_code = key
        query = DataQuery.objects.create(
            patient=patient,
            section=finding.section,
            content_type_id=content_type_id,
            object_id=object_id,
            field_name=field_name,
            message=finding.message,
            origin=QueryOrigin.RULE,
            rule_code=rule_code,
        )
        QueryMessage.objects.create(query=query, text=finding.message)
        opened += 1
    for key, query in existing.items():
        if key not in found:
            QueryMessage.objects.create(
                query=query, text="Resolved: the data-quality rule no longer finds this."
            )
            query.status, query.closed_at = QueryStatus.CLOSED, timezone.now()
            query._change_reason = "Resolved by the data-quality rule"
            query.save()
            closed += 1
    return opened, closed


def schedule_check(patient_id: int) -> None:
    """Run ``check_patient`` once per patient when the current transaction commits.

    One flush callback per transaction collects the patient ids; it is found again in the
    connection's pending on-commit list, which Django empties at every commit or rollback.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        _run({patient_id})
        return
    for _savepoints, callback, _robust in connection.run_on_commit:
        if getattr(callback, "quality_patients", None) is not None:
            callback.quality_patients.add(patient_id)
            return
    patients = {patient_id}

    def flush() -> None:
        _run(patients)

    flush.quality_patients = patients
    # robust: a failing check is logged and never fails (or undoes) the user's committed save
    transaction.on_commit(flush, robust=True)


def _run(patient_ids) -> None:
    for patient in Patient.objects.filter(pk__in=list(patient_ids)).select_related("study"):
        check_patient(patient)
