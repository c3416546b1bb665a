"""Hospitals and the studies they take part in."""

from django.core.validators import RegexValidator
from django.db import models

from ..choices import DiseaseArea
from .base import RegistryRecord

code_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]*$", "Use lower-case letters, digits, '-' or '_' (for example 'pumch' or 'lm')."
)


class Site(RegistryRecord):
    """A hospital that enters case records; the unit of data isolation between users."""

    site_lookup = "pk"

    code = models.CharField(max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Study(RegistryRecord):
    """A cohort study in one disease area, run at one or more sites."""

    site_lookup = "sites"  # many-to-many: a study is visible at any of its sites

    code = models.CharField(max_length=32, unique=True, validators=[code_validator])
    disease_area = models.CharField(max_length=16, choices=DiseaseArea.choices)
    title = models.CharField(max_length=300)
    protocol_summary = models.TextField(blank=True)
    sites = models.ManyToManyField(Site, related_name="studies", blank=True)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return f"{self.code}: {self.title}"
