"""Saved report definitions: the default one every study gets, and the ones researchers save."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from analytics.models import ReportDefinition
from audit.services import action_event_record
from registry.action_events import Action, ActionKind
from registry.models import Study

DEFAULT_NAME = "All patients"
DEFAULT_DESCRIPTION = "The seed paper's analysis over every patient of the study at the sites you report on."


def default_definition(study: Study) -> ReportDefinition:
    """The study's default report (no filter, the report's default options), created if missing."""
    definition, _ = ReportDefinition.objects.get_or_create(
        study=study, is_default=True, defaults={"name": DEFAULT_NAME, "description": DEFAULT_DESCRIPTION}
    )
    return definition


@transaction.atomic
def report_definition_create(
    *,
    study: Study,
    name: str,
    filters: dict[str, Any],
    options: dict[str, str],
    created_by,
    description: str = "",
) -> ReportDefinition:
    """Save a filtered view as a new definition; a name already used for the study is refused."""
    definition = ReportDefinition(
        study=study,
        name=name,
        description=description,
        filters=filters,
        options=options,
        created_by=created_by,
    )
    definition.full_clean()
    definition.save()
    action_event_record(
        Action(
            kind=ActionKind.REPORT_DEFINITION_SAVED,
            actor=created_by,
            study_id=study.pk,
            record=definition,
            new_state="saved",
            detail={"definition": definition.pk, "name": name, "filters": filters, "options": options},
        )
    )
    return definition
