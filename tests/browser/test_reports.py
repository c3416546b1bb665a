"""A researcher opens each study's report in a real browser: curves, tables and the patient flow show."""

from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.reports.conftest import researcher

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery"  # the factories' default


@pytest.mark.parametrize(
    ("code", "section", "curve", "panels"),
    [
        ("npsle", "survival", "km-intrathecal-1", 1),
        ("lm", "survival_by_drug", "km-it_drug-pemetrexed", 2),  # iPFS and OS side by side
        ("icans", "time_to_remission", "cif-event", 1),
    ],
)
def test_a_researcher_reads_a_study_report(page, screenshot, code, section, curve, panels):
    call_command("load_demo", only=[code], patients=80, stdout=StringIO())
    researcher("zhang", "north", "south", "chest", "haem")
    page.set_default_timeout(60_000)  # the first view computes the report
    sign_in(page, "zhang", PASSWORD)
    page.goto("/reports/")
    page.locator(f"#study-{code}").get_by_role("link", name="All patients").click()

    expect(page.locator("h1")).to_be_visible()
    expect(page.locator("#flow .flow-steps li").first).to_be_visible()
    plot = page.locator(f"#{section} figure svg").first
    expect(plot).to_be_visible()
    assert plot.locator(f"[id$='{curve}']").count() == panels
    table = page.locator(f"#{section} table.report-table").first
    expect(table).to_be_visible()
    assert table.locator("tbody tr").count() >= 1
    assert page.locator(".status-error").count() == 0
    screenshot(code)
