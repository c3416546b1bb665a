"""What every case-record page shares: the patient a user may see, form fragments, saved answers.

Used by the record, course and review pages alike (all in this app), so each answers the same way:
another site's patient is a 404, a service's field errors land on the form's fields, a save answers
with the refreshed section (htmx) or a redirect to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django_htmx.middleware import HtmxDetails

from accounts.access import Capability, get_scoped_or_404, has_capability
from accounts.models import User
from registry import write_hooks
from registry.models import Patient
from registry.services.versions import signed_version, stale_edit
from review.selectors import section_status

from .records import SECTIONS
from .sections import section_context

F = TypeVar("F", bound=forms.BaseForm)
#: Where a service's error key belongs: key (after its prefix) → (form, field name or None).
ErrorTargets = dict[str, Callable[[str], tuple[forms.BaseForm, str | None]]]


class HtmxHttpRequest(HttpRequest):
    """A request as the django-htmx middleware leaves it (``request.htmx``)."""

    htmx: HtmxDetails


class StaffRequest(HtmxHttpRequest):
    """A request behind ``login_required``: its user is a signed-in account, the actor of its writes."""

    user: User


def visible_patient(
    request: HttpRequest, pk: int, *, edit: bool = False, queryset: QuerySet[Patient] | None = None
) -> Patient:
    """The patient if visible to the user (else 404); with ``edit``, 403 unless they may change it.

    ``queryset``: what to read with the patient (default: its study and site).
    """
    if queryset is None:
        queryset = Patient.objects.select_related("study", "site")
    patient: Patient = get_scoped_or_404(queryset, request.user, pk=pk)
    if edit and not has_capability(request.user, Capability.EDIT_RECORDS, patient.site_id):
        raise PermissionDenied("Your role at this site does not allow changes to case records.")
    return patient


def section_url(patient: Patient, key: str) -> str:
    return reverse("casebook:patient_detail", args=[patient.pk]) + f"#section-{key}"


def render_section(
    request: HtmxHttpRequest, patient: Patient, key: str, *, saved: str | None = None
) -> HttpResponse:
    context = section_context(patient, key, request.user) | {"saved_message": saved}
    return render(request, "casebook/section.html", context)


def locked_section_response(request: HtmxHttpRequest, patient: Patient, key: str) -> HttpResponse:
    """What an edit URL of a locked section answers: the section, read-only, with its one message."""
    if request.htmx:
        return render_section(request, patient, key)
    context = section_context(patient, key, request.user)
    return render(request, "casebook/locked_section.html", context)


def form_response(
    request: HtmxHttpRequest, patient: Patient, key: str, template: str, context: dict[str, Any]
) -> HttpResponse:
    """The form fragment in place (htmx), or the same form on a full page."""
    context = {"patient": patient, "section": key, "section_title": SECTIONS[key], **context}
    if request.htmx:
        return render(request, template, context)
    return render(request, "casebook/form_page.html", context | {"form_template": template})


def saved_response(request: HtmxHttpRequest, patient: Patient, key: str, message: str) -> HttpResponse:
    if request.htmx:
        return render_section(request, patient, key, saved=message)
    messages.success(request, message)
    return redirect(section_url(patient, key))


class SectionLocked(Exception):
    """An edit page of a locked section: the page answers with the section, read-only (middleware)."""

    def __init__(self, patient: Patient, section: str):
        super().__init__(f"{patient}: the {section} section is locked.")
        self.patient, self.section = patient, section


def ensure_unlocked(patient: Patient, section: str) -> None:
    """Edit pages of a locked section never open: they answer with the section, read-only."""
    if section_status(patient, section) == "locked":
        raise SectionLocked(patient, section)


def require_reason(form: F, patient: Patient, section: str) -> F:
    """An edit form of a section: none for a locked one (``SectionLocked``); once the section is
    submitted, every change needs a reason typed by the person making it (registry's write hooks
    answer that, for the admin and the API alike)."""
    ensure_unlocked(patient, section)
    if "change_reason" in form.fields and write_hooks.needs_reason(patient.pk, section):
        field = form.fields["change_reason"]
        field.required = True
        field.help_text = "Required: this section has been submitted for review. " + field.help_text
    return form


def show_stale(form: forms.ModelForm[Any]) -> None:
    """Someone saved the record between this user's load and save (caught by the versioned UPDATE)."""
    edit = stale_edit(form.instance, form.instance.version)
    message = (
        edit.message() if edit else "This record was changed by someone else meanwhile; check and save again."
    )
    form.add_error(None, message)
    if edit and "version" in form.fields:
        data = cast(QueryDict, form.data).copy()  # a bound form's data is the request's QueryDict
        data[form.add_prefix("version")] = signed_version(edit.current_version)
        form.data = data


def apply_errors(
    error: ValidationError, form: forms.BaseForm, prefix_map: ErrorTargets | None = None
) -> None:
    """Attach a service's field errors to the form (and nested forms by key prefix)."""
    for key, messages_ in error.update_error_dict({}).items():
        target: forms.BaseForm = form
        field: str | None = key
        for prefix, nested in (prefix_map or {}).items():
            if key.startswith(prefix):
                target, field = nested(key[len(prefix) :])
                break
        if field not in target.fields:
            field = None
        for message in messages_:
            target.add_error(field, message)
