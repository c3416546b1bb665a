"""Security events: sign-ins, failures, lock-outs, exports and permission denials."""

from django.conf import settings
from django.db import models


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
