"""Saved report definitions and the cached runs of the cohort reports."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from registry.models import Study


class ReportDefinition(models.Model):
    """A saved, re-runnable report: a study, its cohort filters and options (e.g. Cox ties).

    Every study has one default definition (all patients, the report's default options), created
    with the study; researchers save filtered views as further definitions.
    """

    name = models.CharField(max_length=200)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="report_definitions")
    description = models.TextField(blank=True)
    filters = models.JSONField(
        default=dict,
        blank=True,
        help_text="Cohort filters in the stored form the README describes under 'Cohort reports'.",
    )
    options = models.JSONField(
        default=dict, blank=True, help_text='Report options, e.g. {"ties": "breslow"}.'
    )
    is_default = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="report_definitions",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["study__code", "-is_default", "name"]
        constraints = [
            models.UniqueConstraint(fields=["study", "name"], name="report_definition_name_unique_per_study"),
            models.UniqueConstraint(
                fields=["study"], condition=Q(is_default=True), name="report_definition_one_default_per_study"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study.code}: {self.name}"

    def get_absolute_url(self) -> str:
        return reverse("reports:detail", args=[self.pk])

    def filter_phrases(self) -> list[str]:
        """The cohort filter in words, e.g. ["Age at index ≥ 18", "Site: north"]."""
        # Imported here: the dataset builder loads pandas, which model loading should not.
        from analytics.datasets import data_dictionary
        from analytics.reports.filters import describe

        labels = {variable.name: variable.label for variable in data_dictionary(self.study)}
        return describe(self.filters, labels)


class ReportRun(models.Model):
    """A computed report, cached for one set of inputs and one state of the registry.

    ``cache_key`` hashes the study, filters, options, the sites whose patients were visible and
    the fingerprint of the data it read (the data-version tokens of that study and those sites,
    ``analytics.reports.invalidation``), so a write to one of its records makes the next view
    compute a new run; ``scope_key`` is the same without the fingerprint, and a new run replaces
    the older runs of its scope.
    """

    cache_key = models.CharField(max_length=64, unique=True)
    scope_key = models.CharField(max_length=64, db_index=True)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="report_runs")
    filters = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)
    site_ids = models.JSONField(
        null=True,
        blank=True,
        help_text="Ids of the sites whose patients were visible; empty means every site.",
    )
    fingerprint = models.TextField(
        help_text="Data-version tokens of the study and sites the run read, when computed."
    )
    numbers = models.JSONField(
        help_text="The report's numbers (schema in the README under 'Cohort reports')."
    )
    n_screened = models.PositiveIntegerField()
    n_records = models.PositiveIntegerField(help_text="Patients in the report cohort after the filters.")
    computed_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-computed_at"]

    def __str__(self) -> str:
        return f"{self.study.code} report of {self.computed_at:%Y-%m-%d %H:%M} ({self.n_records} patients)"


class ReportFigure(models.Model):
    """One figure of a run: its SVG once drawn, and until then the signed plot call that draws it.

    A run stores its numbers as soon as they are computed; drawing the figures (most of a cold
    report's time) waits until a page, a download or an export first asks for them
    (``analytics.reports.figures``). A figure the process had drawn lately is stored drawn.
    """

    run = models.ForeignKey(ReportRun, on_delete=models.CASCADE, related_name="figure_set")
    key = models.CharField(max_length=200, help_text="<section>.<figure>, as in the run's numbers.")
    svg = models.TextField(blank=True, help_text="Empty until the figure is drawn.")
    call = models.TextField(
        blank=True,
        editable=False,
        help_text="The plot call, pickled, compressed and signed; emptied once drawn.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="report_figure_key_unique_per_run")
        ]

    def __str__(self) -> str:
        return f"{self.key} of run {self.run_id}"
