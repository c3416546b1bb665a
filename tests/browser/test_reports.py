"""A researcher opens each study's report in a real browser: curves, tables and the patient flow show."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from analytics import plots
from analytics import views as analytics_views
from jobs.models import Job, JobKind, JobStatus
from tests import factories as f
from tests.browser.conftest import sign_in
from tests.replay import load_demo_replayed
from tests.reports.conftest import researcher

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery"  # the factories' default


#: How long the first view of a report may take (it computes the report and draws its figures).
FIRST_VIEW_MS = 60_000


@pytest.mark.parametrize(
    ("code", "section", "curve", "panels"),
    [
        ("npsle", "survival", "km-intrathecal-1", 1),
        ("lm", "survival_by_drug", "km-it_drug-pemetrexed", 2),  # iPFS and OS side by side
        ("icans", "time_to_remission", "cif-event", 1),
    ],
)
def test_a_researcher_reads_a_study_report(page, screenshot, code, section, curve, panels):
    load_demo_replayed(only=[code], patients=80)
    researcher("zhang", "north", "south", "chest", "haem")
    page.set_default_timeout(FIRST_VIEW_MS)  # the first view computes the report
    sign_in(page, "zhang", PASSWORD)
    page.goto("/reports/")
    page.locator(f"#study-{code}").get_by_role("link", name="All patients").click()

    expect(page.locator("h1")).to_be_visible()
    expect(page.locator("#flow .flow-steps li").first).to_be_visible()
    plot = page.locator(f"#{section} figure svg").first
    # The figure is drawn when the page first asks for it: allow it the first view's time too (the
    # assertions' own default, 5 s, ran out once under a full suite on a slow machine).
    expect(plot).to_be_visible(timeout=FIRST_VIEW_MS)
    assert plot.locator(f"[id$='{curve}']").count() == panels
    table = page.locator(f"#{section} table.report-table").first
    expect(table).to_be_visible()
    assert table.locator("tbody tr").count() >= 1
    assert page.locator(".status-error").count() == 0
    # every figure not drawn yet was drawn when the page asked for it, and put in its place
    expect(page.locator(".figure-pending")).to_have_count(0, timeout=FIRST_VIEW_MS)
    shown = page.locator(
        "figure.report-figure:has(svg), figure.report-figure:has(img[data-testid=figure-by-url])"
    )
    assert shown.count() == page.locator("figure.report-figure").count()
    screenshot(code)


def test_a_job_page_follows_its_job_until_it_ends(page):
    """The progress box asks for the job's state every second (htmx) and shows its end unasked."""
    user = f.UserFactory(username="zhang")
    job = Job.objects.create(kind=JobKind.REPORT_RUN, requested_by=user, title="npsle · All patients")
    sign_in(page, "zhang", PASSWORD)
    page.goto(f"/jobs/{job.pk}/")
    expect(page.locator(".job-progress[data-status='queued']")).to_be_visible()
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.SUCCEEDED,
        finished_at=timezone.now(),
        result={"url": "/reports/", "link_text": "Open the report"},
    )
    done = page.locator(".job-progress[data-status='succeeded']")
    expect(done).to_be_visible(timeout=10_000)
    expect(done.get_by_role("link", name="Open the report")).to_be_visible()


def test_a_figure_whose_request_fails_says_so_in_its_place(page, monkeypatch):
    """A figure request the server answers with an error: the message beside it, and the placeholder
    no longer says the figure is being drawn."""

    def broken(run, key):
        raise RuntimeError("the figure store is down")

    monkeypatch.setattr(analytics_views, "figure_svg", broken)
    call_command("load_demo", only=["npsle"], patients=40, stdout=StringIO())
    researcher("zhang", "north", "south")
    page.set_default_timeout(60_000)
    sign_in(page, "zhang", PASSWORD)
    with plots.drawn.fresh():  # every figure is left to be drawn by its own request
        page.goto("/reports/")
        page.locator("#study-npsle").get_by_role("link", name="All patients").click()
        first = page.locator("#figure-survival\\.km")
        expect(first.locator(".request-error")).to_contain_text("500")
        expect(first.locator(".figure-pending")).to_have_text(
            "The figure is not shown: reload the page to try again."
        )
