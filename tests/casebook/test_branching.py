"""Branching logic (registry/branching.py): declared once, refused on the server, marked on the page.

A value in a field that does not apply is an error (never silently dropped), whichever path writes it;
the forms leave out what never applies in the study and mark what depends on another field.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from casebook import forms
from registry.choices import DiseaseArea, IntrathecalDrug, TestResult
from tests import factories as f

pytestmark = pytest.mark.django_db


def _csf(area: str, **values):
    study = f.StudyFactory(disease_area=area)
    lp = f.LumbarPunctureFactory(patient=f.PatientFactory(study=study, site=study.sites.first()))
    return f.CsfResultFactory.build(lumbar_puncture=lp, **values)


@pytest.mark.parametrize("field", ["car_t_cells_per_ul", "il6_pg_per_ml"])
def test_car_t_cells_and_il6_are_refused_outside_icans(field):
    csf = _csf(DiseaseArea.NPSLE, **{field: Decimal("12")})
    with pytest.raises(ValidationError) as refused:
        csf.full_clean()
    message = refused.value.message_dict[field][0]
    assert message == "This is recorded only in studies of ICANS after CAR-T cells; leave it empty."


@pytest.mark.parametrize("field", ["car_t_cells_per_ul", "il6_pg_per_ml"])
def test_car_t_cells_and_il6_are_kept_in_icans(field):
    _csf(DiseaseArea.ICANS, **{field: Decimal("12")}).full_clean()


def test_other_drug_name_only_when_the_drug_is_other():
    dose = f.IntrathecalDoseFactory.build(
        lumbar_puncture=f.LumbarPunctureFactory(),
        drug=IntrathecalDrug.METHOTREXATE,
        dose_mg=Decimal("10"),
        drug_other="Topotecan",
    )
    with pytest.raises(ValidationError) as refused:
        dose.full_clean()
    assert refused.value.message_dict["drug_other"] == [
        "This applies only when drug is 'Other'; leave it empty."
    ]


def test_organism_only_for_a_positive_result():
    test = f.PathogenTestFactory.build(
        csf_result=f.CsfResultFactory(), result=TestResult.NEGATIVE, organism="Cryptococcus"
    )
    with pytest.raises(ValidationError) as refused:
        test.full_clean()
    assert "applies only when result is 'Positive'" in refused.value.message_dict["organism"][0]
    test.result = TestResult.POSITIVE
    test.full_clean()


def test_the_lp_form_leaves_out_what_never_applies_and_marks_what_depends():
    npsle = forms.CsfResultForm(area=DiseaseArea.NPSLE)
    icans = forms.CsfResultForm(area=DiseaseArea.ICANS)
    assert "car_t_cells_per_ul" not in npsle.fields and "il6_pg_per_ml" not in npsle.fields
    assert "car_t_cells_per_ul" in icans.fields and "il6_pg_per_ml" in icans.fields
    attrs = forms.DoseForm().fields["drug_other"].widget.attrs
    assert (attrs["data-applies-field"], attrs["data-applies-values"]) == ("drug", "other")
    attrs = forms.PathogenTestForm().fields["organism"].widget.attrs
    assert (attrs["data-applies-field"], attrs["data-applies-values"]) == ("result", "positive")


def test_date_fields_are_native_pickers_bounded_by_birth_and_today():
    patient = f.PatientFactory(birth_date=dt.date(1980, 5, 1))
    form = forms.LumbarPunctureForm(instance=f.LumbarPunctureFactory.build(patient=patient))
    widget = form.fields["performed_at"].widget
    assert widget.input_type == "datetime-local"
    assert widget.attrs["min"] == "1980-05-01T00:00"
    assert widget.attrs["max"].endswith("T23:59")
    birth = forms.PatientCreateForm(user=f.UserFactory()).fields["birth_date"].widget
    assert (birth.input_type, birth.attrs["min"], birth.attrs["max"]) == (
        "date",
        "1900-01-01",
        dt.date.today().isoformat(),
    )
    for form_class in (forms.SledaiForm, forms.AdverseEventForm, forms.CarTInfusionForm):
        instance = form_class._meta.model(patient=patient)
        date_widgets = [
            field.widget
            for field in form_class(instance=instance).fields.values()
            if getattr(field.widget, "input_type", "") in ("date", "datetime-local")
        ]
        assert date_widgets, form_class
