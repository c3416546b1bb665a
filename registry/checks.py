"""System checks on what each case-record model declares (as django.contrib.auth checks its user model).

A model that forgets its history, its way to a site or its review section would silently fall out
of the audit trail, the site scoping or the review; ``manage.py check`` (and so every test run and
deployment) fails instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model
from simple_history.models import HistoricalChanges

from .catalogue import audited_models
from .choices import Section
from .models import Patient


def _lookup_problem(model: type[Model], lookup: str) -> str | None:
    """Why ``lookup`` (hops of foreign keys ending at the patient) does not resolve, or None."""
    target = model
    for hop in lookup.split("__"):
        try:
            field = target._meta.get_field(hop)
        except FieldDoesNotExist:
            return f"{target.__name__} has no field {hop!r}"
        related = field.related_model
        if not (field.many_to_one or field.one_to_one) or field.auto_created or not isinstance(related, type):
            return f"{target.__name__}.{hop} is not a foreign key"
        target = related
    return None if target is Patient else f"it ends at {target.__name__}, not Patient"


@checks.register(checks.Tags.models)
def check_case_record_declarations(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for model in audited_models():
        if app_configs is not None and model._meta.app_config not in app_configs:
            continue
        label = model._meta.label
        history = getattr(model, "history", None)
        if history is None or not issubclass(history.model, HistoricalChanges):
            errors.append(checks.Error(f"{label} keeps no history.", obj=model, id="registry.E001"))
        lookup = model.patient_lookup
        if lookup is None:
            if not (model.site_lookup or model.reference_data):
                errors.append(
                    checks.Error(
                        f"{label} declares no way to its site.",
                        hint="Declare patient_lookup, site_lookup, or reference_data = True.",
                        obj=model,
                        id="registry.E002",
                    )
                )
            continue
        if lookup != "self" and (problem := _lookup_problem(model, lookup)):
            errors.append(
                checks.Error(
                    f"{label}.patient_lookup {lookup!r} does not resolve: {problem}.",
                    obj=model,
                    id="registry.E003",
                )
            )
        if model.review_section not in Section.values:
            errors.append(
                checks.Error(
                    f"{label} belongs to a patient but declares no review section.",
                    hint=f"Set review_section to one of {', '.join(Section.values)}.",
                    obj=model,
                    id="registry.E004",
                )
            )
    return errors
