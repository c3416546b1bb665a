"""Review pages: section transitions, the lock signature, queries and the open-query list."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import Capability, get_scoped_or_404, has_capability, scope
from accounts.models import Role, User
from registry.models import Patient, Study
from registry.models.base import RegistryRecord
from review import services
from review.forms import LockForm, QualitySweepForm, QueryListForm, QueryRaiseForm, QueryReplyForm, UnlockForm
from review.jobs import quality_sweep_start
from review.models import DataQuery, QueryStatus, ReviewStatus, SectionReview
from review.selectors import age_in_days, open_queries_overview

from .pages import StaffRequest
from .records import SECTIONS
from .sections import section_context


def _patient(request: StaffRequest, pk: int) -> Patient:
    return get_scoped_or_404(Patient.objects.select_related("study", "site"), request.user, pk=pk)


def _section_or_404(key: str) -> str:
    if key not in SECTIONS:
        raise Http404("No such section.")
    return key


def _back_to_section(request: StaffRequest, patient: Patient, key: str, message: str, *, error: bool = False):
    """The refreshed section in place (htmx), or the patient page with a message."""
    if request.htmx:
        context = section_context(patient, key, request.user)
        context["saved_message" if not error else "error_message"] = message
        return render(request, "casebook/section.html", context)
    (messages.error if error else messages.success)(request, message)
    return redirect(reverse("casebook:patient_detail", args=[patient.pk]) + f"#section-{key}")


def _errors(error: ValidationError) -> str:
    return " ".join(error.messages)


@login_required
@require_POST
def section_submit(request: StaffRequest, pk: int, key: str) -> HttpResponse:
    patient = _patient(request, pk)
    try:
        services.section_submit(patient=patient, section=_section_or_404(key), actor=request.user)
    except ValidationError as error:
        return _back_to_section(request, patient, key, _errors(error), error=True)
    return _back_to_section(request, patient, key, "Section submitted for review.")


@login_required
@require_POST
def section_verify(request: StaffRequest, pk: int, key: str) -> HttpResponse:
    patient = _patient(request, pk)
    try:
        services.section_verify(patient=patient, section=_section_or_404(key), actor=request.user)
    except ValidationError as error:
        return _back_to_section(request, patient, key, _errors(error), error=True)
    return _back_to_section(request, patient, key, "Section verified.")


@login_required
@require_POST
def patient_submit(request: StaffRequest, pk: int) -> HttpResponse:
    patient = _patient(request, pk)
    submitted = services.patient_submit(patient=patient, actor=request.user)
    names = ", ".join(SECTIONS[s] for s in submitted) or "nothing (no section was a draft)"
    messages.success(request, f"Submitted for review: {names}.")
    return redirect("casebook:patient_detail", pk=patient.pk)


@login_required
@require_POST
def patient_verify(request: StaffRequest, pk: int) -> HttpResponse:
    patient = _patient(request, pk)
    verified, held = services.patient_verify(patient=patient, actor=request.user)
    if verified:
        messages.success(request, "Verified: " + ", ".join(SECTIONS[s] for s in verified) + ".")
    for section, reason in held.items():
        messages.error(request, f"{SECTIONS[section]} not verified: {reason}")
    if not verified and not held:
        messages.info(request, "No section was waiting for verification.")
    return redirect("casebook:patient_detail", pk=patient.pk)


@login_required
@require_http_methods(["GET", "POST"])
def lock(request: StaffRequest, pk: int) -> HttpResponse:
    """Lock verified sections with the reviewer's password (an electronic signature)."""
    patient = _patient(request, pk)
    if not has_capability(request.user, Capability.REVIEW, patient.site_id):
        raise PermissionDenied("Only reviewers lock records.")
    verified = list(
        SectionReview.objects.filter(patient=patient, status=ReviewStatus.VERIFIED).values_list(
            "section", flat=True
        )
    )
    wanted = request.GET.getlist("section") or verified
    form = LockForm(
        request.POST if request.method == "POST" else None,
        verified=verified,
        initial={"sections": [s for s in wanted if s in verified]},
    )
    if request.method == "POST" and form.is_valid():
        try:
            signature = services.sections_lock(
                patient=patient,
                sections=form.cleaned_data["sections"],
                actor=request.user,
                password=form.cleaned_data["password"],
            )
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(
                request,
                f"Locked. Signed by {signature.printed_name} at "
                f"{signature.signed_at:%Y-%m-%d %H:%M} UTC: “{signature.get_meaning_display()}”",
            )
            return redirect("casebook:patient_detail", pk=patient.pk)
    return render(request, "review/lock.html", {"patient": patient, "form": form, "verified": verified})


@login_required
@require_http_methods(["GET", "POST"])
def unlock(request: StaffRequest, pk: int, key: str) -> HttpResponse:
    """A reviewer signs the unlock; anyone else who may see the record learns whom to ask."""
    patient = _patient(request, pk)
    _section_or_404(key)
    if not has_capability(request.user, Capability.REVIEW, patient.site_id):
        if request.method == "POST":
            raise PermissionDenied("Only a reviewer of this site unlocks a section.")
        return _unlock_request(request, patient, key)
    form = UnlockForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            signature = services.section_unlock(
                patient=patient,
                section=_section_or_404(key),
                actor=request.user,
                reason=form.cleaned_data["reason"],
                password=form.cleaned_data["password"],
            )
        except ValidationError as error:
            for field, errors in error.update_error_dict({}).items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            return _back_to_section(
                request,
                patient,
                key,
                f"Section unlocked. Signed by {signature.printed_name} at "
                f"{signature.signed_at:%Y-%m-%d %H:%M} UTC: “{signature.get_meaning_display()}” "
                "It needs verifying again.",
            )
    return render(
        request,
        "review/unlock.html" if not request.htmx else "review/_unlock_form.html",
        {"patient": patient, "form": form, "section": key, "section_title": SECTIONS.get(key, key)},
    )


