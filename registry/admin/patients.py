"""The patient page: one case record with every section inline for review."""

from __future__ import annotations

from django.contrib import admin

from accounts.access import Capability, has_capability

from ..choices import IntrathecalDrug, NpsleSyndrome
from ..formatting import plain
from ..models import (
    AdverseEvent,
    CarTInfusion,
    CrsAssessment,
    DischargeOutcome,
    FollowUpEvent,
    IcansAssessment,
    LmDiagnosis,
    LumbarPuncture,
    NpsleDiagnosis,
    Patient,
    PatientIdentifier,
    ResponseAssessment,
    Sledai2kAssessment,
    SystemicTherapy,
)
from ..selectors import patients_with_dose_summary
from .base import RegistryAdmin, SectionGuardedInline


class IdentifierInline(SectionGuardedInline, admin.StackedInline):
    """Shown only to users allowed to see identifiers (the model's view permission)."""

    model = PatientIdentifier
    can_delete = False
    extra = 0


class NpsleDiagnosisInline(SectionGuardedInline, admin.StackedInline):
    model = NpsleDiagnosis
    extra = 0
    show_change_link = True
    fields = ["onset_with_npsle", "sle_duration_months", "bilag_np_grade", "syndromes"]
    readonly_fields = ["syndromes"]

    @admin.display(description="ACR-1999 syndromes")
    def syndromes(self, obj):
        return ", ".join(m.get_syndrome_display() for m in obj.manifestations.all()) or "—"


