"""Report pages and downloads: thin views over the access layer, the report runner and the exports.

Reports are for users who may run reports at one site or more (and superusers): anyone else gets
403 at /reports/. Like every record in the registry, a report definition of a study the user
cannot report on is "not found" (404), before anything else is said about the request, so its
existence does not leak. Every page and download computes (or reuses from the cache) the run for
the filters in its query string, scoped to the user's sites, so a download matches its page.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    HttpResponseServerError,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from accounts.access import Capability, has_capability, sites_with
from accounts.models import User
from analytics import exports
from analytics.datasets import data_dictionary
from analytics.deidentify import DateHandling, deidentified_dataset, deidentified_dictionary
from analytics.errors import AnalysisError
from analytics.forms import ReportFilterForm, SaveDefinitionForm
from analytics.models import ReportDefinition, ReportRun
from analytics.reports.base import OptionError
from analytics.reports.definitions import report_definition_create
from analytics.reports.display import PAGE_PREFIX, DisplayFigure, display_report
from analytics.reports.figures import FigureLost, figure_svg
from analytics.reports.runner import (
    RunPlan,
    cached_run,
    report_class,
    report_dataset,
    report_plan,
    report_run,
    visible_site_ids,
)
from audit.models import SecurityEventKind
from audit.services import security_event_record
from jobs.models import Job, JobKind, JobStatus
from jobs.progress import progress_of
from jobs.services import background_enabled, job_start
from jobs.views import POLL_MS
from registry.models import Study


def _reportable_studies(user) -> QuerySet[Study]:
    return Study.objects.filter(sites__in=sites_with(user, Capability.RUN_REPORTS)).distinct()


def _definition(request: HttpRequest, pk: int) -> ReportDefinition:
    return get_object_or_404(
        ReportDefinition.objects.select_related("study"), pk=pk, study__in=_reportable_studies(request.user)
    )


@dataclass
class _Requested:
    """What a report page's query asks for: the filter form and, when it is valid, filters and options."""

    form: ReportFilterForm
    filters: dict[str, Any] | None = None
    options: dict[str, str] | None = None
    problem: str = ""


def _requested(request: HttpRequest, definition: ReportDefinition) -> _Requested:
    """The definition's filters, or (with ``apply`` in the query) the filters the person chose."""
    study = definition.study
    kwargs: dict[str, Any] = {
        "study": study,
        "sites": sites_with(request.user, Capability.RUN_REPORTS).filter(studies=study),
        "report": report_class(study),
    }
    if "apply" not in request.GET:
        initial = ReportFilterForm.initial_for(definition.filters, definition.options)
        return _Requested(ReportFilterForm(initial=initial, **kwargs), definition.filters, definition.options)
    form = ReportFilterForm(request.GET, **kwargs)
    if not form.is_valid():
        return _Requested(form, problem="Correct the filter to run the report.")
    return _Requested(form, form.filters, form.options)


@dataclass
class _Outcome:
    """A request's report: the run (cached or just computed), the job computing it, or why neither."""

    run: ReportRun | None = None
    cached: bool = False
    job: Job | None = None
    problem: str = ""


def _report_job(request: HttpRequest, definition: ReportDefinition, plan: RunPlan) -> Job:
    """The job computing this run for this person: the one already under way, or a new one."""
    pending = Job.objects.filter(
        kind=JobKind.REPORT_RUN,
        requested_by=cast(User, request.user),  # the pages are behind login_required
        status__in=[JobStatus.QUEUED, JobStatus.RUNNING],
        parameters__cache_key=plan.cache_key,
    ).first()
    if pending is not None:
        return pending
    return job_start(
        kind=JobKind.REPORT_RUN,
        title=f"{definition.study.code} · {definition.name}",
        requested_by=request.user,
        parameters={
            "study": definition.study.pk,
            "viewer": request.user.pk,
            "filters": plan.filters,
            "options": plan.options,
            "cache_key": plan.cache_key,
            "return_url": request.get_full_path(),
        },
    )


def _run(request: HttpRequest, definition: ReportDefinition, requested: _Requested) -> _Outcome:
    """The cached run for the request; else the run computed now, or (with a worker) the job computing it."""
    if requested.problem:
        return _Outcome(problem=requested.problem)
    try:
        plan = report_plan(
            study=definition.study,
            filters=requested.filters or {},
            options=requested.options or {},
            viewer=request.user,
        )
        cached = cached_run(plan)
        if cached is not None:
            return _Outcome(run=cached, cached=True)
        if background_enabled():
            return _Outcome(job=_report_job(request, definition, plan))
        run, cached_now = report_run(
            study=definition.study, filters=plan.filters, options=plan.options, viewer=request.user
        )
    except (AnalysisError, OptionError) as exc:
        return _Outcome(problem=f"This report cannot be run with these settings: {exc}.")
    return _Outcome(run=run, cached=cached_now)