def _unlock_request(request: StaffRequest, patient: Patient, key: str) -> HttpResponse:
    reviewers = (
        User.objects.filter(
            memberships__site=patient.site_id, memberships__role=Role.REVIEWER, is_active=True
        )
        .distinct()
        .order_by("last_name", "first_name")
    )
    return render(
        request,
        "review/unlock_request.html",
        {
            "patient": patient,
            "section": key,
            "section_title": SECTIONS[key],
            "reviewers": reviewers,
            "review": SectionReview.objects.filter(patient=patient, section=key)
            .select_related("locked_by")
            .first(),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def query_raise(request: StaffRequest, pk: int, key: str) -> HttpResponse:
    patient = _patient(request, pk)
    _section_or_404(key)
    record = None
    if request.GET.get("model") or request.POST.get("model"):
        model_name = request.GET.get("model") or request.POST.get("model")
        object_id = request.GET.get("object") or request.POST.get("object")
        try:
            model = ContentType.objects.get(app_label="registry", model=model_name).model_class()
            if model is None or not issubclass(model, RegistryRecord):  # gone, or a history table
                raise Http404("No such record.")
            record = model._default_manager.get(pk=object_id)
        except (ContentType.DoesNotExist, ValueError, LookupError) as missing:
            raise Http404("No such record.") from missing
        except Exception as missing:  # the record's DoesNotExist
            raise Http404("No such record.") from missing
        if record.owning_patient_id() != patient.pk:
            raise Http404("No such record for this patient.")
    form = QueryRaiseForm(request.POST if request.method == "POST" else None, record=record)
    if request.method == "POST" and form.is_valid():
        try:
            services.query_raise(
                patient=patient,
                actor=request.user,
                message=form.cleaned_data["message"],
                record=record,
                field_name=form.cleaned_data.get("field_name", ""),
                section=key,
            )
        except ValidationError as error:
            form.add_error(None, _errors(error))
        else:
            return _back_to_section(request, patient, key, "Query raised.")
    template = "review/_query_form.html" if request.htmx else "review/query_form.html"
    return render(
        request,
        template,
        {"patient": patient, "form": form, "record": record, "section": key, "section_title": SECTIONS[key]},
    )


@login_required
@require_POST
def query_reply(request: StaffRequest, query_pk: int, action: str) -> HttpResponse:
    """Answer (data entry), close or reopen (reviewer) a query."""
    query = get_scoped_or_404(
        DataQuery.objects.select_related("patient__site", "patient__study"), request.user, pk=query_pk
    )
    form = QueryReplyForm(request.POST)
    form.is_valid()
    text = form.cleaned_data.get("text", "")
    handlers = {
        "answer": services.query_answer,
        "close": services.query_close,
        "reopen": services.query_reopen,
    }
    if action not in handlers:
        raise Http404("No such action.")
    try:
        handlers[action](query=query, actor=request.user, text=text)
    except ValidationError as error:
        return _back_to_section(request, query.patient, query.section, _errors(error), error=True)
    done = {"answer": "Answer sent to the reviewer.", "close": "Query closed.", "reopen": "Query reopened."}[
        action
    ]
    return _back_to_section(request, query.patient, query.section, done)


@login_required
def query_list(request: StaffRequest) -> HttpResponse:
    """Open queries per study and site with their ages, and the queries themselves."""
    user = request.user
    visible = scope(DataQuery.objects.select_related("patient__study", "patient__site", "raised_by"), user)
    studies = Study.objects.filter(pk__in=visible.values("patient__study")).distinct()
    form = QueryListForm(request.GET or None, studies=studies)
    queries = visible.exclude(status=QueryStatus.CLOSED)
    if form.is_valid():
        if form.cleaned_data["study"]:
            queries = queries.filter(patient__study=form.cleaned_data["study"])
        if form.cleaned_data["status"]:
            queries = visible.filter(
                status=form.cleaned_data["status"],
                **({"patient__study": form.cleaned_data["study"]} if form.cleaned_data["study"] else {}),
            )
    overview = [{**row, "oldest_days": age_in_days(row["oldest"])} for row in open_queries_overview(visible)]
    rows = [(q, age_in_days(q.raised_at)) for q in queries.order_by("raised_at")[:500]]
    return render(
        request,
        "review/query_list.html",
        {
            "form": form,
            "overview": overview,
            "rows": rows,
            "total": queries.count(),
            "can_sweep": has_capability(user, Capability.REVIEW),
            "sweep_study": form.cleaned_data.get("study") if form.is_valid() else None,
        },
    )


@login_required
@require_POST
def quality_sweep(request: StaffRequest) -> HttpResponse:
    """Run the data-quality rules now, as a job, for the patients the reviewer reviews."""
    user = request.user
    if not has_capability(user, Capability.REVIEW):
        raise PermissionDenied("Only a reviewer can run the data-quality checks.")
    reviewed = Study.objects.filter(
        pk__in=scope(Patient.objects.all(), user, Capability.REVIEW).values("study")
    )
    form = QualitySweepForm(request.POST, studies=reviewed)
    if not form.is_valid():
        messages.error(request, " ".join(str(error) for error in form.errors["study"]))
        return redirect("review:query_list")
    study = form.cleaned_data["study"]
    job = quality_sweep_start(user=user, study=study)
    return redirect("jobs:detail", job_id=job.pk)
