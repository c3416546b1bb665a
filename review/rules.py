"""Data-quality rules that raise queries by themselves (a query, never a refusal: hard limits stay errors).

Each rule looks at one patient's records and reports findings: a missing value the study needs, a
value beyond what is plausible (but not impossible, so the entry was accepted), or dates that
contradict each other across records. ``check_patient`` turns findings into open rule queries (one
per rule, record and field) and closes the rule queries whose finding has gone, each step written as
an action event of the system (no actor). It runs on every write to a patient's records (before the
write's page is answered, see ``settle``; otherwise when the transaction commits) and for everyone in
``python manage.py run_quality_checks``.

Completeness findings (``missing_*``) wait until their section is submitted: data entry is still
typing before that, so "No SLEDAI-2K recorded" does not appear the second a patient is enrolled, and a
cohort whose source never reported a value (ECOG in the LM paper) gets one query per patient when the
section is handed over, not a flood on the first day.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils import timezone

from registry import csf_limits
from registry.action_events import ActionKind
from registry.choices import Attribution, DiseaseArea, FollowUpEventType
from registry.models import (
    AdverseEvent,
    CarTInfusion,
    CrsAssessment,
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

from .models import (
    STATUS_ORDER,
    DataQuery,
    QueryMessage,
    QueryOrigin,
    QueryStatus,
    ReviewStatus,
    SectionReview,
)
from .query_events import query_event

logger = logging.getLogger(__name__)
RESOLVED = "Resolved: the data-quality rule no longer finds this."


@dataclass(frozen=True)
class Finding:
    rule_code: str
    section: str
    message: str
    record: models.Model | None = None
    field_name: str = ""

    @property
    def waits_for_submission(self) -> bool:
        """Completeness findings are raised only once their section is submitted."""
        return self.rule_code.startswith("missing_")


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
    lps = LumbarPuncture.objects.filter(patient=patient).within_owner()
    sources = {LumbarPuncture: lps, CsfResult: CsfResult.objects.filter(lumbar_puncture__in=lps)}
    for model, field, low, high, unit in OUTLIERS:
        for record in sources[model]:
            value = getattr(record, field)
            if value is None:
                continue
            label = model._meta.get_field(field).verbose_name  # type: ignore[union-attr]  # a concrete field
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
    for assessment in Sledai2kAssessment.objects.filter(patient=patient, total__gt=45).within_owner():
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
    for lp in LumbarPuncture.objects.filter(
        patient=patient, opening_pressure_mmh2o__isnull=True
    ).within_owner():
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


def _before_admission(patient: Patient, day: dt.date) -> str | None:
    """How far before the index admission a date lies, if beyond the window allowed (settings)."""
    window = settings.QUALITY_DAYS_BEFORE_ADMISSION
    gap = (patient.index_admission_date - day).days
    if gap <= window:
        return None
    return (
        f"{gap} day{'s' if gap != 1 else ''} before the index admission "
        f"({patient.index_admission_date:%Y-%m-%d}; up to {window} allowed)"
    )


@rule
def dated_before_admission(patient: Patient) -> Iterator[Finding]:
    """An LP, response, relapse or progression dated before the index admission (beyond the window)."""
    for lp in LumbarPuncture.objects.filter(patient=patient).within_owner():
        gap = _before_admission(patient, local_date(lp.performed_at))
        if gap:
            yield Finding(
                "date_lp_before_admission",
                "procedures",
                f"This lumbar puncture is {gap}; please check the date.",
                lp,
                "performed_at",
            )
    for response in ResponseAssessment.objects.filter(patient=patient).within_owner():
        gap = _before_admission(patient, response.assessed_on)
        if gap:
            yield Finding(
                "date_response_before_admission",
                "outcomes",
                f"This response assessment is {gap}.",
                response,
                "assessed_on",
            )
    for event in FollowUpEvent.objects.filter(
        patient=patient, event_type__in=[FollowUpEventType.NPSLE_RELAPSE, FollowUpEventType.LM_PROGRESSION]
    ).within_owner():
        gap = _before_admission(patient, event.event_date)
        if gap:
            yield Finding(
                "date_event_before_admission",
                "outcomes",
                f"{event.get_event_type_display()} is {gap}.",
                event,
                "event_date",
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
    ).within_owner():
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
    ).within_owner():
        yield Finding(
            "date_ae_before_first_dose",
            "safety",
            f"Attributed to intrathecal therapy but begins before the first "
            f"intrathecal dose ({first_day:%Y-%m-%d}).",
            ae,
            "onset_date",
        )
    if patient.study.disease_area == DiseaseArea.LM:
        for response in ResponseAssessment.objects.filter(
            patient=patient, assessed_on__lt=first_day
        ).within_owner():
            yield Finding(
                "date_response_before_first_dose",
                "outcomes",
                "A response is assessed before the first intrathecal dose.",
                response,
                "assessed_on",
            )


@rule
def toxicity_before_infusion(patient: Patient) -> Iterator[Finding]:
    """ICANS and CRS are toxicities of the infusion: an assessment before it contradicts the dates."""
    if patient.study.disease_area != DiseaseArea.ICANS:
        return
    infusion = patient.car_t_infusions.order_by("infusion_date").first()
    if infusion is None:
        return
    for model, code, label in (
        (IcansAssessment, "date_icans_before_infusion", "ICANS"),
        (CrsAssessment, "date_crs_before_infusion", "CRS"),
    ):
        for assessment in model.objects.filter(patient=patient).within_owner():
            if local_date(assessment.assessed_at) < infusion.infusion_date:
                yield Finding(
                    code,
                    "diagnosis",
                    f"This {label} assessment is before the CAR-T infusion ({infusion.infusion_date:%Y-%m-%d}).",
                    assessment,
                    "assessed_at",
                )


def car_t_dose_range(product: str) -> tuple[Decimal, Decimal, str]:
    """The plausible per-kg dose of a product: its labelled range (settings.CAR_T_LABELLED_DOSE_PER_KG),
    else the range of every licensed product (settings.CAR_T_PLAUSIBLE_PER_KG)."""
    name = product.lower()
    for names, low, high in settings.CAR_T_LABELLED_DOSE_PER_KG:
        if any(n in name for n in names):
            return Decimal(low), Decimal(high), f"the labelled range of {names[0]}"
    low, high = settings.CAR_T_PLAUSIBLE_PER_KG
    return Decimal(low), Decimal(high), "the range of licensed CAR-T products"


@rule
def car_t_dose_outside_label(patient: Patient) -> Iterator[Finding]:
    for infusion in CarTInfusion.objects.filter(
        patient=patient, dose_1e6_cells_per_kg__isnull=False
    ).within_owner():
        low, high, source = car_t_dose_range(infusion.product)
        dose = infusion.dose_1e6_cells_per_kg
        assert dose is not None  # filtered on above
        if not low <= dose <= high:
            yield Finding(
                "plausibility_car_t_dose",
                "diagnosis",
                f"A dose of {dose.normalize():f} ×10⁶ cells/kg is outside {source} "
                f"({low.normalize():f}–{high.normalize():f} ×10⁶ cells/kg); please check the unit "
                "against the infusion record.",
                infusion,
                "dose_1e6_cells_per_kg",
            )


# --- from findings to queries -------------------------------------------------------------------


def findings(patient: Patient) -> list[Finding]:
    return [finding for check in RULES for finding in check(patient)]


def _key(content_type_id: int | None, object_id: int | None, field: str, code: str) -> tuple:
    return content_type_id, object_id, field, code


def _submitted_sections(patient: Patient) -> set[str]:
    statuses = SectionReview.objects.filter(patient=patient).order_by().values_list("section", "status")
    return {
        section
        for section, status in statuses
        if STATUS_ORDER[status] >= STATUS_ORDER[ReviewStatus.SUBMITTED]
    }


def _due(patient: Patient) -> dict[tuple, Finding]:
    """The findings that should have an open query now, by key (completeness ones once submitted)."""
    submitted = _submitted_sections(patient)
    found: dict[tuple, Finding] = {}
    for finding in findings(patient):
        if finding.waits_for_submission and finding.section not in submitted:
            continue
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
    return found


@transaction.atomic
def check_patient(patient: Patient) -> tuple[int, int]:
    """Open queries for new findings, close those whose finding has gone; returns (opened, closed)."""
    found = _due(patient)
    existing = {
        _key(q.content_type_id, q.object_id, q.field_name, q.rule_code): q
        for q in DataQuery.objects.filter(patient=patient, origin=QueryOrigin.RULE)
        .exclude(status=QueryStatus.CLOSED)
        .select_related("patient")
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
        query_event(ActionKind.QUERY_RAISED, query, actor=None, old="", text=finding.message)
        opened += 1
    for key, query in existing.items():
        if key not in found:
            QueryMessage.objects.create(query=query, text=RESOLVED)
            old = query.status
            query.status, query.closed_at = QueryStatus.CLOSED, timezone.now()
            query._change_reason = "Resolved by the data-quality rule"  # type: ignore[attr-defined]  # simple-history's way
            query.save()
            query_event(ActionKind.QUERY_CLOSED, query, actor=None, old=old, text=RESOLVED)
            closed += 1
    return opened, closed


def _pending() -> set[int] | None:
    """The patients whose check waits for the current transaction's commit (None: no check pending)."""
    connection = transaction.get_connection()
    for _savepoints, callback, _robust in connection.run_on_commit:
        patients = getattr(callback, "quality_patients", None)
        if patients is not None:
            return patients
    return None


