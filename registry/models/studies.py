"""The studies hospitals take part in (the hospitals themselves are accounts.Site)."""

from django.db import models

from accounts.models import Site
from accounts.validators import code_validator

from ..choices import DiseaseArea
from .base import RegistryRecord


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
