"""The report run as a background job (registered in AnalyticsConfig.ready)."""

from __future__ import annotations

from typing import Any

from accounts.models import User
from jobs.models import Job, JobKind
from jobs.progress import Reporter
from jobs.runners import register
from registry.models import Study


@register(JobKind.REPORT_RUN)
def run_report(job: Job, report: Reporter) -> dict[str, Any]:
    """Compute (or find cached) the run the page asked for, as the person who asked, then send them back."""
    # Imported when a report runs: the report code loads pandas, matplotlib and lifelines (2.5 s),
    # which every process starting Django (each command, web and worker process) would pay otherwise.
    from .reports.runner import report_run

    parameters = job.parameters
    viewer = User.objects.get(pk=parameters["viewer"]) if parameters.get("viewer") else None

    def progress(done: int, total: int, title: str) -> None:
        report(100 * done / max(total, 1), title)

    run, _ = report_run(
        study=Study.objects.get(pk=parameters["study"]),
        filters=parameters["filters"],
        options=parameters["options"],
        viewer=viewer,
        progress=progress,
    )
    return {"url": parameters["return_url"], "link_text": "Open the report", "redirect": True, "run": run.pk}
