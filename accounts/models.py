"""A custom user and the per-site roles that decide what each person may see and do."""

from django.contrib.auth.models import AbstractUser
from django.db import models

from .audited import AuditedRecord, history_records
from .validators import code_validator


class Role(models.TextChoices):
    DATA_ENTRY = "data_entry", "Data entry"
    REVIEWER = "reviewer", "Reviewer"
    RESEARCHER = "researcher", "Researcher"
    SITE_ADMIN = "site_admin", "Site administrator"
    # Granted at each site of a study it administers: moves patients between those sites and takes
    # identified exports, the two rights no other role holds.
    STUDY_ADMIN = "study_admin", "Study administrator"


class User(AbstractUser):
    """A person who signs in: study staff, reviewers, researchers and administrators."""

    _roles_by_site: dict[int, set[str]]  # cached per request by accounts.access.roles_by_site
    _role_permissions: set[str]  # cached per request by accounts.roles.RoleBackend

    class Meta:
        db_table = "accounts_user"
        verbose_name = "user"


class Site(AuditedRecord):
    """A hospital that enters case records; the unit of data isolation between users.

    It lives with the users and roles because every permission question is "which sites": the
    access layer answers it without reaching up into the case records.
    """

    site_lookup = "pk"

    code = models.CharField(max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SiteMembership(models.Model):
    """A role a user holds at one site (a researcher may be granted several sites)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    granted_at = models.DateTimeField(auto_now_add=True)

    history = history_records()

    class Meta:
        ordering = ["user", "site", "role"]
        constraints = [
            models.UniqueConstraint(fields=["user", "site", "role"], name="membership_unique_role_per_site")
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} at {self.site}"
