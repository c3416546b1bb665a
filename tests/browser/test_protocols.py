"""A course in a real browser: start it from the NPSLE protocol, see the calendar, record the first
injection from the pre-filled proposal, meet the low-ICP safety check, override it with a reason."""

import pytest

from accounts.models import Role
from protocols.choices import InjectionStatus
from protocols.models import PlannedInjection, SafetyOverride
from protocols.seed import ensure_seed_protocols
from registry.choices import DiseaseArea
from tests import factories as f
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-password-1"


@pytest.fixture
def patient():
    ensure_seed_protocols()
    site = f.SiteFactory(code="north", name="North Teaching Hospital")
    study = f.StudyFactory(code="npsle", disease_area=DiseaseArea.NPSLE, sites=[site])
    user = f.UserFactory(username="nurse", password=PASSWORD)
    f.MembershipFactory(user=user, site=site, role=Role.DATA_ENTRY)
    return f.PatientFactory(study=study, site=site, study_code="NP-7", index_admission_date="2024-03-01")


def test_a_course_from_start_to_an_overridden_finding(page, screenshot, patient):
    sign_in(page, "nurse", PASSWORD)
    page.goto(f"/patients/{patient.pk}/")
    page.click("#section-procedures >> text=Start course")
    page.locator("#section-procedures form").wait_for()
    page.fill("#id_start_date", "2024-03-04")
    page.click("#section-procedures button:has-text('Save')")
    page.wait_for_selector("text=Course started: 6 injections planned.")
    calendar = page.locator("#section-procedures table.calendar tbody tr")
    assert calendar.count() == 6
    assert "2024-03-11" in calendar.nth(1).inner_text()
    assert "Dexamethasone 10 mg" in calendar.nth(0).inner_text()
    screenshot("calendar")

    page.click("#section-procedures >> text=Add lumbar puncture")
    page.locator("[data-next-injection]").wait_for()
    assert page.input_value("#id_doses-0-dose_mg") != ""  # the proposal is pre-filled
    page.fill("#id_performed_at", "2024-03-04T09:30")
    page.select_option("#id_route", "lumbar")
    page.fill("#id_opening_pressure_mmh2o", "60")
    page.click("#section-procedures button:has-text('Save')")

    finding = page.locator("[data-finding=low_icp]")
    finding.wait_for()
    assert "not saved yet" in page.locator(".safety-findings legend").inner_text()
    assert page.input_value("#id_opening_pressure_mmh2o") == "60"  # nothing typed is lost
    assert not PlannedInjection.objects.exclude(status=InjectionStatus.PLANNED).exists()
    screenshot("finding")

    finding.locator("input[type=checkbox]").check()
    finding.locator("input[type=text], textarea").first.fill("Slow tap; headache relief needed")
    page.click("#section-procedures button:has-text('Save')")
    page.wait_for_selector("text=Lumbar puncture recorded.")
    assert page.locator("[data-override=low_icp]").is_visible()
    assert page.locator("#section-procedures tr[data-injection='1']").get_attribute("data-status") == "given"
    override = SafetyOverride.objects.get()
    assert (override.check_code, override.reason, override.overridden_by.username) == (
        "low_icp",
        "Slow tap; headache relief needed",
        "nurse",
    )
    screenshot("saved")
