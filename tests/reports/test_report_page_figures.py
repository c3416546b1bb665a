"""A report's figures are drawn when first shown, not while its numbers are computed; the page puts
each in place as it is drawn, and serves a stored run's figures by URL only to viewers of the run's
own site scope."""

from __future__ import annotations

import pickle
import re

import pytest
from django.urls import resolve, reverse

from accounts.models import User
from analytics import plots
from analytics.models import ReportFigure, ReportRun
from analytics.reports import display
from analytics.reports.base import Cohort
from analytics.reports.definitions import default_definition
from analytics.reports.figures import PLOTS_VERSION, SALT, figure_svg, run_figures, signed_call
from analytics.reports.runner import report_class, report_dataset, report_run
from audit.models import SecurityEvent, SecurityEventKind
from registry.models import Patient
from tests.reports.conftest import PENDING_FIGURE, researcher

pytestmark = pytest.mark.django_db


@pytest.fixture
def cold(demo):
    """The LM report computed now, with no figure drawn lately in this process (as in a new worker)."""
    ReportRun.objects.all().delete()
    with plots.drawn.fresh():
        yield demo["lm"]


def test_a_run_stores_its_numbers_and_leaves_its_figures_to_be_drawn(cold):
    run, cached = report_run(study=cold, filters={}, options={})
    assert not cached
    keys = {f["key"] for s in run.numbers["sections"] for f in s["figures"]}
    stored = {figure.key: figure for figure in ReportFigure.objects.filter(run=run)}
    assert set(stored) == keys and len(keys) >= 5
    assert all(figure.svg == "" and figure.call for figure in stored.values()), "nothing drawn yet"

    svg = figure_svg(run, "swimmer.swimmer")
    assert svg.startswith("<svg") and 'id="swimmer-swimmer-' in svg
    drawn = ReportFigure.objects.get(run=run, key="swimmer.swimmer")
    assert (drawn.svg, drawn.call) == (svg, ""), "stored in place of its call"
    assert figure_svg(run, "swimmer.swimmer") == svg
    assert figure_svg(run, "no.such") is None


@pytest.mark.parametrize("code", ["lm", "npsle", "icans"])
def test_a_figure_drawn_later_is_the_figure_drawn_at_once(demo, code):
    """Drawing from the stored call gives the bytes the report draws when it does not defer."""
    study = demo[code]
    ReportRun.objects.all().delete()
    with plots.drawn.fresh():
        run, _ = report_run(study=study, filters={}, options={})
        frame = report_dataset(study=study, filters={})
        cohort = Cohort.from_dataset(frame, patients=Patient.objects.filter(study=study), filters=run.filters)
        at_once = report_class(study)(cohort, run.options).run()
        assert all(isinstance(svg, str) for svg in at_once.figures().values())
        assert run_figures(run, draw=True) == at_once.figures()


def test_a_figure_drawn_lately_is_stored_drawn(demo):
    ReportRun.objects.all().delete()
    run, _ = report_run(study=demo["lm"], filters={}, options={})
    run_figures(run, draw=True)  # now in this process's memo
    ReportRun.objects.all().delete()
    again, _ = report_run(study=demo["lm"], filters={}, options={})
    assert not ReportFigure.objects.filter(run=again, svg="").exists()


def test_the_page_draws_each_figure_when_the_browser_asks_for_it(client, cold):
    definition = default_definition(cold)
    client.force_login(researcher("chest-researcher", "chest"))
    page = client.get(reverse("reports:detail", args=[definition.pk])).content.decode()
    pending = PENDING_FIGURE.findall(page)
    run = ReportRun.objects.get()
    assert len(pending) == ReportFigure.objects.filter(run=run).count() and "<svg" not in page
    assert 'hx-trigger="load"' in page and "<noscript><img" in page, "without scripts, the image"

    fragment = client.get(pending[0])
    assert fragment.status_code == 200 and fragment.content.decode().startswith("<svg")
    assert "immutable" in fragment["Cache-Control"]
    again = client.get(reverse("reports:detail", args=[definition.pk])).content.decode()
    assert again.count("<svg") == 1 and len(PENDING_FIGURE.findall(again)) == len(pending) - 1


def _pending_urls(client, study) -> dict[str, str]:
    """The report page's figures not drawn yet, by key: the URL htmx asks each of."""
    user = User.objects.filter(username="chest-researcher").first() or researcher("chest-researcher", "chest")
    client.force_login(user)
    page = client.get(reverse("reports:detail", args=[default_definition(study).pk])).content.decode()
    return {url.split("/figures/")[1].removesuffix("/inline"): url for url in PENDING_FIGURE.findall(page)}


def test_a_figure_call_changed_in_the_database_is_never_run(client, cold, caplog):
    urls = _pending_urls(client, cold)
    figure = ReportFigure.objects.filter(svg="").first()
    forged = figure.call[:-3] + ("AAA" if not figure.call.endswith("AAA") else "BBB")
    ReportFigure.objects.filter(pk=figure.pk).update(call=forged)
    fragment = client.get(urls[figure.key])
    assert (
        fragment.status_code == 200 and "opening its page again computes it anew" in fragment.content.decode()
    )
    assert f"report figure {figure.key} of run {figure.run_id} cannot be drawn by this code" in caplog.text
    assert not ReportRun.objects.filter(pk=figure.run_id).exists(), (
        "deleted, so the next view computes it again"
    )
    _pending_urls(client, cold)
    assert ReportRun.objects.exclude(pk=figure.run_id).count() == 1


