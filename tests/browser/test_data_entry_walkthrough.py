"""A study nurse enters a new NPSLE patient and a new ICANS patient, every section, in a real browser.

Only what a nurse does: clicks, typing (dates typed into the native pickers, or their Today/Now
buttons) and choosing from lists. On every form the test asserts that no input's value is cut off
(at 1366 px, and the LP form again at 1024 px), that no field which does not apply is offered (CSF
CAR-T cells and IL-6 only in ICANS, the other drug's name only for "Other", the organism only for a
positive test), and it carries a missing-data code from entry through the exports (the CSV's
``missing_codes`` column, an SPSS user-missing and a Stata extended missing value) to the report's
cohort flow.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pyreadstat
import pytest
from playwright.sync_api import expect

from accounts.models import Role
from registry.choices import DiseaseArea
from registry.models import CsfResult, LumbarPuncture, Patient
from tests import factories as f
from tests.browser.conftest import CHROMIUM, SCREENSHOTS, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-password-1"

#: Inputs whose value does not fit: text wider than the box; a select's chosen option wider than the
#: select; a date picker narrower than its date. Only visible, enabled fields count.
CLIPPED = """() => {
  const ctx = document.createElement('canvas').getContext('2d');
  const out = [];
  for (const e of document.querySelectorAll('main input, main select, main textarea')) {
    if (!e.offsetParent || ['checkbox', 'radio', 'hidden', 'submit', 'button'].includes(e.type)) continue;
    const cs = getComputedStyle(e);
    if (e.tagName === 'SELECT') {
      ctx.font = cs.font;
      const text = e.selectedOptions[0] ? e.selectedOptions[0].text : '';
      const need = ctx.measureText(text).width + parseFloat(cs.paddingLeft) + parseFloat(cs.paddingRight) + 18;
      if (need > e.clientWidth) out.push(`${e.name} "${text}" needs ${Math.round(need)} px, has ${e.clientWidth}`);
    } else if (e.type === 'date' || e.type === 'datetime-local') {
      const need = e.type === 'date' ? 130 : 195;
      if (e.clientWidth < need) out.push(`${e.name} is ${e.clientWidth} px, a date needs ${need}`);
    } else if (e.scrollWidth > e.clientWidth) {
      out.push(`${e.name} "${e.value}" needs ${e.scrollWidth} px, has ${e.clientWidth}`);
    }
  }
  return out;
}"""


@pytest.fixture
def people():
    north = f.SiteFactory(code="north", name="North Teaching Hospital")
    haem = f.SiteFactory(code="haem", name="Haematology Centre")
    f.StudyFactory(code="npsle", disease_area=DiseaseArea.NPSLE, title="IT MTX+DEX in NPSLE", sites=[north])
    f.StudyFactory(code="icans", disease_area=DiseaseArea.ICANS, title="IDM for ICANS", sites=[haem])
    nurse = f.UserFactory(username="nurse", first_name="Lin", last_name="Wei", password=PASSWORD)
    researcher = f.UserFactory(username="researcher", password=PASSWORD)
    for site in (north, haem):
        f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
        f.MembershipFactory(user=researcher, site=site, role=Role.RESEARCHER)
    return {"nurse": nurse, "researcher": researcher}


@pytest.fixture
def nurse_page(chromium, live_server):
    """A laptop-sized page that may download files; page errors and CSP violations fail the test."""
    context = chromium.new_context(
        base_url=live_server.url,
        viewport={"width": 1366, "height": 900},
        locale="en-GB",
        accept_downloads=True,
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    yield page
    context.close()
    assert not errors, "\n".join(errors)


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"walkthrough-{name}.png"), full_page=True)


def _fits(page, where: str) -> None:
    clipped = page.evaluate(CLIPPED)
    assert not clipped, f"{where}: clipped inputs: {clipped}"


def _open(page, section: str, button: str) -> None:
    page.locator(f"#section-{section}").get_by_role("link", name=button).or_(
        page.locator(f"#section-{section}").get_by_role("button", name=button)
    ).first.click()
    page.locator(f"#section-{section} form").wait_for()


def _save(page, section: str, message: str) -> None:
    page.locator(f"#section-{section} button[type=submit]", has_text="Save").click()
    saved = page.locator(f"#section-{section} .saved-message, #section-{section} .errorlist").first
    saved.wait_for()
    if saved.get_attribute("class") != "saved-message":
        _shot(page, "refused")
    expect(page.locator(f"#section-{section} .saved-message")).to_have_text(f"✓ {message}")


def _type_date(page, selector: str, iso: str) -> None:
    """Type a date into a native picker as a person does: tab into it (the first part takes the focus),
    then the digits in the order the picker shows them (this chromium's is month, day, year), and
    check the ISO value it holds."""
    year, month, day = iso.split("-")
    page.focus(selector)
    page.keyboard.type(month + day + year)
    expect(page.locator(selector)).to_have_value(iso)


def _code(page, field: str, code: str) -> None:
    """Choose a missing-data code; the field it explains is disabled (and so not sent)."""
    page.select_option(f"[name='{field}__missing']", code)
    expect(page.locator(f"[name='{field}']")).to_be_disabled()


def _enrol(page, study_label: str, site: str, code: str, birth: str) -> Patient:
    page.goto("/")
    page.get_by_role("link", name="Enrol a patient").first.click()
    page.select_option("#id_study", label=study_label)
    page.select_option("#id_site", label=site)
    page.fill("#id_study_code", code)
    page.select_option("#id_sex", "F")
    _type_date(page, "#id_birth_date", birth)
    _type_date(page, "#id_index_admission_date", "2026-11-01")
    page.fill("#id_full_name", "Wang Xiaoli")
    page.fill("#id_medical_record_number", f"MRN-{code}")
    _fits(page, "enrolment")
    page.get_by_role("button", name="Enrol").click()
    _shot(page, f"enrolled-{code}")
    expect(page.locator("ul.messages")).to_contain_text(f"{code} enrolled.")
    return Patient.objects.get(study_code=code)


def _lumbar_puncture(page, *, icans: bool) -> None:
    _open(page, "procedures", "Add lumbar puncture")
    page.locator("#section-procedures").get_by_role("button", name="Now").click()
    # No field that does not apply: CAR-T cells and IL-6 are ICANS measurements.
    for field in ("csf-car_t_cells_per_ul", "csf-il6_pg_per_ml"):
        expect(page.locator(f"[name='{field}']")).to_have_count(1 if icans else 0)
    page.fill("#id_csf-protein_g_per_l", "0.82")
    if icans:
        page.fill("#id_csf-car_t_cells_per_ul", "12.5")
        page.fill("#id_csf-il6_pg_per_ml", "310")
        page.fill("#id_opening_pressure_mmh2o", "210")
    else:
        _code(page, "opening_pressure_mmh2o", "ND")
    page.select_option("#id_doses-0-drug", "methotrexate")
    page.fill("#id_doses-0-dose_mg", "10.00")
    if not icans:
        _code(page, "doses-0-volume_ml", "UNK")  # a dose row's optional field takes a code too
    page.select_option("#id_doses-1-drug", "dexamethasone")
    page.fill("#id_doses-1-dose_mg", "10.00")
    page.select_option("#id_doses-1-timing", "after")
    page.fill("#id_doses-1-volume_ml", "5.0")
    page.select_option("#id_doses-1-diluent", "saline_pf")
    # The other drug's name appears only for "Other", and goes again.
    other = page.locator("#id_doses-2-drug_other")
    expect(other).to_be_hidden()
    page.select_option("#id_doses-2-drug", "other")
    expect(other).to_be_visible()
    page.select_option("#id_doses-2-drug", "")
    expect(other).to_be_hidden()
    # The organism appears only for a positive result.
    organism = page.locator("#id_tests-0-organism")
    page.select_option("#id_tests-0-test", index=1)
    page.select_option("#id_tests-0-result", "negative")
    expect(organism).to_be_hidden()
    page.select_option("#id_tests-0-result", "positive")
    expect(organism).to_be_visible()
    page.select_option("#id_tests-0-result", "negative")
    _fits(page, "lumbar puncture at 1366 px")
    page.set_viewport_size({"width": 1024, "height": 900})
    _fits(page, "lumbar puncture at 1024 px")
    _shot(page, f"{'icans' if icans else 'npsle'}-lp-1024")
    page.set_viewport_size({"width": 1366, "height": 900})
    _save(page, "procedures", "Lumbar puncture recorded.")


def _record(page, section: str, button: str, message: str, fill) -> None:
    _open(page, section, button)
    fill()
    _fits(page, button)
    _save(page, section, message)


def test_a_nurse_enters_an_npsle_and_an_icans_patient(nurse_page, people, live_server, tmp_path):
    page = nurse_page
    sign_in(page, "nurse", PASSWORD)

    # --- NPSLE -------------------------------------------------------------------------------------
    patient = _enrol(page, "npsle: IT MTX+DEX in NPSLE", "North Teaching Hospital", "NP-0101", "1992-04-18")
    assert str(patient.birth_date) == "1992-04-18"

    def npsle_diagnosis():
        page.check("#id_syndromes-0-present")
        _type_date(page, "#id_syndromes-0-onset_date", "2026-10-30")
        _code(page, "c3_g_per_l", "ND")

    _record(page, "diagnosis", "Edit diagnosis", "NPSLE diagnosis saved.", npsle_diagnosis)
    expect(page.locator("#section-diagnosis [data-missing-codes]")).to_contain_text("C3 (g/L) — ND")

    def sledai():
        page.locator("#section-diagnosis").get_by_role("button", name="Today").click()
        page.check("#id_seizure")

    _record(page, "diagnosis", "Add SLEDAI-2K", "SLEDAI-2K assessment added.", sledai)

    _lumbar_puncture(page, icans=False)
    expect(page.locator("#section-procedures [data-missing-codes]").first).to_contain_text(
        "Opening pressure (mmH2O) — ND"
    )
    expect(page.locator("#section-procedures")).to_contain_text("Volume (mL) — UNK")

    def therapy():
        page.select_option("#id_category", index=1)
        page.fill("#id_agent", "methylprednisolone")
        page.locator("#section-therapy").get_by_role("button", name="Today: Start date").click()

    _record(page, "therapy", "Add therapy", "Systemic therapy added.", therapy)

    def adverse_event():
        term_other = page.locator("#id_term_other")
        expect(term_other).to_be_hidden()
        page.select_option("#id_ctcae_term", "other")
        expect(term_other).to_be_visible()
        page.fill("#id_term_other", "Back pain at the puncture site")
        page.select_option("#id_grade", "1")
        page.locator("#section-safety").get_by_role("button", name="Today").first.click()
        _code(page, "lab_value", "NA")

    _record(page, "safety", "Add adverse event", "Adverse event added.", adverse_event)

    def discharge():
        page.select_option("#id_outcome", index=1)
        page.locator("#section-outcomes").get_by_role("button", name="Today").click()

    _record(page, "outcomes", "Add discharge", "Discharge outcome added.", discharge)
    _shot(page, "npsle-record")

    lp = LumbarPuncture.objects.get(patient=patient)
    assert lp.opening_pressure_mmh2o is None and lp.missing_codes == {"opening_pressure_mmh2o": "ND"}
    dose = lp.doses.get(drug="methotrexate")
    assert dose.volume_ml is None and dose.missing_codes == {"volume_ml": "UNK"}

    # --- ICANS -------------------------------------------------------------------------------------
    patient = _enrol(page, "icans: IDM for ICANS", "Haematology Centre", "IC-0007", "1970-02-02")

    def infusion():
        page.select_option("#id_underlying_malignancy", index=1)
        page.fill("#id_product", "axicabtagene ciloleucel")
        page.select_option("#id_target", index=1)
        _type_date(page, "#id_infusion_date", "2026-11-02")
        page.fill("#id_dose_1e6_cells_per_kg", "2.0")
        _code(page, "marrow_blasts_pct", "UNK")

    _record(page, "diagnosis", "Add CAR-T infusion", "CAR-T infusion added.", infusion)

    def icans():
        page.locator("#section-diagnosis").get_by_role("button", name="Now").click()
        for item in ("orientation_year", "orientation_month", "naming_object_1"):
            page.check(f"#id_{item}")

    _record(page, "diagnosis", "Add ICANS assessment", "ICANS assessment added.", icans)

    def crs():
        page.locator("#section-diagnosis").get_by_role("button", name="Now").click()
        page.check("#id_fever")

    _record(page, "diagnosis", "Add CRS assessment", "CRS assessment added.", crs)
    _lumbar_puncture(page, icans=True)
    csf = CsfResult.objects.get(lumbar_puncture__patient=patient)
    assert (str(csf.car_t_cells_per_ul), str(csf.il6_pg_per_ml)) == ("12.50", "310.00")
    _shot(page, "icans-record")

    # --- the missing-data code in the export and in the report's cohort flow -----------------------
    page.goto("/")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, "researcher", PASSWORD)
    page.goto("/data/export/")
    page.select_option(
        "#id_study", label=page.locator("#id_study option", has_text="npsle").first.inner_text()
    )
    page.select_option("#id_format", "csv")
    _fits(page, "export")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    archive = zipfile.ZipFile(io.BytesIO(download.value.path().read_bytes()))
    names = archive.namelist()
    lps = next(n for n in names if n.endswith("lumbar_punctures.csv"))
    rows = list(csv.DictReader(io.StringIO(archive.read(lps).decode("utf-8-sig"))))
    assert json.loads(rows[0]["missing_codes"]) == {"opening_pressure_mmh2o": "ND"}
    assert rows[0]["opening_pressure_mmh2o"] == ""
    dictionary = archive.read(next(n for n in names if n.endswith("data_dictionary.csv"))).decode("utf-8-sig")
    assert "Missing-data codes" in dictionary and "ND not done" in dictionary
    # SPSS and Stata: the same code as a labelled user-missing value (SPSS) / extended missing (Stata).
    for kind, expected, label in (("sav", -99994, "ND not done"), ("dta", "d", "ND not done")):
        page.select_option("#id_format", kind)
        with page.expect_download() as download:
            page.get_by_role("button", name="Download").click()
        archive = zipfile.ZipFile(io.BytesIO(download.value.path().read_bytes()))
        member = next(n for n in archive.namelist() if n.endswith(f"lumbar_punctures.{kind}"))
        path = tmp_path / member.rsplit("/", 1)[-1]
        path.write_bytes(archive.read(member))
        reader = pyreadstat.read_sav if kind == "sav" else pyreadstat.read_dta
        frame, meta = reader(str(path), user_missing=True)
        assert frame["opening_pressure_mmh2o"].tolist() == [expected], kind
        assert meta.variable_value_labels["opening_pressure_mmh2o"] == {expected: label}, kind

    page.set_default_timeout(90_000)  # the first view computes the report
    page.goto("/reports/")
    page.locator("#study-npsle").get_by_role("link", name="All patients").click()
    expect(page.locator("body")).to_contain_text("inc_icp missing (1: ND 1)")
    _shot(page, "npsle-report-flow")
    assert CHROMIUM
