"""Forms of the case-record pages.

They parse input and show errors; the rules themselves are the models' (``full_clean()`` runs in
every ModelForm), so a message on the page is the same plain-language message the admin, the API and
the importers give.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.db import models
from django.forms.models import ModelFormMetaclass
from django.utils import timezone
from django.utils.functional import cached_property

from accounts.access import Capability, scope, sites_with
from accounts.models import Site
from protocols.choices import SafetyCheck
from protocols.models import Formulation, PlannedInjection
from registry import branching, missing
from registry.choices import DriverMutation, FollowUpEventType, NpsleSyndrome, Specimen
from registry.models import (
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
    NpsleDiagnosis,
    PathogenTest,
    Patient,
    PatientIdentifier,
    ResponseAssessment,
    Sledai2kAssessment,
    Study,
    SystemicTherapy,
)
from registry.scoring import ICE_ITEM_FIELDS, SLEDAI_2K_DESCRIPTORS
from registry.services.versions import VersionedForm
from review.models import ReviewStatus

DATETIME_FORMAT = "%Y-%m-%dT%H:%M"
#: The earliest date any case-record date may take (a birth date in 1900 is already a record).
EARLIEST_DATE = "1900-01-01"


class DateInput(forms.DateInput):
    """A native date picker; ``casebook.js`` adds a "Today" button and the date spelled out."""

    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__({"data-date-input": "date", **(attrs or {})}, format="%Y-%m-%d")


class DateTimeInput(forms.DateTimeInput):
    """A native date-and-time picker; ``casebook.js`` adds a "Now" button and the date spelled out."""

    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__({"data-date-input": "datetime", **(attrs or {})}, format=DATETIME_FORMAT)


def _native_widgets(field: models.Field, **kwargs) -> forms.Field | None:
    """Browser date pickers for dates and date-times (keyboard-friendly, no JavaScript needed)."""
    if isinstance(field, models.DateTimeField):
        kwargs.setdefault("widget", DateTimeInput)
        kwargs.setdefault("input_formats", [DATETIME_FORMAT, "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"])
    elif isinstance(field, models.DateField):
        kwargs.setdefault("widget", DateInput)
    return field.formfield(**kwargs)


def date_bounds(form: forms.BaseForm, *, earliest=None, future: frozenset[str] = frozenset()) -> None:
    """The pickers' ``min``/``max``: not before birth (or 1900), not after today unless planned.

    Only a guide for the picker: the models' rules still decide on the server.
    """
    today = timezone.localdate()
    lowest = earliest.isoformat() if earliest else EARLIEST_DATE
    for name, field in form.fields.items():
        kind = field.widget.attrs.get("data-date-input")
        if kind is None:
            continue
        field.widget.attrs.setdefault("min", lowest if kind == "date" else f"{lowest}T00:00")
        if name not in future:
            field.widget.attrs.setdefault("max", today.isoformat() if kind == "date" else f"{today}T23:59")


def apply_branching(form: forms.ModelForm, area: str | None) -> None:
    """Drop the fields that never apply in this study; mark those that depend on another field.

    The page shows a marked field only while its condition holds (``casebook.js``); the model's
    ``clean()`` refuses a value in a field that does not apply (``registry.branching``).
    """
    model = form._meta.model
    for name, rule in branching.rules_for(model).items():
        if name not in form.fields:
            continue
        if not branching.applies(model, name, area):
            del form.fields[name]
        elif rule.field is not None:
            form.fields[name].widget.attrs.update(
                {
                    "data-applies-name": name,
                    "data-applies-field": rule.field,
                    "data-applies-values": " ".join(sorted(rule.values)),
                }
            )


#: The suffix of the form field that holds a value field's missing-data code.
MISSING_SUFFIX = "__missing"


def add_missing_code_fields(form: forms.ModelForm) -> None:
    """A missing-data code beside each optional field of a record that keeps codes (registry.missing).

    The code field follows its value field (``_field.html`` draws them together; ``casebook.js``
    disables the value while a code is chosen, so a saved record has one or the other).
    """
    if not hasattr(form.instance, "missing_codes"):
        return
    recorded = form.instance.missing_codes or {}
    choices = [("", "—"), *((code, f"{code} ({text.lower()})") for code, text in missing.codes().items())]
    for name in missing.eligible(form._meta.model):
        if name not in form.fields or form.fields[name].required:
            continue
        label = form.fields[name].label or name
        form.fields[name + MISSING_SUFFIX] = forms.ChoiceField(
            choices=choices,
            required=False,
            initial=recorded.get(name, ""),
            label=f"{label}: why missing",
            widget=forms.Select(attrs={"aria-label": f"{label}: missing-data code", "data-missing-code": ""}),
        )
        form.fields[name].widget.attrs["data-has-missing-code"] = ""


def chosen_missing_codes(form: forms.ModelForm) -> dict[str, str]:
    """The record's codes after this form: those of its fields as chosen, others as they were."""
    codes = dict(form.instance.missing_codes or {})
    for name in list(codes):
        if name + MISSING_SUFFIX in form.fields:
            del codes[name]
    for key, code in form.cleaned_data.items():
        if key.endswith(MISSING_SUFFIX) and code:
            codes[key.removesuffix(MISSING_SUFFIX)] = code
    return codes


