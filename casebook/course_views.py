"""Protocol pages and the course actions of the case record (thin views over the services).

The course actions live on the patient's page like its other sections: another site's patient or
course is "not found" (404); a role that may see but not change it gets 403.
"""

from __future__ import annotations

from concurrency.exceptions import RecordModifiedError
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_http_methods

from protocols.choices import CourseStatus, InjectionStatus
from protocols.models import Course, PlannedInjection, Protocol
from protocols.selectors import CourseState
from protocols.services import course_start as start_course
from protocols.services import course_stop as stop_course
from protocols.services import planned_injection_mark_missed
from registry.models import Patient

from . import course_forms as forms
from .pages import (
    StaffRequest,
    apply_errors,
    ensure_unlocked,
    form_response,
    require_reason,
    saved_response,
    show_stale,
    visible_patient,
)


@login_required
def protocol_list(request: StaffRequest) -> HttpResponse:
    """Every protocol version (reference data, readable by all signed-in staff)."""
    protocols = Protocol.objects.order_by("disease_area", "code", "-revision")
    return render(request, "protocols/protocol_list.html", {"protocols": protocols})


@login_required
def protocol_detail(request: StaffRequest, protocol_pk: int) -> HttpResponse:
    protocol = get_object_or_404(Protocol, pk=protocol_pk)
    state_phases = protocol.ordered_phases()
    return render(
        request,
        "protocols/protocol_detail.html",
        {
            "protocol": protocol,
            "phases": [(phase, protocol.components_for(phase)) for phase in state_phases],
            "components": protocol.components.select_related("phase"),
            "requirements": protocol.supportive_requirements.all(),
        },
    )


def _course(patient: Patient, course_pk: int) -> Course:
    course = Course.objects.filter(patient=patient, pk=course_pk).select_related("protocol").first()
    if course is None:
        raise Http404("No such course for this patient.")
    return course


@login_required
@require_http_methods(["GET", "POST"])
def course_start(request: StaffRequest, pk: int) -> HttpResponse:
    patient = visible_patient(request, pk, edit=True)
    form = require_reason(
        forms.CourseStartForm(
            request.POST if request.method == "POST" else None, instance=Course(patient=patient)
        ),
        patient,
        "procedures",
    )
    if request.method == "POST" and form.is_valid():
        try:
            course = start_course(
                patient=patient,
                protocol=form.cleaned_data["protocol"],
                start_date=form.cleaned_data["start_date"],
                actor=request.user,
                reason=form.reason("Course started"),
            )
        except ValidationError as error:
            apply_errors(error, form)
        else:
            count = len(CourseState(course).injections)
            return saved_response(
                request, patient, "procedures", f"Course started: {count} injections planned."
            )
    return form_response(
        request,
        patient,
        "procedures",
        "casebook/forms/record_form.html",
        {"form": form, "title": "Start a course", "action": request.path},
    )


@login_required
@require_http_methods(["GET", "POST"])
def course_stop(request: StaffRequest, pk: int, course_pk: int) -> HttpResponse:
    patient = visible_patient(request, pk, edit=True)
    course = _course(patient, course_pk)
    if course.status != CourseStatus.ACTIVE:
        raise Http404("This course has already ended.")
    form = require_reason(
        forms.CourseStopForm(request.POST if request.method == "POST" else None, instance=course),
        patient,
        "procedures",
    )
    if request.method == "POST" and form.is_valid():
        try:
            stop_course(
                course=course,
                ended_on=form.cleaned_data["ended_on"],
                stop_reason=form.cleaned_data["stop_reason"],
                stop_note=form.cleaned_data["stop_note"],
                actor=request.user,
                reason=form.cleaned_data.get("change_reason", ""),
            )
        except RecordModifiedError:
            show_stale(form)
        except ValidationError as error:
            apply_errors(error, form)
        else:
            return saved_response(request, patient, "procedures", "Course stopped.")
    return form_response(
        request,
        patient,
        "procedures",
        "casebook/forms/record_form.html",
        {"form": form, "title": f"Stop the course ({course})", "action": request.path},
    )


@login_required
@require_http_methods(["GET", "POST"])
def injection_missed(request: StaffRequest, pk: int, course_pk: int, injection_pk: int) -> HttpResponse:
    patient = visible_patient(request, pk, edit=True)
    course = _course(patient, course_pk)
    injection = (
        PlannedInjection.objects.filter(course=course, pk=injection_pk).select_related("phase").first()
    )
    if injection is None or injection.status != InjectionStatus.PLANNED:
        raise Http404("No such planned injection in this course.")
    ensure_unlocked(patient, "procedures")
    form = forms.InjectionMissedForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            planned_injection_mark_missed(
                injection=injection,
                deviation_reason=form.cleaned_data["deviation_reason"],
                actor=request.user,
            )
        except ValidationError as error:
            apply_errors(error, form)
        else:
            return saved_response(
                request, patient, "procedures", f"Injection {injection.sequence} marked missed."
            )
    return form_response(
        request,
        patient,
        "procedures",
        "protocols/injection_missed_form.html",
        {
            "form": form,
            "injection": injection,
            "title": f"Mark {injection} as missed",
            "action": request.path,
        },
    )