class _QualityFlush:
    """The on-commit callback that checks the patients collected during one transaction."""

    def __init__(self, patients: set[int]) -> None:
        self.quality_patients = patients

    def __call__(self) -> None:
        _run(self.quality_patients)
        self.quality_patients.clear()


def schedule_check(patient_id: int) -> None:
    """Run ``check_patient`` once per patient when the current transaction commits.

    One flush callback per transaction collects the patient ids; it is found again in the
    connection's pending on-commit list, which Django empties at every commit or rollback.
    """
    schedule_checks([patient_id])


def schedule_checks(patient_ids: Iterable[int]) -> None:
    """``schedule_check`` for a bulk write's patients: the pending callback is looked for once, not
    once per patient (a 44,190-row import asked it 32,000 times)."""
    ids = list(patient_ids)
    if not ids:
        return
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        for patient_id in ids:
            _run({patient_id})
        return
    pending = _pending()
    if pending is not None:
        pending.update(ids)
        return
    flush = _QualityFlush(set(ids))
    # robust: a failing check is logged and never fails (or undoes) the user's committed save
    transaction.on_commit(flush, robust=True)


def settle(patient_id: int) -> bool:
    """Run the patient's pending check now, so the page answering a write shows the queries it leaves;
    whether a check ran (what was read of the patient's queries before may be out of date).

    A request runs in one transaction (ATOMIC_REQUESTS): a check waiting for the commit would run
    only after the page was rendered, so the page would show a query the save had just resolved.
    The check runs in a savepoint; if it fails, the commit runs it again (and logs the failure).
    """
    pending = _pending()
    if not pending or patient_id not in pending:
        return False
    try:
        with transaction.atomic():
            _run({patient_id})
    except Exception:  # the on-commit pass retries it; the user's save stands either way
        logger.exception("Data-quality check of patient %s failed; retried at commit", patient_id)
        return True
    pending.discard(patient_id)
    return True


def _run(patient_ids) -> None:
    for patient in Patient.objects.filter(pk__in=list(patient_ids)).select_related("study").order_by("pk"):
        check_patient(patient)
