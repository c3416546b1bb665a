"""Admin pages of the clinical records, each with the list columns and filters reviewers work by."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect

from accounts.access import Capability
from accounts.models import Site

from ..models import (
    AdverseEvent,
    CarTInfusion,
    CrsAssessment,
    CsfResult,
    DischargeOutcome,
    FollowUpEvent,
    IcansAssessment,
    IntrathecalDose,
    LmDiagnosis,
    LumbarPuncture,
    MutationFinding,
    NpsleDiagnosis,
    NpsleManifestation,
    PathogenTest,
    ResponseAssessment,
    ScreeningLogEntry,
    Sledai2kAssessment,
    Study,
    SystemicTherapy,
)
from ..scoring import ICE_ITEM_FIELDS, SLEDAI_2K_DESCRIPTORS
from ..services.screening import REASON_REQUIRED, screening_entry_delete, screening_entry_save
from .base import ReasonForm, RegistryAdmin, SectionGuardedInline, filters_through

PATIENT_SEARCH = ["patient__study_code"]


@admin.register(Site)
class SiteAdmin(RegistryAdmin):
    list_display = ["code", "name", "city", "country"]
    search_fields = ["code", "name", "city"]


@admin.register(Study)
class StudyAdmin(RegistryAdmin):
    list_display = ["code", "title", "disease_area"]
    list_filter = ["disease_area", "sites"]
    search_fields = ["code", "title"]
    filter_horizontal = ["sites"]


class ScreeningReasonForm(ReasonForm):
    """Every count of the screening log is recorded, corrected or removed with a reason."""

    change_reason = forms.CharField(
        label="Reason for this change",
        max_length=200,
        help_text="Required: the search or record review this count comes from, or why it is corrected.",
    )


@admin.register(ScreeningLogEntry)
class ScreeningLogEntryAdmin(RegistryAdmin):
    """The screening log of a study's flow diagram: counts per site, period, step and reason, kept by
    the study administrators of each site (``Capability.RECORD_SCREENING``), each write with a reason."""

    form = ScreeningReasonForm
    edit_capability = Capability.RECORD_SCREENING
    list_display = ["study", "site", "period_start", "period_end", "step", "exclusion_reason", "patients"]
    list_filter = ["study", "site", "step", "exclusion_reason"]
    search_fields = ["study__code", "site__code", "search", "note"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, each with its reason
        return actions

    def save_model(self, request, obj, form, change):
        screening_entry_save(entry=obj, actor=request.user, reason=form.cleaned_data["change_reason"])

    def delete_view(self, request, object_id, extra_context=None):
        """The confirmation page asks for the reason (its template adds the field); none, no deletion."""
        if request.method == "POST" and not request.POST.get("change_reason", "").strip():
            self.message_user(request, REASON_REQUIRED, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        screening_entry_delete(entry=obj, actor=request.user, reason=request.POST.get("change_reason", ""))


class ManifestationInline(SectionGuardedInline, admin.TabularInline):
    model = NpsleManifestation
    extra = 0


@admin.register(NpsleDiagnosis)
class NpsleDiagnosisAdmin(RegistryAdmin):
    list_display = ["patient", "onset_with_npsle", "sle_duration_months", "bilag_np_grade", "anti_dsdna"]
    list_filter = [
        *filters_through("patient"),
        "onset_with_npsle",
        "bilag_np_grade",
        "manifestations__syndrome",
    ]
    search_fields = PATIENT_SEARCH
    list_select_related = ["patient__study"]
    inlines = [ManifestationInline]
    autocomplete_fields = ["patient"]


@admin.register(NpsleManifestation)
class NpsleManifestationAdmin(RegistryAdmin):
    list_display = ["diagnosis", "syndrome", "onset_date"]
    list_filter = [*filters_through("diagnosis__patient"), "syndrome"]
    search_fields = ["diagnosis__patient__study_code"]
    list_select_related = ["diagnosis__patient__study"]
    autocomplete_fields = ["diagnosis"]


@admin.register(Sledai2kAssessment)
class SledaiAdmin(RegistryAdmin):
    list_display = ["patient", "assessed_on", "total"]
    list_filter = [*filters_through("patient")]
    search_fields = PATIENT_SEARCH
    list_select_related = ["patient__study"]
    readonly_fields = ["total", "scale_version"]
    autocomplete_fields = ["patient"]
    fieldsets = [
        (None, {"fields": ["patient", "assessed_on"]}),
        ("Descriptors (weight in brackets)", {"fields": [d.field for d in SLEDAI_2K_DESCRIPTORS]}),
        ("Computed", {"fields": ["total", "scale_version"]}),
        ("Audit", {"fields": ["change_reason"]}),
    ]


class MutationInline(SectionGuardedInline, admin.TabularInline):
    model = MutationFinding
    extra = 0


@admin.register(LmDiagnosis)
class LmDiagnosisAdmin(RegistryAdmin):
    list_display = ["patient", "histology", "lm_diagnosis_date", "ecog", "brain_metastases", "eano_esmo_type"]
    list_filter = [*filters_through("patient"), "histology", "ecog", "eano_esmo_type", "mutations__mutation"]
    search_fields = PATIENT_SEARCH
    list_select_related = ["patient__study"]
    inlines = [MutationInline]
    autocomplete_fields = ["patient"]


@admin.register(MutationFinding)
class MutationFindingAdmin(RegistryAdmin):
    list_display = ["diagnosis", "specimen", "mutation", "detail"]
    list_filter = ["specimen", "mutation"]
    search_fields = ["diagnosis__patient__study_code"]
    autocomplete_fields = ["diagnosis"]


@admin.register(CarTInfusion)
class CarTInfusionAdmin(RegistryAdmin):
    list_display = [
        "patient",
        "underlying_malignancy",
        "product",
        "target",
        "infusion_date",
        "dose_1e6_cells_per_kg",
    ]
    list_filter = [*filters_through("patient"), "underlying_malignancy", "target"]
    search_fields = [*PATIENT_SEARCH, "product"]
    list_select_related = ["patient__study"]
    autocomplete_fields = ["patient"]


@admin.register(IcansAssessment)
class IcansAssessmentAdmin(RegistryAdmin):
    list_display = ["patient", "assessed_at", "ice_score", "icans_grade", "consciousness", "seizure"]
    list_filter = [*filters_through("patient"), "icans_grade"]
    search_fields = PATIENT_SEARCH
    list_select_related = ["patient__study"]
    readonly_fields = ["ice_score", "icans_grade", "scale_version"]
    autocomplete_fields = ["patient"]
    fieldsets = [
        (None, {"fields": ["patient", "assessed_at"]}),
        ("ICE items (1 point each)", {"fields": list(ICE_ITEM_FIELDS)}),
        ("Other ASTCT domains", {"fields": ["consciousness", "seizure", "motor", "raised_icp"]}),
        ("Computed", {"fields": ["ice_score", "icans_grade", "scale_version"]}),
        ("Audit", {"fields": ["change_reason"]}),
    ]


@admin.register(CrsAssessment)
class CrsAssessmentAdmin(RegistryAdmin):
    list_display = ["patient", "assessed_at", "fever", "hypotension", "hypoxia", "crs_grade"]
    list_filter = [*filters_through("patient"), "crs_grade"]
    search_fields = PATIENT_SEARCH
    list_select_related = ["patient__study"]
    readonly_fields = ["crs_grade", "scale_version"]
    autocomplete_fields = ["patient"]


class CsfInline(SectionGuardedInline, admin.StackedInline):
    model = CsfResult
    extra = 0
    max_num = 1
    show_change_link = True


class DoseInline(SectionGuardedInline, admin.TabularInline):
    model = IntrathecalDose
    extra = 0
    fields = ["drug", "drug_other", "dose_mg", "timing", "volume_ml", "diluent", "course_number"]


@admin.register(LumbarPuncture)
class LumbarPunctureAdmin(RegistryAdmin):
    list_display = [
        "patient",
        "performed_at",
        "route",
        "opening_pressure_mmh2o",
        "closing_pressure_mmh2o",
        "doses_given",
    ]
    list_filter = [*filters_through("patient"), "route", "doses__drug", "low_icp", "post_lp_headache"]
    search_fields = PATIENT_SEARCH
    list_select_related = ["patient__study", "patient__site"]
    date_hierarchy = "performed_at"
    inlines = [CsfInline, DoseInline]
    autocomplete_fields = ["patient"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("doses")

    @admin.display(description="intrathecal doses")
    def doses_given(self, obj):
        return " + ".join(str(d) for d in obj.doses.all()) or "—"


class PathogenTestInline(SectionGuardedInline, admin.TabularInline):
    model = PathogenTest
    extra = 0


@admin.register(CsfResult)
class CsfResultAdmin(RegistryAdmin):
    list_display = [
        "lumbar_puncture",
        "protein_g_per_l",
        "wbc_1e6_per_l",
        "glucose_mmol_per_l",
        "cytology",
        "il6_pg_per_ml",
    ]
    list_filter = [*filters_through("lumbar_puncture__patient"), "cytology"]
    search_fields = ["lumbar_puncture__patient__study_code"]
    list_select_related = ["lumbar_puncture__patient__study"]
    inlines = [PathogenTestInline]
    autocomplete_fields = ["lumbar_puncture"]


@admin.register(PathogenTest)
class PathogenTestAdmin(RegistryAdmin):
    list_display = ["csf_result", "test", "result", "organism"]
    list_filter = [*filters_through("csf_result__lumbar_puncture__patient"), "test", "result"]
    search_fields = ["csf_result__lumbar_puncture__patient__study_code", "organism"]
    list_select_related = ["csf_result__lumbar_puncture__patient__study"]
    autocomplete_fields = ["csf_result"]


@admin.register(IntrathecalDose)
class IntrathecalDoseAdmin(RegistryAdmin):
    list_display = ["lumbar_puncture", "drug", "dose_mg", "timing", "volume_ml", "course_number"]
    list_filter = [*filters_through("lumbar_puncture__patient"), "drug", "timing"]
    search_fields = ["lumbar_puncture__patient__study_code"]
    list_select_related = ["lumbar_puncture__patient__study"]
    autocomplete_fields = ["lumbar_puncture"]


@admin.register(SystemicTherapy)
class SystemicTherapyAdmin(RegistryAdmin):
    list_display = ["patient", "category", "agent", "dose_description", "start_date", "end_date"]
    list_filter = [*filters_through("patient"), "category"]
    search_fields = [*PATIENT_SEARCH, "agent"]
    list_select_related = ["patient__study"]
    autocomplete_fields = ["patient"]


@admin.register(AdverseEvent)
class AdverseEventAdmin(RegistryAdmin):
    list_display = [
        "patient",
        "ctcae_term",
        "grade",
        "lab_value",
        "suggested_grade",
        "onset_date",
        "attribution",
    ]
    list_filter = [
        *filters_through("patient"),
        "grade",
        "ctcae_term",
        "ctcae_version",
        "attribution",
        "serious",
    ]
    search_fields = [*PATIENT_SEARCH, "term_other"]
    list_select_related = ["patient__study"]
    readonly_fields = ["suggested_grade"]
    autocomplete_fields = ["patient", "lumbar_puncture"]

    @admin.display(description="grade from lab value")
    def suggested_grade(self, obj):
        grade = obj.suggested_grade
        return "—" if grade is None else grade


@admin.register(DischargeOutcome)
class DischargeOutcomeAdmin(RegistryAdmin):
    list_display = ["patient", "outcome", "discharge_date"]
    list_filter = [*filters_through("patient"), "outcome"]
    search_fields = PATIENT_SEARCH
    list_select_related = ["patient__study"]
    autocomplete_fields = ["patient"]


@admin.register(ResponseAssessment)
class ResponseAssessmentAdmin(RegistryAdmin):
    list_display = ["patient", "assessed_on", "neurological", "mri", "csf_cytology", "clinical_response"]
    list_filter = [*filters_through("patient"), "clinical_response", "neurological", "mri", "icans_remission"]
    search_fields = PATIENT_SEARCH
    list_select_related = ["patient__study"]
    autocomplete_fields = ["patient"]


@admin.register(FollowUpEvent)
class FollowUpEventAdmin(RegistryAdmin):
    list_display = ["patient", "event_type", "event_date"]
    list_filter = [*filters_through("patient"), "event_type"]
    search_fields = PATIENT_SEARCH
    list_select_related = ["patient__study"]
    autocomplete_fields = ["patient"]
