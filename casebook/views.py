"""Case-record pages: thin views over the access layer, the forms and the write services.

Each section of a patient's page is edited in place: with htmx the edit form replaces the section
and a save returns the refreshed section; without JavaScript the same URLs serve full pages and
redirect back. Another site's record is "not found" (404); a record the user may see but not
change answers 403.
"""

from __future__ import annotations

from concurrency.exceptions import RecordModifiedError
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import Capability, has_capability, scope, sites_with
from audit.models import SecurityEventKind
from audit.services import security_event_record
from registry.choices import DiseaseArea
from registry.formatting import sentence
from registry.models import (
    LmDiagnosis,
    LumbarPuncture,
    NpsleDiagnosis,
    Patient,
    PatientIdentifier,
    Study,
)
from registry.selectors import InStudyCodeOrder
from registry.services import (
    lm_diagnosis_save,
    npsle_diagnosis_save,
    patient_enrol,
    patient_move_site,
    patient_record_death,
    record_save,
)
from registry.services import record_delete as delete_record
from review import selectors as review_selectors

from . import forms, scores
from .lp_entry import TEMPLATE as LP_TEMPLATE
from .lp_entry import LumbarPunctureEntry
from .pages import (
    StaffRequest,
    apply_errors,
    ensure_unlocked,
    form_response,
    render_section,
    require_reason,
    saved_response,
    show_stale,
    visible_patient,
)
from .records import KINDS, SECTIONS, RecordKind
from .sections import case_record_patients, review_state, section_context
from .status_views import worklists

# --- helpers ---------------------------------------------------------------------------------


def _posted(request: HttpRequest):
    """The submitted data on POST (even when empty, so an empty submission is validated), else None."""
    return request.POST if request.method == "POST" else None


# --- pages -----------------------------------------------------------------------------------


@login_required
def home(request: StaffRequest) -> HttpResponse:
    """My work (a reviewer's worklist; data entry's drafts and queries to answer), my studies and
    recently changed patients, within my sites."""
    user = request.user
    site_ids = {
        site.pk
        for capability in (Capability.VIEW_RECORDS, Capability.RUN_REPORTS)
        for site in sites_with(user, capability)
    }
    studies = Study.objects.filter(sites__in=site_ids).distinct()
    can_view = has_capability(user, Capability.VIEW_RECORDS)
    recent = (
        scope(Patient.objects.select_related("study", "site"), user).order_by("-updated_at")[:10]
        if can_view
        else []
    )
    return render(
        request,
        "casebook/home.html",
        {
            "studies": studies,
            "recent": recent,
            "can_enrol": has_capability(user, Capability.EDIT_RECORDS),
            "can_view_records": can_view,
            **worklists(user),
        },
    )


#: Names are matched inside (trigram index on PostgreSQL) only from this length: shorter fragments
#: match too many names to be a search.
NAME_SEARCH_MIN_LENGTH = 3


def _search(query: str, user) -> Q:
    """Patients whose study code or MRN starts with the query (indexed prefixes, case-insensitive), or
    whose name contains it, among identifiers the user may see (registry migration 0013)."""
    matches = Q(medical_record_number__istartswith=query)
    if len(query) >= NAME_SEARCH_MIN_LENGTH:
        matches |= Q(full_name__icontains=query)
    identified = scope(PatientIdentifier.objects.all(), user, Capability.VIEW_IDENTIFIERS).filter(matches)
    return Q(study_code__istartswith=query) | Q(identifier__in=identified)


PATIENT_PAGE_SIZE = 50
#: Orders other than the study-code order (``InStudyCodeOrder``, the default).
PATIENT_ORDER = {
    "site": ["site__name", "study__code", "study_code"],
    "-admission": ["-index_admission_date", "study__code", "study_code"],
    "-updated": ["-updated_at", "pk"],
}


def _searched(form: forms.PatientSearchForm, patients, user) -> QuerySet[Patient] | InStudyCodeOrder:
    """The patients the search and filters keep, in the order chosen."""
    if not form.is_valid():
        return InStudyCodeOrder(patients)
    data = form.cleaned_data
    query = data["q"].strip()
    if data["study"]:
        patients = patients.filter(study=data["study"])
    if data["site"]:
        patients = patients.filter(site=data["site"])
    if data["status"]:
        patients = review_selectors.having_status(patients, data["status"])
    if query:
        patients = patients.filter(_search(query, user))
    order = PATIENT_ORDER.get(data["sort"])
    return patients.order_by(*order) if order else InStudyCodeOrder(patients)


