"""Protocols in the admin: readable by every staff member, edited by site administrators.

Protocols are reference data, not site-owned records, so these pages ask the access layer for
``Capability.MANAGE_SITE`` (at any site) rather than scoping by site. Only a draft can be edited; an
active version is changed by starting a new version from it (an action), editing the draft and
activating it (which retires the version active until then; courses keep the version they use).
Courses, their injections and the accepted overrides are shown read-only, scoped to the user's
sites: they change through the case-record pages and the services.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from simple_history.admin import SimpleHistoryAdmin

from accounts.access import Capability, has_capability
from registry.admin.base import ReasonForm, RegistryAdmin
from registry.services.records import attribute

from .models import (
    Component,
    Course,
    DoseFormulation,
    Formulation,
    Phase,
    PlannedInjection,
    Protocol,
    SafetyOverride,
    SupportiveRequirement,
)
from .services import protocol_activate, protocol_new_revision, protocol_retire


def may_manage(request) -> bool:
    return request.user.is_active and (
        request.user.is_superuser or has_capability(request.user, Capability.MANAGE_SITE)
    )


def may_read(request) -> bool:
    return request.user.is_active and request.user.is_staff


def _draft(obj) -> bool:
    protocol = obj if isinstance(obj, Protocol) else getattr(obj, "protocol", None)
    return protocol is None or protocol.pk is None or protocol.is_draft


class ReferenceAdminMixin:
    """Permissions from the access layer; every save carries the user and the reason typed."""

    def has_module_permission(self, request):
        return may_read(request)

    def has_view_permission(self, request, obj=None):
        return may_read(request)

    def has_add_permission(self, request, obj=None):
        return may_manage(request) and _draft(obj)

    def has_change_permission(self, request, obj=None):
        return may_manage(request) and (obj is None or _draft(obj))

    def has_delete_permission(self, request, obj=None):
        return may_manage(request) and (obj is None or _draft(obj))


class ReferenceInline(ReferenceAdminMixin, admin.TabularInline):
    form = ReasonForm
    extra = 0
    exclude = ["version"]


class PhaseInline(ReferenceInline):
    model = Phase
    fields = [
        "order",
        "name",
        "cycle_days",
        "days_in_cycle",
        "end_rule",
        "injection_count",
        "gap_before_days",
        "min_interval_hours",
        "window_days",
    ]


class ComponentInline(ReferenceInline):
    model = Component
    fields = [
        "phase",
        "drug",
        "timing",
        "rule",
        "dose_mg",
        "step_mg",
        "cap_mg",
        "step_back_on_toxicity",
        "optional",
        "optional_note",
        "volume_ml",
        "diluent",
    ]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "phase":
            protocol_id = request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
            kwargs["queryset"] = (
                Phase.objects.filter(protocol_id=protocol_id) if protocol_id else Phase.objects.none()
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class SupportiveRequirementInline(ReferenceInline):
    model = SupportiveRequirement
    fields = ["category", "for_drug", "description", "lead_min_days", "lead_max_days", "repeat_days"]


class ReferenceAdmin(ReferenceAdminMixin, SimpleHistoryAdmin):
    form = ReasonForm

    def _reason(self, form, default: str) -> str:
        given = form.cleaned_data.get("change_reason", "") if form is not None else ""
        return given or default

    def save_model(self, request, obj, form, change):
        attribute(
            obj,
            actor=request.user,
            reason=self._reason(form, "Edited in admin" if change else "Created in admin"),
        )
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        reason = self._reason(form, "Edited in admin")
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            attribute(obj, actor=request.user, reason=reason)
            obj.delete()
        for obj in instances:
            attribute(obj, actor=request.user, reason=reason)
            obj.save()
        formset.save_m2m()

    def delete_model(self, request, obj):
        attribute(obj, actor=request.user, reason="Deleted in admin")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(Protocol)
class ProtocolAdmin(ReferenceAdmin):
    list_display = ["name", "code", "revision", "disease_area", "status"]
    list_filter = ["disease_area", "status"]
    search_fields = ["code", "name"]
    fields = [
        "code",
        "revision",
        "name",
        "disease_area",
        "summary",
        "administration",
        "source",
        "min_platelets_1e9_per_l",
        "revision_note",
        "status",
        "version",
    ]
    readonly_fields = ["status"]
    inlines = [PhaseInline, ComponentInline, SupportiveRequirementInline]
    actions = ["new_version", "activate", "retire"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not obj.is_draft:
            return [f for f in self.fields if f != "version"]
        return self.readonly_fields

    def _act(self, request, queryset, service, done: str) -> None:
        if not may_manage(request):
            self.message_user(request, "Only site administrators change protocols.", messages.ERROR)
            return
        for protocol in queryset:
            try:
                service(protocol=protocol, actor=request.user, reason=f"{done} in admin")
            except ValidationError as exc:
                self.message_user(request, f"{protocol}: {'; '.join(exc.messages)}", messages.ERROR)
            else:
                self.message_user(request, f"{protocol}: {done.lower()}.", messages.SUCCESS)

    @admin.action(description="Start a new version (a draft copy to edit)")
    def new_version(self, request, queryset):
        self._act(request, queryset, protocol_new_revision, "New version started")

    @admin.action(description="Activate (retires the version active until now)")
    def activate(self, request, queryset):
        self._act(request, queryset, protocol_activate, "Activated")

    @admin.action(description="Retire (no new course from it)")
    def retire(self, request, queryset):
        self._act(request, queryset, protocol_retire, "Retired")


@admin.register(Formulation)
class FormulationAdmin(ReferenceAdmin):
    list_display = ["name", "drug", "preservative_free", "intrathecal_use"]
    list_filter = ["drug", "preservative_free", "intrathecal_use"]
    search_fields = ["name"]
    fields = ["drug", "name", "preservative_free", "intrathecal_use", "note", "version"]


class ReadOnlyRecordAdmin(RegistryAdmin):
    """Patient data of the protocols app: read here, written through the pages and services."""

    def has_view_permission(self, request, obj=None):
        return has_capability(request.user, Capability.VIEW_RECORDS)

    def has_module_permission(self, request):
        return has_capability(request.user, Capability.VIEW_RECORDS)

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Course)
class CourseAdmin(ReadOnlyRecordAdmin):
    list_display = ["patient", "protocol", "start_date", "status", "ended_on", "stop_reason"]
    list_filter = ["status", "stop_reason", "protocol"]
    search_fields = ["patient__study_code"]


@admin.register(PlannedInjection)
class PlannedInjectionAdmin(ReadOnlyRecordAdmin):
    list_display = ["course", "sequence", "planned_date", "status", "lumbar_puncture", "deviation_reason"]
    # The course's label names its protocol; the LP is nullable (skipped by a bare select_related()).
    list_select_related = ["course__protocol", "lumbar_puncture"]
    list_filter = ["status"]
    search_fields = ["course__patient__study_code"]


@admin.register(SafetyOverride)
class SafetyOverrideAdmin(ReadOnlyRecordAdmin):
    list_display = ["lumbar_puncture", "check_code", "reason", "overridden_by", "overridden_at"]
    list_filter = ["check_code"]
    search_fields = ["lumbar_puncture__patient__study_code", "reason"]


@admin.register(DoseFormulation)
class DoseFormulationAdmin(ReadOnlyRecordAdmin):
    list_display = ["dose", "formulation"]
