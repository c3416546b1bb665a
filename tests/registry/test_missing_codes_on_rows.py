"""Missing-data codes on the rows of an LP: a dose's optional volume, diluent and course say why they
are empty, like every other record's optional fields; a pathogen test has no field a code could stand for."""

import re
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import Role
from casebook.forms import MISSING_SUFFIX, DoseForm, PathogenTestForm
from registry import missing
from registry.choices import DiseaseArea
from registry.models import IntrathecalDose, LumbarPuncture, PathogenTest
from registry.models.base import MissingCodes, RegistryRecord
from registry.services.procedures import lumbar_puncture_save
from tests import factories as f

pytestmark = pytest.mark.django_db

#: Case-record models with optional coded fields that keep no codes, and why.
WITHOUT_CODES = {
    # Entered as one row per syndrome in a plain (non-model) formset: a syndrome not present is not
    # recorded at all, so its onset date has no "why missing" of its own yet.
    "NpsleManifestation",
    # The screening log is not a case record (Fig. 1 counts); its reason is the exclusion itself.
    "ScreeningLogEntry",
}


def test_every_case_record_with_optional_fields_keeps_missing_codes():
    lacking = {
        model.__name__
        for model in apps.get_app_config("registry").get_models()
        if issubclass(model, RegistryRecord)
        and missing.eligible(model)
        and not issubclass(model, MissingCodes)
    }
    assert lacking == WITHOUT_CODES


def test_a_dose_keeps_a_code_for_its_optional_fields():
    assert missing.eligible(IntrathecalDose) == ["volume_ml", "diluent", "course_number"]
    dose = f.IntrathecalDoseFactory(volume_ml=None, course_number=None)
    dose.missing_codes = {"volume_ml": "UNK", "course_number": "NA"}
    dose.full_clean()
    dose.save()
    dose.refresh_from_db()
    assert dose.missing_codes == {"volume_ml": "UNK", "course_number": "NA"}
    assert missing.described(dose) == [
        ("Volume (mL)", "UNK", "Unknown"),
        ("Course number", "NA", "Not applicable"),
    ]


def test_a_dose_refuses_a_code_with_a_value_an_unknown_code_or_a_required_field():
    dose = f.IntrathecalDoseFactory(volume_ml=Decimal("10"))
    dose.missing_codes = {"volume_ml": "ND"}
    with pytest.raises(ValidationError) as given:
        dose.full_clean()
    assert "not both" in given.value.message_dict["volume_ml"][0]
    dose.missing_codes = {"course_number": "LOST"}
    dose.course_number = None
    with pytest.raises(ValidationError) as unknown:
        dose.full_clean()
    assert "is not a missing-data code" in unknown.value.message_dict["course_number"][0]
    dose.missing_codes = {"dose_mg": "UNK"}  # the dose itself is never optional
    with pytest.raises(ValidationError) as required:
        dose.full_clean()
    assert "not an optional field" in required.value.message_dict["missing_codes"][0]


def test_the_lp_service_saves_and_refuses_dose_codes_as_one_unit():
    nurse = f.UserFactory()
    lp = f.LumbarPunctureFactory.build(patient=f.PatientFactory())
    coded = IntrathecalDose(drug="methotrexate", dose_mg=Decimal("12"), missing_codes={"diluent": "NASK"})
    lumbar_puncture_save(lp=lp, doses=[coded], actor=nurse, reason="")
    assert IntrathecalDose.objects.get().missing_codes == {"diluent": "NASK"}

    other = f.LumbarPunctureFactory.build(patient=f.PatientFactory())
    both = IntrathecalDose(
        drug="methotrexate", dose_mg=Decimal("12"), volume_ml=Decimal("5"), missing_codes={"volume_ml": "ND"}
    )
    with pytest.raises(ValidationError) as error:
        lumbar_puncture_save(lp=other, doses=[both], actor=nurse, reason="")
    assert "doses.0.volume_ml" in error.value.message_dict
    assert LumbarPuncture.objects.count() == 1


def test_the_dose_row_offers_a_code_beside_each_optional_field_only():
    form = DoseForm()
    coded = sorted(name.removesuffix(MISSING_SUFFIX) for name in form.fields if name.endswith(MISSING_SUFFIX))
    assert coded == ["course_number", "diluent", "volume_ml"]
    assert [c for c, _ in form.fields["volume_ml" + MISSING_SUFFIX].choices] == ["", *missing.codes()]


def test_a_pathogen_test_has_no_field_a_code_could_stand_for():
    """Test and result are required; the organism is free text (branching: a positive test only),
    and free text takes no code on any form."""
    assert missing.eligible(PathogenTest) == []
    assert not any(name.endswith(MISSING_SUFFIX) for name in PathogenTestForm().fields)


def _lp_post(**overrides):
    return {
        "performed_at": "2021-03-02T09:00",
        "route": "lumbar",
        "csf-cytology": "not_done",
        "doses-TOTAL_FORMS": "1",
        "doses-INITIAL_FORMS": "0",
        "doses-0-drug": "methotrexate",
        "doses-0-dose_mg": "12",
        "doses-0-timing": "with",
        "tests-TOTAL_FORMS": "0",
        "tests-INITIAL_FORMS": "0",
    } | overrides


def test_a_nurse_codes_a_dose_volume_on_the_lp_page_and_sees_it_in_the_case_record(client):
    site = f.SiteFactory(code="north")
    study = f.StudyFactory(code="npsle", disease_area=DiseaseArea.NPSLE, sites=[site])
    nurse = f.UserFactory()
    f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
    client.force_login(nurse)
    patient = f.PatientFactory(study=study, site=site)
    url = reverse("casebook:lp_create", args=[patient.pk])
    page = client.get(url).content.decode()
    assert re.search(r'<select name="doses-0-volume_ml__missing"', page)

    response = client.post(url, _lp_post(**{"doses-0-volume_ml__missing": "UNK"}))
    assert response.status_code == 302
    dose = IntrathecalDose.objects.get()
    assert dose.volume_ml is None and dose.missing_codes == {"volume_ml": "UNK"}
    record = client.get(response.url).content.decode()
    assert 'Missing: Volume (mL) — <abbr title="Unknown">UNK</abbr> (unknown)' in record

    refused = client.post(
        url,
        _lp_post(**{"doses-0-volume_ml": "5", "doses-0-volume_ml__missing": "ND"}),
        HTTP_HX_REQUEST="true",
    )
    assert refused.status_code == 200
    assert "not both" in refused.context["doses"].forms[0].errors["volume_ml"][0]
    assert IntrathecalDose.objects.count() == 1
