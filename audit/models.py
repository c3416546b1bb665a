"""Security events (sign-ins, failures, lock-outs, exports, denials) and workflow action events."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from registry.action_events import ActionKind
from registry.choices import Section


class SecurityEventKind(models.TextChoices):
    SIGN_IN = "sign_in", "Signed in"
    SIGN_OUT = "sign_out", "Signed out"
    SIGN_IN_FAILED = "sign_in_failed", "Sign-in failed"
    LOCKED_OUT = "locked_out", "Locked out after repeated failures"
    PERMISSION_DENIED = "permission_denied", "Permission denied"
    EXPORT = "export", "Data exported"
    IDENTIFIED_EXPORT = "identified_export", "Identified data exported"
    PATIENT_MOVED = "patient_moved", "Patient moved to another site"
    TOKEN_ISSUED = "token_issued", "API token issued"
    TOKEN_REVOKED = "token_revoked", "API token revoked"
    THROTTLED = "throttled", "Sign-in refused: too many failures from this address"


class SecurityEvent(models.Model):
    """One security-relevant event; rows are never changed or deleted (enforced on PostgreSQL)."""

    kind = models.CharField(max_length=24, choices=SecurityEventKind.choices)
    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="security_events",
    )
    username = models.CharField(max_length=150, blank=True, help_text="As typed, for failed sign-ins.")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    path = models.CharField(max_length=500, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [models.Index(fields=["kind", "occurred_at"], name="security_event_kind_time")]

    def __str__(self) -> str:
        who = self.user or self.username or "anonymous"
        return f"{self.get_kind_display()} — {who} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class ActionEvent(models.Model):
    """One workflow action (registry.action_events): who, when, on what, from → to, why, and signature.

    Append-only like the history rows (the same PostgreSQL trigger). The patient and study are kept
    as ids without a database constraint, so an event outlives a deleted record, as history rows do.
    """

    kind = models.CharField(max_length=32, choices=ActionKind.choices)
    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty for the system (a data-quality rule).",
    )
    study = models.ForeignKey(
        "registry.Study",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    patient = models.ForeignKey(
        "registry.Patient",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    section = models.CharField(max_length=16, choices=Section.choices, blank=True)
    object_model = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_label = models.CharField(max_length=300, blank=True)
    old_state = models.CharField(max_length=64, blank=True)
    new_state = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    signature_meaning = models.CharField(max_length=300, blank=True)
    signer = models.CharField(max_length=200, blank=True, help_text="The signer's printed name.")
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-pk"]
        indexes = [
            models.Index(fields=["patient", "occurred_at"], name="action_event_patient_time"),
            models.Index(fields=["study", "occurred_at"], name="action_event_study_time"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} — {self.actor or 'system'} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"

    @property
    def state_change(self) -> str:
        return f"{self.old_state} → {self.new_state}" if self.old_state or self.new_state else ""


class ActionEventPatient(models.Model):
    """A patient covered by an action over many (an export, an import): it shows in their history."""

    event = models.ForeignKey(ActionEvent, on_delete=models.DO_NOTHING, related_name="covered")
    patient = models.ForeignKey(
        "registry.Patient", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["patient", "event"], name="action_event_covers_patient")]

    def __str__(self) -> str:
        return f"{self.event} · patient #{self.patient_id}"
