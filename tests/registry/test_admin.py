"""The admin as the reviewers' interface: every model listed, filtered, searched and opened."""

import datetime as dt
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from registry.choices import DiseaseArea
from registry.models import Patient, Sledai2kAssessment
from tests import factories as f

pytestmark = pytest.mark.django_db

FACTORIES = {
    "site": f.SiteFactory,
    "study": f.StudyFactory,
    "patient": f.PatientFactory,
    "patientidentifier": f.PatientIdentifierFactory,
    "npslediagnosis": f.NpsleDiagnosisFactory,
    "npslemanifestation": f.NpsleManifestationFactory,
    "sledai2kassessment": f.SledaiFactory,
    "lmdiagnosis": f.LmDiagnosisFactory,
    "mutationfinding": f.MutationFindingFactory,
    "cartinfusion": f.CarTInfusionFactory,
    "icansassessment": f.IcansAssessmentFactory,
    "crsassessment": f.CrsAssessmentFactory,
    "lumbarpuncture": f.LumbarPunctureFactory,
    "csfresult": f.CsfResultFactory,
    "pathogentest": f.PathogenTestFactory,
    "intrathecaldose": f.IntrathecalDoseFactory,
    "systemictherapy": f.SystemicTherapyFactory,
    "adverseevent": f.AdverseEventFactory,
    "dischargeoutcome": f.DischargeOutcomeFactory,
    "responseassessment": f.ResponseAssessmentFactory,
    "followupevent": f.FollowUpEventFactory,
    "screeninglogentry": f.ScreeningLogEntryFactory,
}
REGISTRY_MODELS = [
    m for m in apps.get_app_config("registry").get_models() if not m.__name__.startswith("Historical")
]


def test_every_registry_model_is_in_the_admin_and_has_a_factory():
    for model in REGISTRY_MODELS:
        assert admin.site.is_registered(model), model.__name__
        assert model._meta.model_name in FACTORIES, model.__name__


