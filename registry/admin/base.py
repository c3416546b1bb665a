"""Admin plumbing shared by every registry model: history, a reason for each change, read-only scores."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.admin.utils import unquote
from django.http import Http404
from simple_history.admin import SimpleHistoryAdmin

from accounts.access import Capability, has_capability, scope, site_of, site_path
from accounts.models import Site

from .. import write_hooks
from ..models import Study
from ..services.records import attribute
from ..services.versions import VersionedForm


class ReasonForm(VersionedForm):
    """Adds the 'reason for change' kept in the audit trail, the version check, and the review rules.

    A locked section, or a submitted one without a reason, is refused here with a message, before
    anything is saved.
    """

    change_reason = forms.CharField(
        label="Reason for this change",
        required=False,
        max_length=200,
        help_text="Recorded in the history with the values you changed (required once the section is submitted).",
    )


class SectionGuardedInline(InlineModelAdmin):
    """Inline rows are editable only while their section is a draft; later changes go through the
    record's own page, which asks for the reason the review workflow requires."""

    def _draft(self, request, parent) -> bool:
        """Whether the inline's section of the parent's patient is still a draft: asked for each
        permission of each inline of a page (73 reads on a patient's page), answered once a request."""
        if parent is None or not hasattr(parent, "owning_patient_id"):
            return True
        answered = request.__dict__.setdefault("_registry_draft_sections", {})
        key = (parent.owning_patient_id(), self.model.review_section)
        if key not in answered:
            answered[key] = not write_hooks.needs_reason(*key)
        return answered[key]

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and self._draft(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._draft(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._draft(request, obj)


class RegistryAdmin(SimpleHistoryAdmin):
    """A ModelAdmin scoped to the user's sites, whose saves and deletes carry the user and a reason.

    Lists, searches, autocompletes and foreign-key choices only offer records of sites where the
    user may view (or, for choices, edit) case records; another site's record is "not found".
    """

    form = ReasonForm
    list_per_page = 50
    view_capability = Capability.VIEW_RECORDS
    #: Who may add, change and delete here (at the record's site), and whose sites the choices offer.
    edit_capability = Capability.EDIT_RECORDS

    def get_queryset(self, request):
        return scope(super().get_queryset(request), request.user, self.view_capability)

    def get_ordering(self, request):
        """The list's own default (newest first) where the model has no order, so that the
        autocompletes other forms page through this admin are ordered too."""
        return super().get_ordering(request) or (() if self.model._meta.ordering else ("-pk",))

    def _reachable_or_404(self, request, object_id) -> None:
        """simple-history's history pages look objects up themselves; hold them to the same scope.

        A deleted object's history is only for superusers (its site can no longer be checked).
        """
        pk = unquote(object_id)
        if self.get_queryset(request).filter(pk=pk).exists():
            return
        if request.user.is_superuser and not self.model._default_manager.filter(pk=pk).exists():
            return
        raise Http404(f"No {self.model._meta.verbose_name} with that id.")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id)) if request.method == "GET" else None
        if obj is not None and not self._unlocked(obj):
            self.message_user(
                request,
                "This record is in a locked section and is read-only here; a reviewer unlocks the section "
                "(with a reason) before anything changes.",
                messages.WARNING,
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._reachable_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        self._reachable_or_404(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)

    def _may_edit(self, request, obj) -> bool:
        if obj is None:
            return has_capability(request.user, self.edit_capability)
        site = site_of(obj)
        return has_capability(request.user, self.edit_capability, site) if site else request.user.is_superuser

    def has_add_permission(self, request, *args):
        return super().has_add_permission(request, *args) and self._may_edit(request, None)

    def _unlocked(self, obj) -> bool:
        """A record in a locked section is read-only here too: no save or delete button to refuse later."""
        return obj is None or not hasattr(obj, "owning_patient_id") or not write_hooks.is_read_only(obj)

    def has_change_permission(self, request, obj=None):
        return (
            super().has_change_permission(request, obj)
            and self._may_edit(request, obj)
            and self._unlocked(obj)
        )

    def has_delete_permission(self, request, obj=None):
        return (
            super().has_delete_permission(request, obj)
            and self._may_edit(request, obj)
            and self._unlocked(obj)
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        if site_path(related) is not None:
            kwargs["queryset"] = scope(related._default_manager.all(), request.user, self.edit_capability)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        related = db_field.related_model
        if site_path(related) is not None:
            kwargs["queryset"] = scope(related._default_manager.all(), request.user, self.edit_capability)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def _reason(self, request, form, change: bool) -> str:
        """The reason typed; a default only while the section is a draft (the model refuses otherwise)."""
        given = form.cleaned_data.get("change_reason", "") if form is not None else ""
        if given:
            return given
        obj = form.instance if form is not None else None
        draft = (
            obj is None
            or not hasattr(obj, "owning_patient_id")
            or not write_hooks.needs_reason(obj.owning_patient_id(), obj.review_section)
        )
        return ("Edited in admin" if change else "Created in admin") if draft else ""

    def get_fieldsets(self, request, obj=None):
        """Every admin form carries the record's version (hidden), so a stale save is refused."""
        fieldsets = super().get_fieldsets(request, obj)
        fields = {name for _, options in fieldsets for name in options["fields"]}
        if "version" in fields or "version" not in {f.name for f in self.model._meta.fields}:
            return fieldsets
        return [*fieldsets, ("", {"fields": ["version"], "classes": ["hidden"]})]

    def save_model(self, request, obj, form, change):
        attribute(obj, actor=request.user, reason=self._reason(request, form, change))
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        reason = self._reason(request, form, change)
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
        # One by one, so each deletion leaves its own history row; a locked record is kept and named.
        kept = []
        for obj in queryset:
            if write_hooks.is_read_only(obj):
                kept.append(str(obj))
                continue
            self.delete_model(request, obj)
        if kept:
            self.message_user(
                request,
                f"Not deleted, their section is locked (ask a reviewer to unlock it): {', '.join(kept)}.",
                messages.ERROR,
            )


class StudyFilter(admin.SimpleListFilter):
    """Filter any patient-owned record by the patient's study."""

    title = "study"
    parameter_name = "study"
    patient_path = "patient"

    def lookups(self, request, model_admin):

        return [(s.pk, s.code) for s in Study.objects.order_by("code")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{f"{self.patient_path}__study_id": self.value()})
        return queryset


class SiteFilter(StudyFilter):
    title = "site"
    parameter_name = "site"

    def lookups(self, request, model_admin):

        return [(s.pk, s.name) for s in Site.objects.order_by("name")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{f"{self.patient_path}__site_id": self.value()})
        return queryset


def filters_through(path: str) -> tuple[type[StudyFilter], type[SiteFilter]]:
    """Study and site filters for a model that reaches the patient through ``path``."""
    study = type(f"StudyFilter_{path}", (StudyFilter,), {"patient_path": path})
    site = type(f"SiteFilter_{path}", (SiteFilter,), {"patient_path": path})
    return study, site
