"""Each import is one audited batch: who, when, which file (its SHA-256), what it did."""

from django.conf import settings
from django.db import models

from accounts.models import Site
from registry.models import Study


class ImportStatus(models.TextChoices):
    RUNNING = "running", "Running"
    DRY_RUN = "dry_run", "Dry run (nothing written)"
    APPLIED = "applied", "Applied"
    REFUSED = "refused", "Refused: errors, nothing written"
    INTERRUPTED = "interrupted", "Interrupted: the import stopped before it finished, nothing written"


class ImportBatch(models.Model):
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="imports")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT, related_name="imports")
    file_name = models.CharField(max_length=300)
    stored_file = models.FileField(
        upload_to="imports/%Y/%m/", blank=True, help_text="The file as uploaded (pages)."
    )
    file_sha256 = models.CharField("file SHA-256", max_length=64)
    source_format = models.CharField(max_length=16)
    dry_run = models.BooleanField()
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.RUNNING)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="imports")
    host = models.CharField(max_length=255, blank=True, help_text="The machine that ran the import.")
    process_id = models.PositiveIntegerField(null=True, blank=True, help_text="Its process, while running.")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    summary = models.JSONField(
        default=dict, blank=True, help_text="Rows created, changed and unchanged per table."
    )
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name_plural = "import batches"

    def __str__(self) -> str:
        return f"Import #{self.pk} of {self.file_name} ({self.get_status_display()})"

    @property
    def reason(self) -> str:
        """The reason every record written by this batch carries in its history."""
        return f"Import #{self.pk}: {self.file_name} (SHA-256 {self.file_sha256[:12]})"