def test_a_call_stored_by_other_plotting_code_is_computed_again(client, cold, caplog):
    """A call this code cannot take back (here: a plot since renamed), even correctly signed."""
    urls = _pending_urls(client, cold)
    figure = ReportFigure.objects.filter(svg="").first()
    gone = signed_call(pickle.dumps(("renamed_plot", (figure.key,), []), protocol=5))
    ReportFigure.objects.filter(pk=figure.pk).update(call=gone)
    assert "opening its page again computes it anew" in client.get(urls[figure.key]).content.decode()
    assert "KeyError: 'renamed_plot'" in caplog.text
    assert not ReportRun.objects.filter(pk=figure.run_id).exists()
    assert PLOTS_VERSION in SALT, "a call is signed under the plotting code's version"


def test_downloads_of_a_run_this_code_cannot_draw_say_so_and_the_run_is_computed_again(client, cold):
    _pending_urls(client, cold)
    figure = ReportFigure.objects.filter(svg="").first()
    ReportFigure.objects.filter(pk=figure.pk).update(call=figure.call[:-3] + "AAA")
    definition = default_definition(cold)
    refused = client.get(reverse("reports:html", args=[definition.pk]), follow=True)
    assert refused.redirect_chain[0][0].startswith(definition.get_absolute_url())
    assert (
        "opening its page again computes it anew. Download it once it is shown." in refused.content.decode()
    )
    assert not ReportRun.objects.filter(pk=figure.run_id).exists()
    assert not SecurityEvent.objects.filter(kind=SecurityEventKind.EXPORT).exists(), "nothing was taken"
    html = client.get(reverse("reports:html", args=[definition.pk]))
    assert html.status_code == 200 and "<svg" in html.content.decode(), "computed again, every figure drawn"


def test_a_figure_whose_drawing_fails_is_a_note_and_the_rest_stands(client, cold, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ValueError("a bug in the swimmer plot")

    monkeypatch.setitem(plots.PLOTS, "swimmer_plot", broken)
    urls = _pending_urls(client, cold)
    fragment = client.get(urls["swimmer.swimmer"])
    assert fragment.status_code == 200 and "could not be drawn" in fragment.content.decode()
    assert "immutable" not in fragment.get("Cache-Control", ""), "drawn again when asked again"
    assert "a bug in the swimmer plot" in caplog.text
    definition = default_definition(cold)
    html = client.get(reverse("reports:html", args=[definition.pk])).content.decode()
    assert "could not be drawn" in html and html.count("<svg") == len(urls) - 1
    run = ReportRun.objects.get()
    assert ReportFigure.objects.get(run=run, key="swimmer.swimmer").svg == "", "the run stands"
    image = client.get(reverse("reports:run_figure", args=[definition.pk, run.pk, "swimmer.swimmer"]))
    assert image.status_code == 500


def test_large_figures_are_images_served_by_url_to_the_runs_own_viewers(client, demo, monkeypatch):
    monkeypatch.setattr(display, "INLINE_SVG_MAX_BYTES", 0)  # every figure counts as large
    definition = default_definition(demo["lm"])
    client.force_login(researcher("chest-researcher", "chest"))
    client.get(reverse("reports:detail", args=[definition.pk]))
    run_figures(ReportRun.objects.get(study=demo["lm"]), draw=True)
    page = client.get(reverse("reports:detail", args=[definition.pk])).content.decode()
    urls = re.findall(
        r'<img alt="[^"]*" src="([^"]+\.svg)" loading="lazy" data-testid="figure-by-url">', page
    )
    assert urls and "<svg" not in page, "no figure is inlined"
    figure = client.get(urls[0])
    assert figure.status_code == 200 and figure["Content-Type"] == "image/svg+xml"
    assert "<svg" in figure.content.decode() and "immutable" in figure["Cache-Control"]

    client.force_login(researcher("other-scope", "chest", "haem"))
    assert client.get(urls[0]).status_code == 404, "another site scope never sees this run's figures"
    inline = urls[0].removesuffix(".svg") + "/inline"
    assert client.get(inline).status_code == 404, "nor draws them"


@pytest.mark.parametrize(
    "name", ["reports:figure", "reports:run_figure", "reports:run_figure_inline", "reports:pdf"]
)
def test_views_that_draw_figures_hold_no_request_transaction(name):
    """Drawing is slow, and on SQLite two requests that read and then store a figure in one
    transaction each are refused at once ("database is locked"): seen under `make run`."""
    kwargs = {"pk": 1} | ({"key": "survival.km"} if "figure" in name else {})
    kwargs |= {"run_pk": 1} if name.startswith("reports:run_") else {}
    view = resolve(reverse(name, kwargs=kwargs)).func
    assert "default" in getattr(view, "_non_atomic_requests", set())
