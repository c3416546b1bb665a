"""Review state of each section of a case record, electronic signatures, and data clarification queries."""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Q

from accounts.audited import history_records
from registry.choices import Section
from registry.formatting import sentence
from registry.models import Patient

#: The sections of a case record, as on the patient page; each is reviewed and locked on its own.
SECTIONS = ["identity", "diagnosis", "procedures", "therapy", "safety", "outcomes"]


class ReviewStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    VERIFIED = "verified", "Verified"
    LOCKED = "locked", "Locked"


#: Order of the statuses, for "at least submitted" and the patient-level summary.
STATUS_ORDER = {status: rank for rank, status in enumerate(ReviewStatus.values)}


class SectionReview(models.Model):
    """Where one section of one patient's case record stands in the review. No row means draft."""

    patient_lookup = "patient"  # site scoping (accounts.access.site_path)

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="section_reviews")
    section = models.CharField(max_length=16, choices=Section.choices)
    status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.DRAFT)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    locked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    locked_at = models.DateTimeField(null=True, blank=True)

    history = history_records()

    class Meta:
        ordering = ["patient", "section"]
        constraints = [
            models.UniqueConstraint(fields=["patient", "section"], name="review_one_row_per_section"),
            models.CheckConstraint(
                condition=~Q(status=ReviewStatus.LOCKED)
                | Q(locked_by__isnull=False, locked_at__isnull=False),
                name="review_locked_has_signer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient} · {self.get_section_display()}: {self.get_status_display()}"


class SignatureMeaning(models.TextChoices):
    """What the signer attests (21 CFR 11.50: the meaning shown with the name and time)."""

    REVIEW_AND_LOCK = "review_lock", "I have reviewed these data and confirm they are complete and accurate."
    UNLOCK = "unlock", "I unlock these data for correction."


class ElectronicSignature(models.Model):
    """An electronic signature: who (printed name), when (UTC) and what it means; never changed."""

    signer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="signatures")
    printed_name = models.CharField(max_length=200)
    signed_at = models.DateTimeField(auto_now_add=True)
    meaning = models.CharField(max_length=16, choices=SignatureMeaning.choices)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="signatures")
    sections = models.JSONField(help_text="The sections this signature covers.")
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-signed_at"]

    def __str__(self) -> str:
        return f"{self.printed_name}, {self.signed_at:%Y-%m-%d %H:%M} UTC — {self.get_meaning_display()}"


class QueryStatus(models.TextChoices):
    OPEN = "open", "Open"
    ANSWERED = "answered", "Answered (awaiting the reviewer)"
    CLOSED = "closed", "Closed"


class QueryOrigin(models.TextChoices):
    REVIEWER = "reviewer", "Raised by a reviewer"
    RULE = "rule", "Raised by a data-quality rule"


class DataQuery(models.Model):
    """A data clarification request about one field of one record (or a section as a whole)."""

    patient_lookup = "patient"  # site scoping (accounts.access.site_path)

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="queries")
    section = models.CharField(max_length=16, choices=Section.choices)
    content_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.PROTECT)
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    record = GenericForeignKey("content_type", "object_id")
    field_name = models.CharField(max_length=100, blank=True)
    message = models.TextField()
    status = models.CharField(max_length=16, choices=QueryStatus.choices, default=QueryStatus.OPEN)
    origin = models.CharField(max_length=16, choices=QueryOrigin.choices, default=QueryOrigin.REVIEWER)
    rule_code = models.CharField(
        max_length=64, blank=True, help_text="For rule queries: the rule that raised it."
    )
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    raised_at = models.DateTimeField(auto_now_add=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    history = history_records()

    class Meta:
        ordering = ["-raised_at"]
        verbose_name = "data query"
        verbose_name_plural = "data queries"
        indexes = [models.Index(fields=["status", "raised_at"], name="query_status_age")]
        constraints = [
            models.UniqueConstraint(
                fields=["rule_code", "content_type", "object_id", "field_name"],
                condition=Q(origin=QueryOrigin.RULE) & ~Q(status=QueryStatus.CLOSED),
                name="query_one_open_per_rule_finding",
            )
        ]

    def __str__(self) -> str:
        target = f" · {self.field_name}" if self.field_name else ""
        return f"{self.patient} · {self.get_section_display()}{target}: {self.message[:60]}"

    @property
    def field_label(self) -> str:
        """The field's label as the form shows it ("Opening pressure (mmH2O)"), not its column name."""
        model = (
            ContentType.objects.get_for_id(self.content_type_id).model_class()
            if self.content_type_id
            else None
        )
        if not self.field_name or model is None:
            return sentence(self.field_name)
        try:
            field = model._meta.get_field(self.field_name)
        except FieldDoesNotExist:
            return sentence(self.field_name)
        return sentence(str(getattr(field, "verbose_name", self.field_name)))

    @property
    def is_open(self) -> bool:
        return self.status != QueryStatus.CLOSED


class QueryMessage(models.Model):
    """One message in a query's thread: the question, an answer, a correction note, the closing note."""

    query = models.ForeignKey(DataQuery, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    written_at = models.DateTimeField(auto_now_add=True)
    text = models.TextField()

    class Meta:
        ordering = ["written_at", "pk"]

    def __str__(self) -> str:
        return self.text[:60]