@pytest.mark.parametrize("model", REGISTRY_MODELS, ids=lambda m: m.__name__)
def test_changelist_add_change_and_history_pages_load(model, admin_client):
    obj = FACTORIES[model._meta.model_name]()
    name = model._meta.model_name
    for url in (
        reverse(f"admin:registry_{name}_changelist"),
        reverse(f"admin:registry_{name}_changelist") + "?q=P",
        reverse(f"admin:registry_{name}_add"),
        reverse(f"admin:registry_{name}_change", args=[obj.pk]),
        reverse(f"admin:registry_{name}_history", args=[obj.pk]),
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url


@pytest.mark.parametrize("model", REGISTRY_MODELS, ids=lambda m: m.__name__)
def test_every_list_filter_answers(model, admin_client):
    obj = FACTORIES[model._meta.model_name]()
    url = reverse(f"admin:registry_{model._meta.model_name}_changelist")
    response = admin_client.get(url)
    for spec in response.context["cl"].filter_specs:
        for choice in list(spec.choices(response.context["cl"]))[1:3]:
            filtered = admin_client.get(url + choice["query_string"])
            assert filtered.status_code == 200, (spec.title, choice["query_string"])
    assert obj.pk


def test_patient_filters_by_syndrome_and_drug(admin_client):
    psychosis = f.NpsleManifestationFactory().diagnosis.patient
    other = f.PatientFactory(study=psychosis.study)
    url = reverse("admin:registry_patient_changelist")
    shown = admin_client.get(url + "?syndrome=psychosis").context["cl"].result_list
    assert list(shown) == [psychosis]
    f.IntrathecalDoseFactory(lumbar_puncture=f.LumbarPunctureFactory(patient=other))
    shown = admin_client.get(url + "?it_drug=methotrexate").context["cl"].result_list
    assert list(shown) == [other]


def test_patient_page_shows_every_section_inline(admin_client):
    lp = f.LumbarPunctureFactory()
    patient = lp.patient
    f.CsfResultFactory(lumbar_puncture=lp, protein_g_per_l=Decimal("0.62"))
    f.IntrathecalDoseFactory(lumbar_puncture=lp, dose_mg=Decimal("10"))
    f.NpsleManifestationFactory(diagnosis=f.NpsleDiagnosisFactory(patient=patient))
    f.SledaiFactory(patient=patient)
    f.SystemicTherapyFactory(patient=patient)
    f.AdverseEventFactory(patient=patient)
    f.DischargeOutcomeFactory(patient=patient)
    f.FollowUpEventFactory(patient=patient)
    page = admin_client.get(reverse("admin:registry_patient_change", args=[patient.pk])).content.decode()
    for text in (
        "protein 0.62 g/L",
        "Methotrexate 10 mg",
        "Psychosis",
        "methylprednisolone",
        "Headache",
        "Partial improvement",
        "NPSLE relapse",
        "SLEDAI-2K total",
        "Patient identifier",
    ):
        assert text in page, text


def test_disease_sections_follow_the_study(admin_client):
    lm = f.LmDiagnosisFactory().patient
    page = admin_client.get(reverse("admin:registry_patient_change", args=[lm.pk])).content.decode()
    assert "LM diagnosis" in page and "NPSLE diagnosis" not in page


def test_computed_dose_summary_in_the_patient_list(admin_client):
    lp = f.LumbarPunctureFactory()
    f.IntrathecalDoseFactory(lumbar_puncture=lp, dose_mg=Decimal("10"))
    f.IntrathecalDoseFactory(
        lumbar_puncture=f.LumbarPunctureFactory(patient=lp.patient), dose_mg=Decimal("12.5")
    )
    row = admin_client.get(reverse("admin:registry_patient_changelist")).context["cl"].result_list[0]
    assert row.it_dose_count == 2
    assert row.cumulative_mtx_mg == Decimal("22.5")


def test_sledai_total_cannot_be_typed_in_the_admin(admin_client):
    patient = f.PatientFactory()
    url = reverse("admin:registry_sledai2kassessment_add")
    response = admin_client.post(
        url,
        {
            "patient": patient.pk,
            "assessed_on": "2021-03-01",
            "seizure": "on",
            "total": "99",
            "change_reason": "entered from the ward sheet",
        },
    )
    assert response.status_code == 302
    assessment = Sledai2kAssessment.objects.get()
    assert assessment.total == 8
    record = assessment.history.get()
    assert record.history_change_reason == "entered from the ward sheet"
    assert record.history_user.is_superuser


def test_identifiers_hidden_from_users_without_the_permission(client):
    from django.contrib.auth.models import Permission

    viewer = f.UserFactory(is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_patient", "change_patient"]))
    client.force_login(viewer)
    patient = f.PatientIdentifierFactory(full_name="Secret Name").patient
    page = client.get(reverse("admin:registry_patient_change", args=[patient.pk])).content.decode()
    assert "Secret Name" not in page
    assert client.get(reverse("admin:registry_patientidentifier_changelist")).status_code == 403


def test_admin_bulk_delete_leaves_a_history_row_per_record(admin_client):
    patients = [f.PatientFactory(index_admission_date=dt.date(2021, 1, 1)) for _ in range(2)]
    response = admin_client.post(
        reverse("admin:registry_patient_changelist"),
        {"action": "delete_selected", "_selected_action": [p.pk for p in patients], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Patient.objects.exists()
    assert Patient.history.filter(history_type="-").count() == 2


def test_study_disease_area_choices():
    assert set(DiseaseArea.values) == {"npsle", "lm", "icans"}


def test_no_admin_form_offers_every_record_of_a_table_that_grows_with_patients(admin_user):
    # A plain select lists every patient (or LP, CSF result, diagnosis) of every study, each with its
    # label: the NPSLE manifestation's page made 6,018 queries and took 6 s at 3,000 patients. Such
    # a field is an autocomplete (searched, scoped to the user's sites) or read-only.
    from django.contrib.admin.widgets import AutocompleteSelect, ForeignKeyRawIdWidget
    from django.forms import ModelChoiceField
    from django.test import RequestFactory

    from registry.catalogue import patient_record_models

    growing = set(patient_record_models(include_identifiers=True))
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    plain = []
    for model, model_admin in admin.site._registry.items():
        if not (model_admin.has_add_permission(request) or model_admin.has_change_permission(request)):
            continue  # read-only: every field is shown as text
        forms = [(model, model_admin.get_form(request), None)]
        for inline in model_admin.get_inline_instances(request):
            formset = inline.get_formset(request)
            forms.append((inline.model, formset.form, formset.fk.name))  # the parent: set, not chosen
        for owner, form, parent in forms:
            for name, form_field in form.base_fields.items():
                if name == parent or not isinstance(form_field, ModelChoiceField):
                    continue
                if form_field.queryset.model not in growing:
                    continue
                widget = getattr(form_field.widget, "widget", form_field.widget)  # RelatedFieldWidgetWrapper
                if not isinstance(widget, AutocompleteSelect | ForeignKeyRawIdWidget):
                    plain.append(f"{owner.__name__}.{name}")
    assert not plain, plain
