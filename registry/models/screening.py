"""The screening log: how many patients each step of a study's screening counted, per site and period.

Excluded candidates never become patients of the registry (they hold no case record), so the log
keeps counts, not people: the admissions a search covered, the possible cases it identified, and
those excluded after record review, by reason. The study's flow diagram (the NPSLE paper's Fig. 1)
is drawn from these rows and the registry's own patients.
"""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from accounts.models import Site

from ..choices import ExclusionReason, ScreeningStep
from .base import RegistryRecord
from .studies import Study


class ScreeningLogEntry(RegistryRecord):
    """One step of a study's screening at one site over one period, with the patients it counted."""

    site_lookup = "site"

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="screening_log")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="screening_log")
    period_start = models.DateField("admissions from")
    period_end = models.DateField("admissions to")
    step = models.CharField(max_length=16, choices=ScreeningStep.choices)
    exclusion_reason = models.CharField(
        max_length=32,
        choices=ExclusionReason.choices,
        blank=True,
        help_text="Required for excluded patients, empty for the other steps.",
    )
    patients = models.PositiveIntegerField("number of patients")
    search = models.CharField(
        "search or criterion",
        max_length=200,
        blank=True,
        help_text="What this step searched or checked, e.g. the keywords of a records search.",
    )
    note = models.TextField(blank=True)

    class Meta:
        verbose_name = "screening log entry"
        verbose_name_plural = "screening log entries"
        ordering = ["study", "site", "period_start", "step", "exclusion_reason"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(step=ScreeningStep.EXCLUDED) & ~Q(exclusion_reason=""))
                | (~Q(step=ScreeningStep.EXCLUDED) & Q(exclusion_reason="")),
                name="screening_reason_only_for_exclusions",
                violation_error_message="Give a reason for excluded patients, and none for the other steps.",
            ),
            models.CheckConstraint(
                condition=Q(period_end__gte=F("period_start")),
                name="screening_period_in_order",
                violation_error_message="The period must not end before it starts.",
            ),
            models.UniqueConstraint(
                fields=["study", "site", "period_start", "period_end", "step", "exclusion_reason"],
                name="screening_step_once_per_period",
                violation_error_message="This step (and reason) is already logged for this site and period.",
            ),
        ]

    def __str__(self) -> str:
        reason = f" ({self.get_exclusion_reason_display()})" if self.exclusion_reason else ""
        return f"{self.study.code} · {self.site.code} · {self.get_step_display()}{reason}: {self.patients}"

    def clean(self) -> None:
        if self.study_id and self.site_id and not self.study.sites.filter(pk=self.site_id).exists():
            raise ValidationError({"site": "This site does not take part in the study."})