@login_required
def patient_list(request: StaffRequest) -> HttpResponse:
    """Search by study code (names and MRNs only where the user may see identifiers), filter by
    study, site and review status, order, and page through; each row shows its sections' review."""
    user = request.user
    if not has_capability(user, Capability.VIEW_RECORDS):
        raise PermissionDenied("Your role does not include case records.")
    form = forms.PatientSearchForm(request.GET or None, user=user)
    patients = _searched(form, scope(Patient.objects.select_related("study", "site"), user), user)
    page = Paginator(patients, PATIENT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    unsorted = query.copy()
    unsorted.pop("sort", None)
    return render(
        request,
        "casebook/patient_list.html",
        {
            "form": form,
            "page": page,
            "patients": page.object_list,
            "rows": review_selectors.status_rows(list(page.object_list)),
            "query": query.urlencode(),
            "unsorted": unsorted.urlencode(),
            "can_enrol": has_capability(user, Capability.EDIT_RECORDS),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def patient_create(request: StaffRequest) -> HttpResponse:
    if not has_capability(request.user, Capability.EDIT_RECORDS):
        raise PermissionDenied("Your role does not allow enrolling patients.")
    form = forms.PatientCreateForm(_posted(request), user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            patient = patient_enrol(
                study=data["study"],
                site=data["site"],
                study_code=data["study_code"],
                sex=data["sex"],
                birth_date=data["birth_date"],
                birth_year=data["birth_year"],
                index_admission_date=data["index_admission_date"],
                full_name=data["full_name"],
                medical_record_number=data["medical_record_number"],
                actor=request.user,
            )
        except ValidationError as error:
            apply_errors(error, form)
        else:
            messages.success(request, f"Patient {patient} enrolled.")
            return redirect("casebook:patient_detail", pk=patient.pk)
    return render(request, "casebook/patient_create.html", {"form": form})


@login_required
def patient_detail(request: StaffRequest, pk: int) -> HttpResponse:
    sees_identifiers = has_capability(request.user, Capability.VIEW_IDENTIFIERS)
    patient = visible_patient(request, pk, queryset=case_record_patients(sees_identifiers))
    state = review_state(patient)  # every section's review and open queries, read once
    sections = [
        (
            key,
            title,
            render_to_string(
                "casebook/section.html", section_context(patient, key, request.user, state), request
            ),
        )
        for key, title in SECTIONS.items()
    ]
    rights = {
        "can_edit": has_capability(request.user, Capability.EDIT_RECORDS, patient.site_id),
        "can_review": has_capability(request.user, Capability.REVIEW, patient.site_id),
        "can_move": has_capability(request.user, Capability.MOVE_PATIENTS, patient.site_id),
    }
    return render(
        request, "casebook/patient_detail.html", {"patient": patient, "sections": sections, **rights}
    )


@login_required
def section(request: StaffRequest, pk: int, key: str) -> HttpResponse:
    if key not in SECTIONS:
        raise Http404("No such section.")
    return render_section(request, visible_patient(request, pk), key)


# --- identity --------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def identity_edit(request: StaffRequest, pk: int) -> HttpResponse:
    patient = visible_patient(request, pk, edit=True)
    sees_identifiers = has_capability(request.user, Capability.VIEW_IDENTIFIERS, patient.site_id)
    data = request.POST if request.method == "POST" else None
    form = require_reason(forms.PatientIdentityForm(data, instance=patient), patient, "identity")
    identifier = PatientIdentifier.objects.filter(patient=patient).first() or PatientIdentifier(
        patient=patient
    )
    id_form = forms.IdentifierForm(data, instance=identifier, prefix="id") if sees_identifiers else None
    if request.method == "POST" and form.is_valid() and (id_form is None or id_form.is_valid()):
        reason = form.reason("Identity edited")
        try:
            with transaction.atomic():
                record_save(form.instance, actor=request.user, reason=reason)
                if id_form is not None and (identifier.pk or id_form.has_changed()):
                    record_save(id_form.instance, actor=request.user, reason=reason)
        except RecordModifiedError:
            show_stale(form)
        except ValidationError as error:
            apply_errors(error, form)
        else:
            return saved_response(request, patient, "identity", "Identity saved.")
    return form_response(
        request, patient, "identity", "casebook/forms/identity_form.html", {"form": form, "id_form": id_form}
    )


@login_required
@require_http_methods(["GET", "POST"])
def patient_move(request: StaffRequest, pk: int) -> HttpResponse:
    """Move the patient to another site of the study: the move right is needed here and there."""
    patient = visible_patient(request, pk)
    if not has_capability(request.user, Capability.MOVE_PATIENTS, patient.site_id):
        raise PermissionDenied("Only a study administrator of this site may move its patients.")
    form = forms.PatientMoveForm(_posted(request), patient=patient, user=request.user)
    if request.method == "POST" and form.is_valid():
        from_site = patient.site
        try:
            patient_move_site(
                patient=patient,
                to_site=form.cleaned_data["site"],
                actor=request.user,
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as error:
            apply_errors(error, form)
        else:
            security_event_record(
                SecurityEventKind.PATIENT_MOVED,
                request=request,
                detail={
                    "study": patient.study.code,
                    "patient": patient.study_code,
                    "from_site": from_site.code,
                    "to_site": form.cleaned_data["site"].code,
                    "reason": form.cleaned_data["reason"],
                },
            )
            messages.success(request, f"{patient.study_code} now belongs to {form.cleaned_data['site']}.")
            return redirect("casebook:patient_detail", pk=patient.pk)
    return render(request, "casebook/patient_move.html", {"patient": patient, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def death_record(request: StaffRequest, pk: int) -> HttpResponse:
    patient = visible_patient(request, pk, edit=True)
    form = require_reason(
        forms.DeathForm(_posted(request), instance=Patient.objects.get(pk=patient.pk)), patient, "outcomes"
    )
    if request.method == "POST" and form.is_valid():
        try:
            patient_record_death(
                patient=patient,
                death_date=form.cleaned_data["death_date"],
                cause=form.cleaned_data["death_cause"],
                actor=request.user,
                reason=form.reason("Death corrected" if patient.death_date else "Death recorded"),
            )
        except RecordModifiedError:
            show_stale(form)
        except ValidationError as error:
            apply_errors(error, form)
        else:
            patient.refresh_from_db()
            return saved_response(request, patient, "outcomes", "Death recorded.")
    title = "Correct the death" if patient.death_date else "Record death"
    return form_response(
        request,
        patient,
        "outcomes",
        "casebook/forms/record_form.html",
        {"form": form, "title": title, "action": request.path},
    )


# --- diagnosis -------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def diagnosis_edit(request: StaffRequest, pk: int) -> HttpResponse:
    patient = visible_patient(request, pk, edit=True)
    area = patient.study.disease_area
    if area == DiseaseArea.NPSLE:
        return _npsle_diagnosis(request, patient)
    if area == DiseaseArea.LM:
        return _lm_diagnosis(request, patient)
    raise Http404("ICANS studies record CAR-T infusions and assessments instead of one diagnosis form.")


def _npsle_diagnosis(request: StaffRequest, patient: Patient) -> HttpResponse:
    diagnosis = NpsleDiagnosis.objects.filter(patient=patient).first() or NpsleDiagnosis(patient=patient)
    data = request.POST if request.method == "POST" else None
    form = require_reason(forms.NpsleDiagnosisForm(data, instance=diagnosis), patient, "diagnosis")
    syndromes = forms.SyndromeFormSet(data, initial=forms.syndrome_initial(diagnosis), prefix="syndromes")
    if request.method == "POST" and form.is_valid() and syndromes.is_valid():
        chosen = {
            f.cleaned_data["syndrome"]: f.cleaned_data["onset_date"]
            for f in syndromes
            if f.cleaned_data.get("present")
        }
        try:
            npsle_diagnosis_save(
                diagnosis=form.instance,
                syndromes=chosen,
                actor=request.user,
                reason=form.reason("NPSLE diagnosis edited"),
            )
        except RecordModifiedError:
            show_stale(form)
        except ValidationError as error:
            by_code = {f["syndrome"].value(): f for f in syndromes}
            apply_errors(error, form, {"syndromes.": lambda code: (by_code[code], "onset_date")})
        else:
            return saved_response(request, patient, "diagnosis", "NPSLE diagnosis saved.")
    return form_response(
        request,
        patient,
        "diagnosis",
        "casebook/forms/npsle_diagnosis_form.html",
        {"form": form, "syndromes": syndromes},
    )


def _lm_diagnosis(request: StaffRequest, patient: Patient) -> HttpResponse:
    diagnosis = LmDiagnosis.objects.filter(patient=patient).first() or LmDiagnosis(patient=patient)
    form = require_reason(forms.LmDiagnosisForm(_posted(request), instance=diagnosis), patient, "diagnosis")
    if request.method == "POST" and form.is_valid():
        try:
            lm_diagnosis_save(
                diagnosis=form.instance,
                tissue=form.cleaned_data["tissue_mutations"],
                csf=form.cleaned_data["csf_mutations"],
                actor=request.user,
                reason=form.reason("LM diagnosis edited"),
            )
        except RecordModifiedError:
            show_stale(form)
        except ValidationError as error:
            apply_errors(error, form)
        else:
            return saved_response(request, patient, "diagnosis", "LM diagnosis saved.")
    return form_response(
        request, patient, "diagnosis", "casebook/forms/lm_diagnosis_form.html", {"form": form}
    )


# --- repeating records -----------------------------------------------------------------------


def _kind(patient: Patient, slug: str) -> RecordKind:
    kind = KINDS.get(slug)
    if kind is None or not kind.applies_to(patient):
        raise Http404("No such record type for this study.")
    return kind


@login_required
@require_http_methods(["GET", "POST"])
def record_edit(request: StaffRequest, pk: int, kind: str, record_pk: int | None = None) -> HttpResponse:
    """Add (no ``record_pk``) or edit one repeating record of a patient."""
    patient = visible_patient(request, pk, edit=True)
    spec = _kind(patient, kind)
    if record_pk is None:
        if spec.single and spec.records(patient).exists():
            return redirect(
                "casebook:record_edit", pk=patient.pk, kind=kind, record_pk=spec.records(patient).get().pk
            )
        instance = spec.model(patient=patient)
    else:
        found = spec.records(patient).filter(pk=record_pk).first()
        if found is None:
            raise Http404(f"No {spec.label} with that id for this patient.")
        instance = found
    form = require_reason(spec.form(_posted(request), instance=instance), patient, spec.section)
    if request.method == "POST" and form.is_valid():
        verb = "added" if instance.pk is None else "saved"
        try:
            record_save(
                form.instance, actor=request.user, reason=form.reason(f"{sentence(spec.label)} {verb}")
            )
        except RecordModifiedError:
            show_stale(form)
        except ValidationError as error:
            apply_errors(error, form)
        else:
            return saved_response(request, patient, spec.section, f"{sentence(spec.label)} {verb}.")
    title = f"{'Add' if instance.pk is None else 'Edit'} {spec.label}"
    return form_response(
        request,
        patient,
        spec.section,
        spec.template,
        {"form": form, "title": title, "kind": spec, "action": request.path},
    )


@login_required
@require_http_methods(["GET", "POST"])
def record_delete(request: StaffRequest, pk: int, kind: str, record_pk: int) -> HttpResponse:
    patient = visible_patient(request, pk, edit=True)
    if kind == "lumbar-puncture":
        section_key, label = "procedures", "lumbar puncture"
        instance = LumbarPuncture.objects.filter(patient=patient, pk=record_pk).first()
    else:
        spec = _kind(patient, kind)
        section_key, label = spec.section, spec.label
        instance = spec.records(patient).filter(pk=record_pk).first()
    if instance is None:
        raise Http404("No such record for this patient.")
    ensure_unlocked(patient, section_key)
    form = forms.DeleteForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        delete_record(instance, actor=request.user, reason=form.cleaned_data["reason"])
        return saved_response(request, patient, section_key, f"{sentence(label)} deleted.")
    return form_response(
        request,
        patient,
        section_key,
        "casebook/forms/delete_form.html",
        {"form": form, "object": instance, "label": label, "action": request.path},
    )


# --- lumbar punctures ------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def lumbar_puncture_edit(request: StaffRequest, pk: int, lp_pk: int | None = None) -> HttpResponse:
    """An LP with its CSF result, pathogen tests and intrathecal doses, in one form and one save.

    With an active course the form offers the course's next injection (its doses pre-filled). Saving
    runs the safety checks: a finding blocks the save until it is overridden with a reason.
    """
    patient = visible_patient(request, pk, edit=True)
    entry = LumbarPunctureEntry(request, patient, lp_pk)
    if request.method == "POST" and entry.is_valid() and entry.save():
        return saved_response(request, patient, "procedures", entry.saved_message)
    return form_response(request, patient, "procedures", LP_TEMPLATE, entry.context())


# --- live scores -----------------------------------------------------------------------------


@login_required
@require_POST
def score(request: StaffRequest, kind: str) -> JsonResponse:
    """The score or grade the ticked items imply, computed by the same code the models use on save."""
    calculator = scores.CALCULATORS.get(kind)
    if calculator is None:
        raise Http404("No such score.")
    return JsonResponse(calculator(request.POST))