@login_required
@require_GET
def report_index(request: HttpRequest) -> HttpResponse:
    if not has_capability(request.user, Capability.RUN_REPORTS):
        raise PermissionDenied("Cohort reports are for researchers.")
    studies = _reportable_studies(request.user).prefetch_related(
        Prefetch("report_definitions", queryset=ReportDefinition.objects.select_related("created_by"))
    )
    return render(request, "reports/index.html", {"studies": studies})


def _table_pages(request: HttpRequest) -> dict[str, int]:
    """The page of each long table asked for (``rows-<table key>=N``); anything else shows page 1."""
    asked = {name: request.GET.get(name, "") for name in request.GET if name.startswith(PAGE_PREFIX)}
    return {
        name.removeprefix(PAGE_PREFIX): int(value)
        for name, value in asked.items()
        if re.fullmatch(r"[0-9]{1,9}", value)
    }


@login_required
@require_GET
def report_detail(request: HttpRequest, pk: int) -> HttpResponse:
    definition = _definition(request, pk)
    requested = _requested(request, definition)
    outcome = _run(request, definition, requested)
    context = {
        "definition": definition,
        "form": requested.form,
        "save_form": SaveDefinitionForm(study=definition.study),
        "problem": outcome.problem,
        "cached": outcome.cached,
        "job": outcome.job,
        "progress": progress_of(outcome.job.pk) if outcome.job else None,
        "poll_ms": POLL_MS,
        "report": display_report(
            outcome.run, report_class(definition.study), pages=_table_pages(request), draw=False
        )
        if outcome.run
        else None,
        "run_pk": outcome.run.pk if outcome.run else None,
        "query": request.GET.urlencode(),
        "dictionary": data_dictionary(definition.study),
    }
    return render(request, "reports/detail.html", context)


