"""The lumbar-puncture page's forms as one unit: built together, validated together, saved at once.

An LP is entered with its CSF result, pathogen tests, intrathecal doses, the planned injection it
fulfils and any safety overrides. ``LumbarPunctureEntry`` owns those forms, hands them to
``protocols.services.injection_record`` as one write, and puts each error the service raises back
on the form and field that caused it, so the view only asks "valid? saved?".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from concurrency.exceptions import RecordModifiedError
from django import forms as django_forms
from django.core.exceptions import ValidationError
from django.http import Http404, QueryDict

from protocols.models import PlannedInjection
from protocols.planning import ProposedDose
from protocols.safety import SafetyFinding
from protocols.selectors import next_injection
from protocols.services import AUTO, injection_record
from registry.models import CsfResult, IntrathecalDose, LumbarPuncture, PathogenTest, Patient

from . import forms
from .pages import ErrorTargets, StaffRequest, apply_errors, require_reason, show_stale

TEMPLATE = "casebook/forms/lumbar_puncture_form.html"


def _deleted(form: django_forms.BaseForm) -> bool:
    return bool(form.cleaned_data.get("DELETE")) if hasattr(form, "cleaned_data") else False


def _entered(formset: django_forms.BaseFormSet[Any]) -> list[Any]:
    """The rows of a formset that were filled in or changed, and not ticked for deletion."""
    return [f for f in formset.forms if f.has_changed() and not _deleted(f)]


def _dose_initial(dose: ProposedDose) -> dict[str, Any]:
    """A proposed dose as the initial values of a dose row."""
    initial = {"drug": dose.drug, "dose_mg": dose.dose_mg, "timing": dose.timing}
    if dose.volume_ml is not None:
        initial["volume_ml"] = dose.volume_ml
    if dose.diluent:
        initial["diluent"] = dose.diluent
    return initial


class LumbarPunctureEntry:
    """One LP (new when ``lp_pk`` is None) with everything entered on its page."""

    def __init__(self, request: StaffRequest, patient: Patient, lp_pk: int | None = None) -> None:
        self.request, self.patient, self.is_new = request, patient, lp_pk is None
        self.lp, self.csf = self._records(lp_pk)
        self.linked = (
            PlannedInjection.objects.filter(lumbar_puncture=self.lp)
            .select_related("phase")
            .order_by()
            .first()
            if self.lp.pk
            else None
        )
        self.upcoming = next_injection(patient)
        self.offered = [i for i in (self.linked, self.upcoming.injection if self.upcoming else None) if i]
        self.findings: list[SafetyFinding] = []
        self._build_forms(request.POST if request.method == "POST" else None)

    def _records(self, lp_pk: int | None) -> tuple[LumbarPuncture, CsfResult]:
        if lp_pk is None:
            return LumbarPuncture(patient=self.patient), CsfResult()
        lp = LumbarPuncture.objects.filter(patient=self.patient, pk=lp_pk).order_by().first()
        if lp is None:
            raise Http404("No such lumbar puncture for this patient.")
        lp.patient = self.patient  # read already, with its study (the forms ask for its disease area)
        return lp, CsfResult.objects.filter(lumbar_puncture=lp).first() or CsfResult()

    def _build_forms(self, data: QueryDict | None) -> None:
        lp, csf, upcoming = self.lp, self.csf, self.upcoming
        self.form = require_reason(forms.LumbarPunctureForm(data, instance=lp), self.patient, "procedures")
        self.csf_form = forms.CsfResultForm(
            data, instance=csf, prefix="csf", area=self.patient.study.disease_area
        )
        # The next injection's doses pre-fill a new LP (only when the page is first shown: posted rows
        # are compared with no initial, so an accepted proposal counts as entered).
        prefill = (
            [_dose_initial(d) for d in upcoming.doses] if upcoming and self.is_new and data is None else []
        )
        self.doses = forms.DoseFormSet(
            data,
            prefix="doses",
            queryset=IntrathecalDose.objects.filter(lumbar_puncture=lp)
            .select_related("formulation_record")
            .within_owner()
            if lp.pk
            else IntrathecalDose.objects.none(),
            initial=prefill,
        )
        self.tests = forms.PathogenTestFormSet(
            data,
            prefix="tests",
            queryset=PathogenTest.objects.filter(csf_result=csf) if csf.pk else PathogenTest.objects.none(),
        )
        chosen = self.linked or (upcoming.injection if upcoming else None)
        self.plan_form = forms.InjectionPlanForm(data, prefix="plan", offered=self.offered, chosen=chosen)
        self.safety = forms.SafetyOverrideForm(data, prefix="safety")

    def is_valid(self) -> bool:
        """Every form validated (each one, so every form shows its own errors)."""
        parts = (self.form, self.csf_form, self.doses, self.tests, self.plan_form, self.safety)
        verdicts = [part.is_valid() for part in parts]  # not all(generator): that stops at the first
        return all(verdicts)

    def save(self) -> bool:
        """Record the LP and all it carries in one write; False with the errors on the forms."""
        changed_doses, changed_tests = _entered(self.doses), _entered(self.tests)
        kept_doses = [
            f.instance for f in self.doses.forms if f.instance.pk and not f.has_changed() and not _deleted(f)
        ]
        removed = [
            f.instance for f in (*self.doses.forms, *self.tests.forms) if _deleted(f) and f.instance.pk
        ]
        blank_csf = self.csf_form.is_blank() and not changed_tests
        if blank_csf and self.csf.pk:
            removed.append(self.csf)
        try:
            injection_record(
                lp=self.form.instance,
                csf=None if blank_csf else self.csf_form.instance,
                pathogen_tests=[f.instance for f in changed_tests],
                doses=[f.instance for f in changed_doses],
                kept=kept_doses,
                formulations=[f.cleaned_data.get("formulation") for f in changed_doses],
                removed=removed,
                planned=self._planned() if changed_doses or kept_doses else None,
                deviation_reason=self.plan_form.cleaned_data["deviation_reason"],
                overrides=self.safety.overrides(),
                actor=self.request.user,
                reason=self.form.reason(
                    "Lumbar puncture recorded" if self.is_new else "Lumbar puncture edited"
                ),
            )
        except RecordModifiedError:
            show_stale(self.form)
            return False
        except ValidationError as error:
            self.findings = getattr(error, "findings", [])
            apply_errors(error, self.form, self._error_targets(changed_doses, changed_tests))
            return False
        return True

    def _planned(self) -> object:
        """The planned injection chosen on the page, or AUTO (the course's next) when none was offered."""
        return self.plan_form.cleaned_data["planned_injection"] if self.offered else AUTO

    def _error_targets(
        self, changed_doses: list[django_forms.BaseForm], changed_tests: list[django_forms.BaseForm]
    ) -> ErrorTargets:
        """Where each key of the service's errors belongs: which form (row) and which field."""

        def row(
            rows: list[django_forms.BaseForm],
        ) -> Callable[[str], tuple[django_forms.BaseForm, str | None]]:
            return lambda rest: (rows[int(rest.split(".")[0])], rest.split(".", 1)[1])

        return {
            "csf.": lambda field: (self.csf_form, field),
            "doses.": row(changed_doses),
            "pathogen_tests.": row(changed_tests),
            "overrides.": lambda code: (self.safety, None),
            "deviation_reason": lambda rest: (self.plan_form, "deviation_reason"),
            "planned_injection": lambda rest: (self.plan_form, "planned_injection"),
        }

    @property
    def saved_message(self) -> str:
        return f"Lumbar puncture {'recorded' if self.is_new else 'saved'}."

    def context(self) -> dict[str, Any]:
        return {
            "form": self.form,
            "csf_form": self.csf_form,
            "doses": self.doses,
            "tests": self.tests,
            "plan_form": self.plan_form if self.offered else None,
            "upcoming": self.upcoming if self.is_new else None,
            "linked": self.linked,
            # A finding that cannot be overridden and has a field is shown at that field by the model.
            "safety_rows": self.safety.rows([f for f in self.findings if f.overridable or not f.field]),
            "title": "Add lumbar puncture" if self.is_new else "Edit lumbar puncture",
            "action": self.request.path,
        }
