"""Branching logic: which fields of a record apply, declared once per field.

A field applies in the studies of some disease areas (CSF CAR-T cells and IL-6 belong to the ICANS
studies), or when another field of the same record has one of some values (the other drug's name
when the drug is "Other", the organism when a culture is positive). The models' ``clean()`` refuses
a value in a field that does not apply — an error, not a silent drop, so nothing typed is lost
without the person knowing — and the pages read the same declarations to show and hide the field
while it is being filled in (``data-applies-*`` attributes, ``static/js/casebook.js``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models

from .choices import CtcaeTerm, DiseaseArea, IntrathecalDrug, TestResult


@dataclass(frozen=True)
class AppliesWhen:
    """When a field applies: in these disease areas, and/or when ``field`` has one of ``values``."""

    areas: frozenset[str] | None = None
    field: str | None = None
    values: frozenset[str] = frozenset()

    def holds(self, record: Any, area: str | None) -> bool:
        if self.areas is not None and area is not None and area not in self.areas:
            return False
        return self.field is None or getattr(record, self.field) in self.values

    def message(self, record: Any) -> str:
        """Why the field does not apply, in the words of the field it depends on."""
        if self.areas is not None and self.field is None:
            names = " or ".join(DiseaseArea(a).label for a in sorted(self.areas))
            return f"This is recorded only in studies of {names}; leave it empty."
        model = type(record)
        other = model._meta.get_field(self.field)
        choices = dict(other.choices or ())
        wanted = " or ".join(f"'{choices.get(v, v)}'" for v in sorted(self.values))
        return f"This applies only when {other.verbose_name} is {wanted}; leave it empty."


#: model label → {field → when it applies}. The one place the branching of every form is declared.
APPLIES: dict[str, dict[str, AppliesWhen]] = {
    "registry.csfresult": {
        "il6_pg_per_ml": AppliesWhen(areas=frozenset({DiseaseArea.ICANS})),
        "car_t_cells_per_ul": AppliesWhen(areas=frozenset({DiseaseArea.ICANS})),
    },
    "registry.intrathecaldose": {
        "drug_other": AppliesWhen(field="drug", values=frozenset({IntrathecalDrug.OTHER})),
    },
    "registry.adverseevent": {
        "term_other": AppliesWhen(field="ctcae_term", values=frozenset({CtcaeTerm.OTHER})),
    },
    "registry.pathogentest": {
        "organism": AppliesWhen(field="result", values=frozenset({TestResult.POSITIVE})),
    },
}


def rules_for(model: type[models.Model]) -> dict[str, AppliesWhen]:
    return APPLIES.get(model._meta.label_lower, {})


def _filled(value: Any) -> bool:
    return value not in (None, "")


def not_applicable_errors(record: Any, area: str | None) -> dict[str, list[str]]:
    """{field: [message]} for each field holding a value although it does not apply."""
    return {
        name: [rule.message(record)]
        for name, rule in rules_for(type(record)).items()
        if _filled(getattr(record, name)) and not rule.holds(record, area)
    }


def applies(model: type[models.Model], name: str, area: str | None) -> bool:
    """Whether a field can apply at all in a study of ``area`` (before any value is chosen)."""
    rule = rules_for(model).get(name)
    return rule is None or rule.areas is None or area is None or area in rule.areas