@login_required
def report_save(request: HttpRequest, pk: int) -> HttpResponse:
    """Save the filters of the page (its query string) under a new name (POST only)."""
    definition = _definition(request, pk)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    requested = _requested(request, definition)
    save_form = SaveDefinitionForm(request.POST, study=definition.study)
    back = f"{definition.get_absolute_url()}?{request.GET.urlencode()}"
    if requested.problem or not save_form.is_valid():
        errors = [requested.problem] if requested.problem else []
        errors += [str(message) for field in save_form.errors.values() for message in field]
        messages.error(request, " ".join(errors))
        return redirect(back)
    assert requested.filters is not None and requested.options is not None  # no problem: both were read
    try:
        saved = report_definition_create(
            study=definition.study,
            name=save_form.cleaned_data["name"],
            filters=requested.filters,
            options=report_class(definition.study).resolve_options(requested.options),
            created_by=request.user,
        )
    except (ValidationError, OptionError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        return redirect(back)
    messages.success(request, f"Saved as the report “{saved.name}”.")
    return redirect(saved)


def _attachment(content: str | bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _run_or_404(request: HttpRequest, definition: ReportDefinition) -> ReportRun:
    """The run a download is of. A download is offered on a computed report; if the data changed
    since, the job computing the new run is started and the download says to wait for it."""
    outcome = _run(request, definition, _requested(request, definition))
    if outcome.run is None:
        raise Http404(
            outcome.problem or "The report is being computed again; open it and download once it is ready."
        )
    return outcome.run


#: The views that may draw figures run without the request's transaction (ATOMIC_REQUESTS): drawing
#: takes 0.1-0.3 s a figure, too long to hold one open, and on SQLite two requests that read and then
#: store a figure in one transaction each were refused at once ("database is locked": neither may
#: take the write lock while the other holds its read lock), seen when the page asked for its
#: figures in parallel under `make run`. Each store is one UPDATE of its own (figures.figure_svg).
figures_drawn_outside_a_transaction = transaction.non_atomic_requests


def _figure_or_404(run: ReportRun, key: str) -> str:
    """The figure's SVG, drawn now if this is the first time it is shown; '' if drawing it failed."""
    try:
        svg = figure_svg(run, key)
    except FigureLost:
        raise Http404(DisplayFigure.LOST) from None
    if svg is None:
        raise Http404("No such figure in this report.")
    return svg


def _figure_failed() -> HttpResponse:
    """An image URL whose figure could not be drawn (logged in ``figures._draw``)."""
    return HttpResponseServerError(DisplayFigure.FAILED, content_type="text/plain")


@figures_drawn_outside_a_transaction
@login_required
@require_GET
def report_figure(request: HttpRequest, pk: int, key: str) -> HttpResponse:
    definition = _definition(request, pk)
    svg = _figure_or_404(_run_or_404(request, definition), key)
    if not svg:
        return _figure_failed()
    return _attachment(
        exports.svg_document(svg), "image/svg+xml", f"{definition.study.code}-{slugify(key)}.svg"
    )


def _viewers_run(request: HttpRequest, definition: ReportDefinition, run_pk: int) -> ReportRun:
    """A stored run of the definition's study, only for a viewer whose site scope is the run's own."""
    run = get_object_or_404(ReportRun.objects.only("site_ids"), pk=run_pk, study=definition.study)
    if run.site_ids != visible_site_ids(request.user):
        raise Http404("No such figure in this report.")
    return run


def _immutable(response: HttpResponse) -> HttpResponse:
    """A stored run's figure never changes: the browser may keep it."""
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response


@figures_drawn_outside_a_transaction
@login_required
@require_GET
def run_figure(request: HttpRequest, pk: int, run_pk: int, key: str) -> HttpResponse:
    """One figure of a stored run, as an image (a large figure, or the page without scripts)."""
    definition = _definition(request, pk)
    svg = _figure_or_404(_viewers_run(request, definition, run_pk), key)
    if not svg:
        return _figure_failed()
    return _immutable(HttpResponse(exports.svg_document(svg), content_type="image/svg+xml"))


@figures_drawn_outside_a_transaction
@login_required
@require_GET
def run_figure_inline(request: HttpRequest, pk: int, run_pk: int, key: str) -> HttpResponse:
    """A figure the report page shows before it is drawn: drawn now, as the page would have shown
    it (inline SVG, or an image for a large one), for htmx to put in its place."""
    definition = _definition(request, pk)
    try:
        svg = figure_svg(_viewers_run(request, definition, run_pk), key)
    except FigureLost:  # said in the figure's place (its run is gone: a reload computes it again)
        svg, problem = "", DisplayFigure.LOST
    else:
        if svg is None:
            raise Http404("No such figure in this report.")
        problem = "" if svg else DisplayFigure.FAILED
    figure = DisplayFigure(key, "", "", svg, problem=problem)
    response = render(
        request, "reports/_figure_body.html", {"figure": figure, "definition": definition, "run_pk": run_pk}
    )
    return response if problem else _immutable(response)


def _log_export(request: HttpRequest, definition: ReportDefinition, what: str, rows: int) -> None:
    """Every download of registry data is a security event: who took what, when."""
    security_event_record(
        SecurityEventKind.EXPORT,
        request=request,
        detail={"what": what, "study": definition.study.code, "definition": definition.pk, "rows": rows},
    )


@figures_drawn_outside_a_transaction
@login_required
@require_GET
def report_download(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    """The report as self-contained HTML, PDF, an XLSX workbook of every table, or JSON numbers."""
    definition = _definition(request, pk)
    run = _run_or_404(request, definition)
    name = f"{definition.study.code} · {definition.name}"
    stem = f"{definition.study.code}-{slugify(definition.name)}-{run.computed_at:%Y%m%d-%H%M}"
    made: dict[str, Callable[[], tuple[str | bytes, str]]] = {
        "html": lambda: (exports.report_html(run, name=name), "text/html; charset=utf-8"),
        "pdf": lambda: (exports.report_pdf(run, name=name), "application/pdf"),
        "xlsx": lambda: (exports.report_xlsx(run, name=name), exports.XLSX_TYPE),
        "json": lambda: (exports.report_json(run), "application/json"),
    }
    try:
        content, content_type = made[fmt]()  # the HTML and the PDF draw any figure not drawn yet
    except FigureLost:  # its run is deleted: the page computes it again, then the download works
        messages.error(request, f"{DisplayFigure.LOST} Download it once it is shown.")
        return redirect(f"{definition.get_absolute_url()}?{request.GET.urlencode()}")
    # Logged once the file is made: its own transaction, since this view has none (it may draw).
    _log_export(request, definition, f"report ({fmt})", run.n_records)
    return _attachment(content, content_type, f"{stem}.{fmt}")


@login_required
@require_GET
def dataset_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The report cohort's analysis dataset, de-identified like a study export, with its data dictionary.

    ``?dates=days`` gives days from the index admission instead of shifted dates (the default).
    """
    definition = _definition(request, pk)
    requested = _requested(request, definition)
    if requested.problem:
        raise Http404(requested.problem)
    assert requested.filters is not None  # no problem: the filters were read
    try:
        dates = DateHandling(request.GET.get("dates", DateHandling.SHIFT))
    except ValueError:
        dates = None
    if dates not in (DateHandling.SHIFT, DateHandling.DAYS):
        return HttpResponseBadRequest("dates: choose shift or days.")
    try:
        frame = report_dataset(study=definition.study, filters=requested.filters, viewer=request.user)
    except AnalysisError as exc:
        raise Http404(str(exc)) from None
    dictionary = deidentified_dictionary(data_dictionary(definition.study), dates=dates)
    content = exports.dataset_zip(deidentified_dataset(frame, dates=dates), dictionary)
    _log_export(request, definition, f"analysis dataset (de-identified, dates {dates})", len(frame))
    return _attachment(
        content, "application/zip", f"{definition.study.code}-{slugify(definition.name)}-dataset.zip"
    )
