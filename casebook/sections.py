"""What each section of the case-record page shows (reads only; writes go through the services)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse

from accounts.access import Capability, has_capability
from protocols.choices import ProtocolStatus
from protocols.models import Course, Protocol, SafetyOverride
from protocols.selectors import active_protocols, patient_course_calendars
from registry.choices import DiseaseArea
from registry.models import AdverseEvent, IntrathecalDose, LumbarPuncture, NpsleDiagnosis, Patient
from registry.scoring import SLEDAI_2K_DESCRIPTORS
from review.guards import locked_notice
from review.models import DataQuery, QueryStatus, ReviewStatus, SectionReview
from review.rules import settle
from review.selectors import patient_queries, section_reviews

from .records import KINDS, SECTIONS


def permissions(user, patient: Patient) -> dict[str, bool]:
    return {
        "can_edit": has_capability(user, Capability.EDIT_RECORDS, patient.site_id),
        "can_review": has_capability(user, Capability.REVIEW, patient.site_id),
        "sees_identifiers": has_capability(user, Capability.VIEW_IDENTIFIERS, patient.site_id),
    }


@dataclass(frozen=True)
class ReviewState:
    """The review rows and open queries of every section of one patient (two queries for the page)."""

    reviews: dict[str, SectionReview | None]
    queries: dict[str, list[DataQuery]]


def review_state(patient: Patient) -> ReviewState:
    # The data-quality queries of a write just made, before they are shown. Without one, the case
    # record knows from the patient's row whether any query is open (``case_record_patients``).
    checked = settle(patient.pk)
    queries: dict[str, list[DataQuery]] = defaultdict(list)
    if checked or getattr(patient, "has_open_queries", True):
        for query in patient_queries(patient):
            queries[query.section].append(query)
    return ReviewState(section_reviews(patient), dict(queries))


#: The one-to-one records the sections show, read with the patient on the whole case-record page.
ONE_TO_ONE = ("npsle_diagnosis", "lm_diagnosis", "discharge")


def case_record_patients(sees_identifiers: bool) -> QuerySet[Patient]:
    """Patients with what every section of the case record reads once per patient: its study and
    site, its one-to-one records (the identifier only for who may see it), and whether its disease
    area has an active protocol (the *Start course* button)."""
    related = ["study", "site", *ONE_TO_ONE, *(["identifier"] if sees_identifiers else [])]
    active = Protocol.objects.filter(
        status=ProtocolStatus.ACTIVE, disease_area=OuterRef("study__disease_area")
    )
    courses = (
        Course.objects.filter(patient=OuterRef("pk")).order_by().values("patient").annotate(n=Count("pk"))
    )
    return Patient.objects.select_related(*related).annotate(
        has_active_protocol=Exists(active),
        course_count=Coalesce(Subquery(courses.values("n")), 0),
        has_open_queries=Exists(
            DataQuery.objects.filter(patient=OuterRef("pk")).exclude(status=QueryStatus.CLOSED)
        ),
    )


def _read_with_patient(patient: Patient, relation: str) -> Any:
    """A one-to-one record of the patient (None if it has none), read already when the page
    selected it with the patient, else now."""
    return getattr(patient, relation, None)


def section_context(patient: Patient, key: str, user, state: ReviewState | None = None) -> dict[str, Any]:
    """Everything the template of one section needs, including its review state and open queries.

    The case-record page reads ``state`` once for all its sections; one section alone reads its own.
    """
    state = state or review_state(patient)
    review = state.reviews.get(key)
    status = review.status if review else ReviewStatus.DRAFT
    rights = permissions(user, patient)
    context: dict[str, Any] = {
        "patient": patient,
        "section": key,
        "section_title": SECTIONS[key],
        "review": review,
        "status": status,
        "status_label": ReviewStatus(status).label,
        "locked_notice": locked_notice(review) if review and status == ReviewStatus.LOCKED else "",
        "queries": state.queries.get(key, []),
        **rights,
        # A locked section is read-only for everyone: its edit buttons disappear.
        "can_edit": rights["can_edit"] and status != ReviewStatus.LOCKED,
        "can_submit": rights["can_edit"] and status == ReviewStatus.DRAFT,
        "can_verify": rights["can_review"] and status == ReviewStatus.SUBMITTED,
        "can_lock": rights["can_review"] and status == ReviewStatus.VERIFIED,
        "can_unlock": rights["can_review"] and status == ReviewStatus.LOCKED,
    }
    builder = {
        "identity": _identity,
        "diagnosis": _diagnosis,
        "procedures": _procedures,
        "therapy": _therapy,
        "safety": _safety,
        "outcomes": _outcomes,
    }[key]
    context["template"] = f"casebook/sections/{key}.html"
    context.update(builder(patient, context))
    return context


def _add(patient: Patient, kind: str) -> str:
    return reverse("casebook:record_create", args=[patient.pk, kind])


def _identity(patient: Patient, context: dict) -> dict:
    identifier = _read_with_patient(patient, "identifier") if context["sees_identifiers"] else None
    return {
        "identifier": identifier,
        "age": patient.age_at_index_years,
        "actions": [("Edit", reverse("casebook:identity_edit", args=[patient.pk]))],
    }


def _diagnosis(patient: Patient, context: dict) -> dict:
    area = patient.study.disease_area
    if area == DiseaseArea.NPSLE:
        diagnosis = _read_with_patient(patient, "npsle_diagnosis")
        assessments = list(KINDS["sledai"].records(patient).order_by("assessed_on"))
        for assessment in assessments:
            assessment.ticked = [d.label for d in SLEDAI_2K_DESCRIPTORS if getattr(assessment, d.field)]
        return {
            "template": "casebook/sections/diagnosis_npsle.html",
            "diagnosis": diagnosis,
            "manifestations": diagnosis.manifestations.all() if diagnosis else [],
            "organs": [
                name.replace("_", " ")
                for name in NpsleDiagnosis.SLE_ORGANS
                if diagnosis and getattr(diagnosis, name)
            ],
            "sledai_assessments": assessments,
            "actions": [
                ("Edit diagnosis", reverse("casebook:diagnosis_edit", args=[patient.pk])),
                ("Add SLEDAI-2K", _add(patient, "sledai")),
            ],
        }
    if area == DiseaseArea.LM:
        diagnosis = _read_with_patient(patient, "lm_diagnosis")
        return {
            "template": "casebook/sections/diagnosis_lm.html",
            "diagnosis": diagnosis,
            "mutations": diagnosis.mutations.all() if diagnosis else [],
            "actions": [("Edit diagnosis", reverse("casebook:diagnosis_edit", args=[patient.pk]))],
        }
    return {
        "template": "casebook/sections/diagnosis_icans.html",
        "infusions": KINDS["infusion"].records(patient).order_by("infusion_date"),
        "icans_assessments": KINDS["icans"].records(patient).order_by("assessed_at"),
        "crs_assessments": KINDS["crs"].records(patient).order_by("assessed_at"),
        "actions": [
            ("Add CAR-T infusion", _add(patient, "infusion")),
            ("Add ICANS assessment", _add(patient, "icans")),
            ("Add CRS assessment", _add(patient, "crs")),
        ],
    }


def _adverse_events(patient: Patient) -> list[AdverseEvent]:
    """The patient's adverse events, read once for the page: the safety section lists them and the
    course calendar takes its step-back dates from them (kept on the patient object, per request)."""
    events: list[AdverseEvent] | None = getattr(patient, "_case_record_adverse_events", None)
    if events is None:
        events = list(KINDS["adverse-event"].records(patient).order_by("onset_date"))
        patient._case_record_adverse_events = events  # type: ignore[attr-defined]
    return events


def _procedures(patient: Patient, context: dict) -> dict:
    read = (
        LumbarPuncture.objects.filter(patient=patient)
        .select_related("csf", "planned_injection")
        .prefetch_related(
            Prefetch("doses", queryset=IntrathecalDose.objects.order_by("timing", "drug")),
            Prefetch(
                "safety_overrides",
                queryset=SafetyOverride.objects.select_related("overridden_by").within_owner(),
            ),
        )
        .order_by("performed_at")
    )
    punctures = list(read)
    calendars = patient_course_calendars(
        patient, punctures, _adverse_events(patient), getattr(patient, "course_count", None)
    )
    active = next((course for course, _ in calendars if course.is_active), None)
    actions = [("Add lumbar puncture", reverse("casebook:lp_create", args=[patient.pk]))]
    protocol_available = getattr(patient, "has_active_protocol", None)
    if protocol_available is None:  # a section alone: not read with the patient
        protocol_available = active_protocols(patient.study.disease_area).exists()
    if active is None and protocol_available:
        actions.append(("Start course", reverse("protocols:course_create", args=[patient.pk])))
    if active is not None:
        actions.append(("Stop course", reverse("protocols:course_stop", args=[patient.pk, active.pk])))
    return {
        "punctures": punctures,
        "cumulative": _cumulative_dose_mg(punctures),
        "courses": calendars,
        "actions": actions,
    }


def _cumulative_dose_mg(punctures: list[LumbarPuncture]) -> dict[str, Decimal | None]:
    """Total intrathecal mg per drug, from the doses already read with the punctures (as SQL's SUM
    adds them: a dose without mg adds nothing; a drug with none in mg totals None)."""
    totals: dict[str, Decimal | None] = {}
    for puncture in punctures:
        for dose in puncture.doses.all():
            before = totals.get(dose.drug)
            if dose.dose_mg is None:
                totals.setdefault(dose.drug, None)
            else:
                totals[dose.drug] = dose.dose_mg if before is None else before + dose.dose_mg
    return dict(sorted(totals.items()))


def _therapy(patient: Patient, context: dict) -> dict:
    return {
        "therapies": KINDS["therapy"].records(patient).order_by("start_date"),
        "actions": [("Add therapy", _add(patient, "therapy"))],
    }


def _safety(patient: Patient, context: dict) -> dict:
    return {
        "adverse_events": _adverse_events(patient),
        "actions": [("Add adverse event", _add(patient, "adverse-event"))],
    }


def _outcomes(patient: Patient, context: dict) -> dict:
    discharge = _read_with_patient(patient, "discharge")
    actions = [
        ("Edit discharge" if discharge else "Add discharge", _add(patient, "discharge")),
        ("Add response assessment", _add(patient, "response")),
        ("Add follow-up event", _add(patient, "follow-up")),
    ]
    death_label = "Correct death" if patient.death_date else "Record death"
    actions.append((death_label, reverse("casebook:death_record", args=[patient.pk])))
    return {
        "discharge": discharge,
        "responses": KINDS["response"].records(patient).order_by("assessed_on"),
        "events": KINDS["follow-up"].records(patient).order_by("event_date"),
        "actions": actions,
    }