class SledaiInline(SectionGuardedInline, admin.TabularInline):
    model = Sledai2kAssessment
    extra = 0
    show_change_link = True
    fields = ["assessed_on", "total"]
    readonly_fields = ["assessed_on", "total"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # the 24 descriptors are entered on the assessment's own page


class LmDiagnosisInline(SectionGuardedInline, admin.StackedInline):
    model = LmDiagnosis
    extra = 0
    show_change_link = True
    fields = ["histology", "lm_diagnosis_date", "ecog", "brain_metastases", "eano_esmo_type", "mutation_list"]
    readonly_fields = ["mutation_list"]

    @admin.display(description="driver mutations")
    def mutation_list(self, obj):
        return "; ".join(str(m) for m in obj.mutations.all()) or "—"


class CarTInfusionInline(SectionGuardedInline, admin.TabularInline):
    model = CarTInfusion
    extra = 0
    show_change_link = True


class IcansInline(SectionGuardedInline, admin.TabularInline):
    model = IcansAssessment
    extra = 0
    show_change_link = True
    fields = ["assessed_at", "consciousness", "seizure", "motor", "raised_icp", "ice_score", "icans_grade"]
    readonly_fields = ["ice_score", "icans_grade"]


class CrsInline(SectionGuardedInline, admin.TabularInline):
    model = CrsAssessment
    extra = 0
    show_change_link = True
    fields = ["assessed_at", "fever", "fever_masked_by_treatment", "hypotension", "hypoxia", "crs_grade"]
    readonly_fields = ["crs_grade"]


class LumbarPunctureInline(SectionGuardedInline, admin.TabularInline):
    """LPs with their CSF and doses summarised; the LP's own page edits CSF and doses."""

    model = LumbarPuncture
    extra = 0
    show_change_link = True
    fields = [
        "performed_at",
        "route",
        "opening_pressure_mmh2o",
        "closing_pressure_mmh2o",
        "csf_summary",
        "dose_summary",
    ]
    readonly_fields = ["csf_summary", "dose_summary"]

    def get_queryset(self, request):
        # Each row shows its CSF and doses: read with the rows, not twice more per LP.
        return super().get_queryset(request).select_related("csf").prefetch_related("doses")

    @admin.display(description="CSF")
    def csf_summary(self, obj):
        csf = getattr(obj, "csf", None)
        if csf is None:
            return "—"
        parts = []
        if csf.protein_g_per_l is not None:
            parts.append(f"protein {plain(csf.protein_g_per_l)} g/L")
        if csf.wbc_1e6_per_l is not None:
            parts.append(f"WBC {csf.wbc_1e6_per_l:g} ×10⁶/L")
        if csf.glucose_mmol_per_l is not None:
            parts.append(f"glucose {plain(csf.glucose_mmol_per_l)} mmol/L")
        parts.append(f"cytology {csf.get_cytology_display().lower()}")
        return "; ".join(parts)

    @admin.display(description="intrathecal doses")
    def dose_summary(self, obj):
        return " + ".join(str(d) for d in obj.doses.all()) or "—"


class SystemicTherapyInline(SectionGuardedInline, admin.TabularInline):
    model = SystemicTherapy
    extra = 0
    fields = ["category", "agent", "dose_description", "start_date", "end_date"]


class AdverseEventInline(SectionGuardedInline, admin.TabularInline):
    model = AdverseEvent
    extra = 0
    show_change_link = True
    fields = [
        "ctcae_term",
        "term_other",
        "grade",
        "lab_value",
        "onset_date",
        "resolution_date",
        "attribution",
    ]


class DischargeInline(SectionGuardedInline, admin.TabularInline):
    model = DischargeOutcome
    extra = 0


class ResponseInline(SectionGuardedInline, admin.TabularInline):
    model = ResponseAssessment
    extra = 0
    fields = ["assessed_on", "neurological", "mri", "csf_cytology", "clinical_response", "icans_remission"]


class FollowUpInline(SectionGuardedInline, admin.TabularInline):
    model = FollowUpEvent
    extra = 0
    fields = ["event_type", "event_date", "notes"]


class SyndromeFilter(admin.SimpleListFilter):
    title = "NPSLE syndrome"
    parameter_name = "syndrome"

    def lookups(self, request, model_admin):

        return NpsleSyndrome.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(npsle_diagnosis__manifestations__syndrome=self.value()).distinct()
        return queryset


class IntrathecalDrugFilter(admin.SimpleListFilter):
    title = "intrathecal drug"
    parameter_name = "it_drug"

    def lookups(self, request, model_admin):

        return IntrathecalDrug.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(lumbar_punctures__doses__drug=self.value()).distinct()
        return queryset


DISEASE_INLINES: dict[str, list[type[admin.options.InlineModelAdmin]]] = {
    "npsle": [NpsleDiagnosisInline, SledaiInline],
    "lm": [LmDiagnosisInline],
    "icans": [CarTInfusionInline, IcansInline, CrsInline],
}


@admin.register(Patient)
class PatientAdmin(RegistryAdmin):
    list_display = [
        "study_code",
        "study",
        "site",
        "sex",
        "index_admission_date",
        "it_dose_count",
        "cumulative_mtx_mg",
        "death_date",
    ]
    list_filter = ["study", "site", "sex", SyndromeFilter, IntrathecalDrugFilter, "death_cause"]
    search_fields = ["study_code"]
    list_select_related = ["study", "site"]
    date_hierarchy = "index_admission_date"
    readonly_fields = ["it_dose_count", "cumulative_mtx_mg", "age_at_index"]
    fieldsets = [
        (None, {"fields": ["study", "site", "study_code"]}),
        (
            "Demographics",
            {"fields": ["sex", "birth_date", "birth_year", "index_admission_date", "age_at_index"]},
        ),
        ("Death", {"fields": ["death_date", "death_cause"]}),
        ("Intrathecal therapy (computed)", {"fields": ["it_dose_count", "cumulative_mtx_mg"]}),
        ("Audit", {"fields": ["change_reason"]}),
    ]

    def get_queryset(self, request):
        return patients_with_dose_summary(super().get_queryset(request))

    def get_readonly_fields(self, request, obj=None):
        # The study and site are chosen at enrolment; a move is its own action (patient_move_site).
        fixed = ["study", "site"] if obj is not None else []
        return [*fixed, *super().get_readonly_fields(request, obj)]

    def get_inlines(self, request, obj):
        # Identifiers only for roles allowed to see them at this patient's site.
        sees_identifiers = request.user.has_perm("registry.view_patientidentifier") and has_capability(
            request.user, Capability.VIEW_IDENTIFIERS, obj.site_id if obj else None
        )
        common_before = [IdentifierInline] if sees_identifiers else []
        disease = DISEASE_INLINES.get(obj.study.disease_area, []) if obj else []
        common_after = [
            LumbarPunctureInline,
            SystemicTherapyInline,
            AdverseEventInline,
            DischargeInline,
            ResponseInline,
            FollowUpInline,
        ]
        return [*common_before, *disease, *(common_after if obj else [])]

    @admin.display(description="IT injections", ordering="it_dose_count")
    def it_dose_count(self, obj):
        return obj.it_dose_count

    @admin.display(description="cumulative MTX (mg)", ordering="cumulative_mtx_mg")
    def cumulative_mtx_mg(self, obj):
        return f"{plain(obj.cumulative_mtx_mg)}"

    @admin.display(description="age at index (years)")
    def age_at_index(self, obj):
        age = obj.age_at_index_years
        return "—" if age is None else f"{age:.1f}"


@admin.register(PatientIdentifier)
class PatientIdentifierAdmin(RegistryAdmin):
    view_capability = Capability.VIEW_IDENTIFIERS
    list_display = ["patient", "full_name", "medical_record_number"]
    search_fields = ["patient__study_code", "medical_record_number", "full_name"]
    list_select_related = ["patient__study"]
    autocomplete_fields = ["patient"]
