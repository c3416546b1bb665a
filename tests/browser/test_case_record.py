"""Data entry in a real browser: enrol, record an LP with CSF and doses, fix a dose, score SLEDAI-2K."""

import datetime as dt

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from registry.choices import DiseaseArea
from registry.models import IntrathecalDose, Patient
from tests import factories as f
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-password-1"


@pytest.fixture
def nurse():
    site = f.SiteFactory(code="north", name="North Teaching Hospital")
    f.StudyFactory(code="npsle", disease_area=DiseaseArea.NPSLE, title="IT MTX+DEX in NPSLE", sites=[site])
    user = f.UserFactory(username="nurse", first_name="Lin", last_name="Wei", password=PASSWORD)
    f.MembershipFactory(user=user, site=site, role=Role.DATA_ENTRY)
    return user


def test_data_entry_records_a_case(page, screenshot, nurse):
    sign_in(page, "nurse", PASSWORD)
    page.click("text=Enrol a patient")
    page.select_option("#id_study", label="npsle: IT MTX+DEX in NPSLE")
    page.select_option("#id_site", label="North Teaching Hospital")
    page.fill("#id_study_code", "NP-0042")
    page.select_option("#id_sex", "F")
    page.fill("#id_birth_date", "1992-04-18")
    page.fill("#id_index_admission_date", "2024-03-04")
    page.fill("#id_full_name", "Wang Xiaoli")
    page.fill("#id_medical_record_number", "MRN-778812")
    page.click("button:has-text('Enrol')")
    page.wait_for_selector("text=Patient npsle/NP-0042 enrolled.")
    patient = Patient.objects.get(study_code="NP-0042")
    assert patient.identifier.medical_record_number == "MRN-778812"

    # An LP with its CSF result and two intrathecal doses, in one form.
    page.click("#section-procedures >> text=Add lumbar puncture")
    form = page.locator("#section-procedures form")
    form.wait_for()
    page.fill("#id_performed_at", "2024-03-05T09:30")
    page.select_option("#id_route", "lumbar")
    page.fill("#id_opening_pressure_mmh2o", "230")
    page.fill("#id_closing_pressure_mmh2o", "150")
    page.fill("#id_csf-protein_g_per_l", "0.82")
    page.fill("#id_csf-wbc_1e6_per_l", "12")
    page.select_option("#id_doses-0-drug", "methotrexate")
    page.fill("#id_doses-0-dose_mg", "120")
    page.select_option("#id_doses-1-drug", "dexamethasone")
    page.fill("#id_doses-1-dose_mg", "10")
    assert page.locator("#section-procedures .unsaved-banner").is_visible()
    page.click("#section-procedures button:has-text('Save')")

    error = page.locator("#section-procedures .errorlist", has_text="Did you mean 12 mg?")
    error.wait_for()
    screenshot("dose-error")
    assert page.input_value("#id_csf-protein_g_per_l") == "0.82", "typed values survive a rejected form"
    assert page.input_value("#id_doses-1-dose_mg") == "10"
    assert not IntrathecalDose.objects.exists()

    page.fill("#id_doses-0-dose_mg", "10")
    page.click("#section-procedures button:has-text('Save')")
    page.wait_for_selector("#section-procedures >> text=Lumbar puncture recorded.")
    doses_cell = page.locator("#section-procedures tbody tr td:nth-child(5)").inner_text()
    assert "Methotrexate 10 mg" in doses_cell and "Dexamethasone 10 mg" in doses_cell

    # SLEDAI-2K: the total follows the ticks before anything is saved.
    page.click("#section-diagnosis >> text=Add SLEDAI-2K")
    page.locator("#section-diagnosis form").wait_for()
    page.fill("#id_assessed_on", "2024-03-04")
    for descriptor in ("seizure", "psychosis", "low_complement", "fever"):
        page.check(f"#id_{descriptor}")
    total = page.locator("#section-diagnosis [data-score=total]")
    expect(total).to_have_text("19")  # a locator wait: the page's CSP forbids eval (wait_for_function)
    screenshot("sledai-live-total")
    page.uncheck("#id_fever")
    expect(total).to_have_text("18")
    assert total.inner_text() == "18"
    page.click("#section-diagnosis button:has-text('Save')")
    page.wait_for_selector("#section-diagnosis >> text=SLEDAI-2K assessment added.")

    # The saved record is there after a reload.
    page.reload()
    procedures = page.locator("#section-procedures").inner_text()
    assert (
        "2024-03-05 09:30" in procedures
        and "Methotrexate 10 mg" in procedures
        and "Dexamethasone 10 mg" in procedures
    )
    assert "protein 0.82 g/L" in procedures
    assert "18" in page.locator("#section-diagnosis table").inner_text()
    assert "Wang Xiaoli" in page.locator("#section-identity").inner_text()
    screenshot("saved-record")
    lp = patient.lumbar_punctures.get()
    assert lp.performed_at.astimezone(dt.UTC).strftime("%H:%M") == "09:30"
    assert sorted(lp.doses.values_list("drug", flat=True)) == ["dexamethasone", "methotrexate"]
    assert lp.history.get().history_user == nurse


def test_icans_assessment_shows_score_and_grade_while_ticking(page, nurse):
    site = nurse.memberships.get().site
    study = f.StudyFactory(code="icans", disease_area=DiseaseArea.ICANS, sites=[site])
    patient = f.PatientFactory(study=study, site=site)
    sign_in(page, "nurse", PASSWORD)
    page.goto(f"/patients/{patient.pk}/")
    page.click("#section-diagnosis >> text=Add ICANS assessment")
    page.locator("#section-diagnosis form").wait_for()
    for item in ("orientation_year", "orientation_month", "naming_object_1", "naming_object_2"):
        page.check(f"#id_{item}")
    expect(page.locator("[data-score=ice_score]")).to_have_text("4")
    assert page.inner_text("[data-score=icans_grade]") == "2"
    page.select_option("#id_seizure", "3")
    expect(page.locator("[data-score=icans_grade]")).to_have_text("3")