class NativeDatesMetaclass(ModelFormMetaclass):
    """Gives every case-record form's ``Meta`` the native date pickers.

    Django reads ``formfield_callback`` from the form's own ``Meta`` only, so a base class cannot
    pass it on (the date fields had silently stayed text boxes); the metaclass adds it to each.
    """

    def __new__(mcs, name, bases, attrs):
        meta = attrs.get("Meta")
        if meta is not None and not hasattr(meta, "formfield_callback"):
            meta.formfield_callback = staticmethod(_native_widgets)
        return super().__new__(mcs, name, bases, attrs)


class CaseForm(VersionedForm, metaclass=NativeDatesMetaclass):
    """Base of the case-record model forms: native date pickers with bounds, and branching.

    ``area`` is the study's disease area when the instance cannot tell it (a CSF result not yet
    attached to its LP); otherwise it is read from the instance's patient.
    """

    #: Date fields that may lie in the future (a course planned ahead).
    future_dates: frozenset[str] = frozenset()

    def __init__(self, *args: Any, area: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        patient = getattr(self.instance, "patient", None) if hasattr(self.instance, "patient_id") else None
        if patient is not None and area is None:
            area = patient.study.disease_area
        apply_branching(self, area)
        birth = patient.birth_date if patient is not None else None
        date_bounds(self, earliest=birth, future=self.future_dates)
        add_missing_code_fields(self)
        for field in self.fields.values():
            # Free text (an "other" term, an agent, a finding) gets the width of a short sentence.
            if isinstance(field, forms.CharField) and (field.max_length or 0) >= 100:
                field.widget.attrs.setdefault("class", "wide-text")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if hasattr(self.instance, "missing_codes"):
            self.instance.missing_codes = chosen_missing_codes(self)
        return cleaned


class RecordForm(CaseForm):
    """Base of every case-record form: native date inputs and the reason recorded with the change."""

    change_reason = forms.CharField(
        label="Reason for change",
        required=False,
        max_length=200,
        help_text="Kept in the audit trail with what you changed (e.g. 'corrected from the source notes').",
    )

    def reason(self, default: str) -> str:
        """The reason typed, or the default — which is only offered while the section is a draft."""
        given = self.cleaned_data.get("change_reason", "")
        return given or ("" if self.fields["change_reason"].required else default)


class PatientCreateForm(RecordForm):
    IDENTIFIERS_TOGETHER = "Give the full name and the medical record number together (or neither)."

    full_name = forms.CharField(
        required=False, max_length=200, label="Full name (identifier)", help_text="Required with an MRN."
    )
    medical_record_number = forms.CharField(
        required=False, max_length=64, label="Medical record number", help_text="Required with a full name."
    )

    class Meta:
        model = Patient
        fields = [
            "version",
            "study",
            "site",
            "study_code",
            "sex",
            "birth_date",
            "birth_year",
            "index_admission_date",
        ]

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        sites = scope(Site.objects.all(), user, Capability.EDIT_RECORDS)
        cast(forms.ModelChoiceField, self.fields["site"]).queryset = sites
        cast(forms.ModelChoiceField, self.fields["study"]).queryset = Study.objects.filter(
            sites__in=sites
        ).distinct()
        self.fields.pop("change_reason")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        name, mrn = cleaned.get("full_name"), cleaned.get("medical_record_number")
        if bool(name) != bool(mrn):
            self.add_error("full_name" if mrn else "medical_record_number", self.IDENTIFIERS_TOGETHER)
        return cleaned


class PatientIdentityForm(RecordForm):
    class Meta:
        model = Patient
        fields = ["version", "study_code", "sex", "birth_date", "birth_year", "index_admission_date"]


class IdentifierForm(RecordForm):
    class Meta:
        model = PatientIdentifier
        fields = ["version", "full_name", "medical_record_number"]


class PatientMoveForm(forms.Form):
    """Move a patient to another site of the study (the move right is needed at both sites)."""

    site = forms.ModelChoiceField(queryset=Site.objects.none(), label="Move to the site")
    reason = forms.CharField(
        max_length=200,
        label="Reason for the move",
        help_text="Kept in the patient's history with your name (for example: transferred for follow-up).",
    )

    def __init__(self, *args, patient: Patient, user, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["site"]).queryset = scope(
            patient.study.sites.all(), user, Capability.MOVE_PATIENTS
        ).exclude(pk=patient.site_id)


class DeathForm(RecordForm):
    class Meta:
        model = Patient
        fields = ["version", "death_date", "death_cause"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["death_date"].required = True
        self.fields["death_cause"].required = True


class NpsleDiagnosisForm(RecordForm):
    class Meta:
        model = NpsleDiagnosis
        fields = [
            "version",
            "onset_with_npsle",
            "sle_duration_months",
            *NpsleDiagnosis.SLE_ORGANS,
            "anti_dsdna",
            "anti_rrnp",
            "c3_g_per_l",
            "c4_g_per_l",
            "lupus_anticoagulant_ratio",
            "coombs",
            "anti_b2gp1",
            "anticardiolipin",
            "bilag_np_grade",
        ]


class SyndromeForm(forms.Form):
    """One ACR-1999 syndrome: present or not, and its onset."""

    syndrome = forms.ChoiceField(choices=NpsleSyndrome.choices, widget=forms.HiddenInput)
    present = forms.BooleanField(required=False)
    onset_date = forms.DateField(required=False, widget=DateInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        date_bounds(self)

    @property
    def label(self) -> str:
        return NpsleSyndrome(self["syndrome"].value()).label


class BaseSyndromeFormSet(forms.BaseFormSet):
    """All 19 rows are always validated: an unchanged row still says whether the syndrome is present."""

    def initial_form_count(self) -> int:
        return self.total_form_count() if self.is_bound else super().initial_form_count()


SyndromeFormSet = forms.formset_factory(
    SyndromeForm, formset=BaseSyndromeFormSet, extra=0, max_num=len(NpsleSyndrome), validate_max=True
)


def syndrome_initial(diagnosis: NpsleDiagnosis | None) -> list[dict]:
    recorded = {m.syndrome: m for m in diagnosis.manifestations.all()} if diagnosis and diagnosis.pk else {}
    return [
        {
            "syndrome": syndrome.value,
            "present": syndrome.value in recorded,
            "onset_date": recorded[syndrome.value].onset_date if syndrome.value in recorded else None,
        }
        for syndrome in NpsleSyndrome
    ]


class SledaiForm(RecordForm):
    class Meta:
        model = Sledai2kAssessment
        fields = ["version", "assessed_on", *[d.field for d in SLEDAI_2K_DESCRIPTORS]]

    def descriptor_groups(self) -> list[tuple[int, list]]:
        """The descriptors grouped by weight (8, 4, 2, 1) as on the paper form."""
        groups: dict[int, list] = {}
        for descriptor in SLEDAI_2K_DESCRIPTORS:
            groups.setdefault(descriptor.weight, []).append(self[descriptor.field])
        return sorted(groups.items(), reverse=True)


class LmDiagnosisForm(RecordForm):
    tissue_mutations = forms.MultipleChoiceField(
        choices=DriverMutation.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Driver mutations in tissue",
    )
    csf_mutations = forms.MultipleChoiceField(
        choices=DriverMutation.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Driver mutations in CSF",
    )

    class Meta:
        model = LmDiagnosis
        fields = [
            "version",
            "histology",
            "primary_diagnosis_date",
            "lm_diagnosis_date",
            "brain_metastases",
            "mri_pattern",
            "mri_findings",
            "csf_cytology",
            "eano_esmo_type",
            "ecog",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            for specimen, field in ((Specimen.TISSUE, "tissue_mutations"), (Specimen.CSF, "csf_mutations")):
                self.initial[field] = list(
                    self.instance.mutations.filter(specimen=specimen).values_list("mutation", flat=True)
                )


class CarTInfusionForm(RecordForm):
    class Meta:
        model = CarTInfusion
        fields = [
            "version",
            "underlying_malignancy",
            "product",
            "target",
            "infusion_date",
            "dose_1e6_cells_per_kg",
            "prior_lines",
            "marrow_blasts_pct",
            "cns_involvement",
        ]


class IcansAssessmentForm(RecordForm):
    class Meta:
        model = IcansAssessment
        fields = [
            "version",
            "assessed_at",
            *ICE_ITEM_FIELDS,
            "consciousness",
            "seizure",
            "motor",
            "raised_icp",
        ]


class CrsAssessmentForm(RecordForm):
    class Meta:
        model = CrsAssessment
        fields = [
            "version",
            "assessed_at",
            "fever",
            "fever_masked_by_treatment",
            "hypotension",
            "hypoxia",
            "death_from_crs",
        ]


class LumbarPunctureForm(RecordForm):
    class Meta:
        model = LumbarPuncture
        fields = [
            "version",
            "performed_at",
            "route",
            "opening_pressure_mmh2o",
            "closing_pressure_mmh2o",
            "post_lp_headache",
            "low_icp",
            "numbness",
            "infection",
            "other_complication",
        ]


def _model_field(model: type[models.Model], name: str) -> models.Field:
    """A concrete field of the model (a form's fields are among them, never a reverse relation)."""
    return cast(models.Field, model._meta.get_field(name))


class CsfResultForm(CaseForm):
    class Meta:
        model = CsfResult
        fields = [
            "version",
            "wbc_1e6_per_l",
            "rbc_1e6_per_l",
            "protein_g_per_l",
            "glucose_mmol_per_l",
            "chloride_mmol_per_l",
            "cytology",
            "il6_pg_per_ml",
            "car_t_cells_per_ul",
            "ngs_findings",
            "protein_upper_limit_g_per_l",
            "glucose_lower_limit_mmol_per_l",
            "chloride_lower_limit_mmol_per_l",
            "wbc_upper_limit_1e6_per_l",
        ]
        widgets = {"ngs_findings": forms.Textarea(attrs={"rows": 2})}

    def is_blank(self) -> bool:
        """Nothing entered: no CSF result to save (the cytology default alone is not a result)."""
        return not any(
            self.cleaned_data.get(name) not in (None, "", _model_field(CsfResult, name).default)
            for name in self.fields
            if name != "version" and not name.endswith(MISSING_SUFFIX)
        ) and not any(self.cleaned_data.get(name) for name in self.fields if name.endswith(MISSING_SUFFIX))


class DoseForm(CaseForm):
    formulation = forms.ModelChoiceField(
        queryset=Formulation.objects.all(),
        required=False,
        label="Product",
        empty_label="—",
        help_text="The product drawn up; one flagged as not for intrathecal use needs an override.",
    )

    class Meta:
        model = IntrathecalDose
        fields = [
            "version",
            "drug",
            "drug_other",
            "dose_mg",
            "timing",
            "volume_ml",
            "diluent",
            "course_number",
        ]
        labels = {"course_number": "Course", "drug_other": "Other drug (name)"}

    def __init__(self, *args, formulation_choices: list[Any] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if formulation_choices is not None:  # read once by the formset for all its rows
            cast(forms.ModelChoiceField, self.fields["formulation"]).choices = formulation_choices
        record = getattr(self.instance, "formulation_record", None) if self.instance.pk else None
        if record is not None:
            self.initial.setdefault("formulation", record.formulation_id)


class DoseRows(forms.BaseModelFormSet):
    """The dose rows of an LP; the products a row offers are read once for every row."""

    @cached_property
    def formulation_choices(self) -> list[Any]:
        field = cast(forms.ModelChoiceField, DoseForm.base_fields["formulation"])
        return list(iter(field.iterator(field)))  # iter(): list() would ask its length, a COUNT query

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        return {**super().get_form_kwargs(index), "formulation_choices": self.formulation_choices}


class PlannedInjectionField(forms.ModelChoiceField):
    """A planned injection named by its sequence, phase and date."""

    def label_from_instance(self, obj: PlannedInjection) -> str:
        return f"Injection {obj.sequence} ({obj.phase.name}), planned for {obj.planned_date:%Y-%m-%d}"


class InjectionPlanForm(forms.Form):
    """Which planned injection of the patient's course this lumbar puncture gives, and why it differs."""

    planned_injection = PlannedInjectionField(
        queryset=PlannedInjection.objects.none(),
        required=False,
        label="Gives",
        empty_label="No planned injection (not part of the course)",
    )
    deviation_reason = forms.CharField(
        label="Reason for the deviation",
        required=False,
        max_length=300,
        help_text="Needed when the date or the doses differ from the plan.",
    )

    def __init__(self, *args, offered: list[PlannedInjection], chosen: PlannedInjection | None, **kwargs):
        super().__init__(*args, **kwargs)
        field = cast(forms.ModelChoiceField, self.fields["planned_injection"])
        field.queryset = PlannedInjection.objects.filter(pk__in=[i.pk for i in offered]).select_related(
            "phase"
        )
        # Shown from the injections already read (the queryset still checks what is posted).
        field.choices = [("", field.empty_label), *((i.pk, field.label_from_instance(i)) for i in offered)]
        if chosen is not None:
            field.initial = chosen.pk
            self.initial.setdefault("deviation_reason", chosen.deviation_reason)


class SafetyOverrideForm(forms.Form):
    """An 'override' tick and a reason per safety check; the page shows those of the current findings."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for code, label in SafetyCheck.choices:
            self.fields[code] = forms.BooleanField(required=False, label=f"Override: {label.lower()}")
            self.fields[f"{code}_reason"] = forms.CharField(
                required=False, max_length=300, label="Reason for overriding"
            )

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data  # what Form.clean() returns
        for code in SafetyCheck.values:
            if cleaned.get(code) and not cleaned.get(f"{code}_reason", "").strip():
                self.add_error(f"{code}_reason", "Give the reason for overriding this check.")
        return cleaned

    def overrides(self) -> dict[str, str]:
        """{check code: reason} for the ticked checks."""
        data = getattr(self, "cleaned_data", {})
        return {code: data.get(f"{code}_reason", "") for code in SafetyCheck.values if data.get(code)}

    def rows(self, findings) -> list[tuple]:
        """(finding, its tick, its reason) for each finding, in order."""
        return [
            (finding, self[finding.code] if finding.overridable else None, self[f"{finding.code}_reason"])
            for finding in findings
        ]


class PathogenTestForm(CaseForm):
    class Meta:
        model = PathogenTest
        fields = ["version", "test", "result", "organism"]


DoseFormSet = forms.modelformset_factory(
    IntrathecalDose, form=DoseForm, formset=DoseRows, extra=3, can_delete=True
)
PathogenTestFormSet = forms.modelformset_factory(
    PathogenTest, form=PathogenTestForm, extra=2, can_delete=True
)


class SystemicTherapyForm(RecordForm):
    class Meta:
        model = SystemicTherapy
        fields = ["version", "category", "agent", "dose_description", "start_date", "end_date"]


class AdverseEventForm(RecordForm):
    class Meta:
        model = AdverseEvent
        fields = [
            "version",
            "lumbar_puncture",
            "ctcae_term",
            "term_other",
            "ctcae_version",
            "grade",
            "lab_value",
            "lab_lower_limit",
            "lab_upper_limit",
            "onset_date",
            "resolution_date",
            "attribution",
            "serious",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        patient = self.instance.patient
        cast(forms.ModelChoiceField, self.fields["lumbar_puncture"]).queryset = LumbarPuncture.objects.filter(
            patient=patient
        )


class DischargeOutcomeForm(RecordForm):
    class Meta:
        model = DischargeOutcome
        fields = ["version", "outcome", "discharge_date"]


class ResponseAssessmentForm(RecordForm):
    class Meta:
        model = ResponseAssessment
        fields = [
            "version",
            "assessed_on",
            "neurological",
            "mri",
            "csf_cytology",
            "clinical_response",
            "icans_remission",
            "notes",
        ]


class FollowUpEventForm(RecordForm):
    """Relapse, progression or last contact; a death is recorded with the death form."""

    class Meta:
        model = FollowUpEvent
        fields = ["version", "event_type", "event_date", "notes"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = cast(forms.ChoiceField, self.fields["event_type"])
        # A model field's choices are a list of (value, label) pairs once the form field is built.
        choices = cast(list[tuple[str, str]], field.choices)
        field.choices = [choice for choice in choices if choice[0] != FollowUpEventType.DEATH]


class DeleteForm(forms.Form):
    reason = forms.CharField(
        label="Reason for deleting",
        max_length=200,
        help_text="Kept in the audit trail with the deleted values.",
    )


class PatientSearchForm(forms.Form):
    """Search, filters and order of the patient list."""

    SORTS = [
        ("study_code", "Study code"),
        ("study", "Study"),
        ("site", "Site"),
        ("-admission", "Index admission, newest first"),
        ("-updated", "Changed most recently"),
    ]

    q = forms.CharField(required=False, label="Study code, name or MRN", max_length=100)
    study = forms.ModelChoiceField(queryset=Study.objects.none(), required=False, empty_label="All studies")
    site = forms.ModelChoiceField(queryset=Site.objects.none(), required=False, empty_label="All sites")
    status = forms.ChoiceField(
        choices=[("", "Any status"), *ReviewStatus.choices], required=False, label="A section is"
    )
    sort = forms.ChoiceField(choices=SORTS, required=False, label="Order")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["study"]).queryset = scope(
            Study.objects.all(), user, Capability.VIEW_RECORDS
        )
        cast(forms.ModelChoiceField, self.fields["site"]).queryset = sites_with(
            user, Capability.VIEW_RECORDS
        ).order_by("name")
