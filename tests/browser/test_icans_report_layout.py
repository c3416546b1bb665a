"""A researcher reads the ICANS report on a 1366 px laptop screen: every table fits the page (the
patient listing, then the schedule and dose-intensity table, used to be cut at the right edge) and
the paper's figures are on it."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.replay import load_demo_replayed
from tests.reports.conftest import researcher

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery"  # the factories' default
ICANS_TABLES = (
    "baseline.summary",
    "patients.patients",
    "patients.course",
    "remission.rate",
    "time_to_remission.summary",
    "time_to_remission.incidence",
    "grade_and_ice.paired",
    "trajectories.medians",
    "csf.paired",
    "survival.medians",
    "survival.at_risk",
)


def test_icans_tables_fit_a_1366_px_screen(page, screenshot):
    load_demo_replayed(only=["icans"])
    researcher("li", "haem")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.set_default_timeout(60_000)  # the first view computes the report
    sign_in(page, "li", PASSWORD)
    page.goto("/reports/")
    page.locator("#study-icans").get_by_role("link", name="All patients").click()
    expect(page.locator("#patients")).to_be_visible()
    for key in ICANS_TABLES:
        table = page.locator(f"[id='table-{key}']")
        expect(table).to_be_visible()
        overflow = table.evaluate("t => t.scrollWidth - t.parentElement.clientWidth")
        assert overflow <= 0, f"{key} is {overflow} px wider than its place on the page"
    # Every table of the page, not only those named above (the schedule's too): its last column
    # ends inside its card, and the page itself never scrolls sideways.
    overflowing = page.evaluate(
        """() => [...document.querySelectorAll('main table')]
            .filter(t => t.offsetParent)
            .map(t => [t.id || t.querySelector('th')?.textContent.trim(),
                       t.scrollWidth - t.parentElement.clientWidth,
                       t.querySelector('tr:first-child > :last-child').getBoundingClientRect().right
                         - t.parentElement.getBoundingClientRect().right])
            .filter(([, wider, past]) => wider > 0 || past > 1)"""
    )
    assert not overflowing, f"tables wider than their place: {overflowing}"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator("main table").count() > len(ICANS_TABLES)
    # The schedule table (2 groups × 14 measures; its last five columns were off the card) is shown
    # turned: a row per measure, its last measure and both groups on the card.
    intensity = page.locator("[id='table-doses.intensity']")
    expect(intensity.locator("thead th")).to_have_count(3)
    last = intensity.locator("tbody tr").last
    expect(last).to_contain_text("Median cumulative dexamethasone (mg)")
    assert last.locator("td").last.evaluate(
        "c => c.getBoundingClientRect().right <= c.closest('.table-wrap').getBoundingClientRect().right"
    )
    course = page.locator("[id='table-patients.course']")
    expect(course.locator("tbody tr")).to_have_count(13)
    expect(course).to_contain_text("Yes (7.0)")
    expect(page.locator("[id='table-remission.rate']")).to_contain_text("92.3%")
    expect(page.locator("#trajectories figure svg [id$='panel1-median']")).to_have_count(1)
    screenshot("icans-report")
