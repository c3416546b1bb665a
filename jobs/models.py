"""A long piece of work run off the request: a report run, a large import, an export, a quality sweep.

The row is the job's one record of state (queued, running, finished, failed) and of who asked for it.
How far a running job has got lives in the cache (jobs.progress), so a job that works inside one
long transaction (an import is all or nothing) can still be watched from another connection.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class JobKind(models.TextChoices):
    REPORT_RUN = "report_run", "Cohort report"
    IMPORT = "import", "Import"
    EXPORT = "export", "Export"
    QUALITY_SWEEP = "quality_sweep", "Data-quality sweep"
    #: Only registered by the test suite (a job that sleeps or fails on request).
    PROBE = "probe", "Probe (tests)"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Finished"
    FAILED = "failed", "Failed"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED)


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=JobKind.choices)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    title = models.CharField(max_length=200, help_text="What the person asked for, in their words.")
    parameters = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="What the job made: a URL, counts.")
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["requested_by", "-created_at"], name="job_by_person_recent")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title} ({self.get_status_display().lower()})"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED
