"""Saved report definitions: every study gets a default one; names are unique per study; the admin."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from analytics.models import ReportDefinition
from analytics.reports.definitions import DEFAULT_NAME, report_definition_create
from registry.choices import DiseaseArea
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_a_new_study_gets_its_default_definition():
    study = f.StudyFactory(disease_area=DiseaseArea.LM)
    definition = ReportDefinition.objects.get(study=study)
    assert definition.is_default and definition.name == DEFAULT_NAME
    assert definition.filters == {} and definition.options == {}


def test_the_data_migration_gives_existing_studies_a_default():
    study = f.StudyFactory()
    ReportDefinition.objects.filter(study=study).delete()
    import_module("analytics.migrations.0002_default_report_definitions").create_defaults(apps, None)
    assert ReportDefinition.objects.get(study=study).is_default


def test_a_study_has_one_default_and_unique_names():
    study = f.StudyFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        ReportDefinition.objects.create(study=study, name="Another default", is_default=True)
    user = f.UserFactory()
    saved = report_definition_create(
        study=study, name="Women", filters={"sex_male": 0}, options={"ties": "efron"}, created_by=user
    )
    assert saved.created_by == user
    with pytest.raises(ValidationError, match="already exists"):
        report_definition_create(study=study, name="Women", filters={}, options={}, created_by=user)


def test_the_admin_lists_definitions_and_runs(admin_client):
    f.StudyFactory()
    for model in ("reportdefinition", "reportrun"):
        assert admin_client.get(reverse(f"admin:analytics_{model}_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:analytics_reportrun_add")).status_code == 403
