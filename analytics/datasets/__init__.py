"""Analysis datasets: one row per patient, built from the registry's records.

``build_dataset(study)`` reads each kind of record once (``values()`` queries, no per-patient
queries, so it scales to 100,000 patients) and derives the analysis variables with pandas. Every
column is described in the data dictionary (name, label, unit, derivation) that the README and the
reports show. Missing values stay missing: a patient without a baseline CSF protein has NaN there,
and each analysis states how many rows it excluded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import pandas as pd

from analytics.errors import AnalysisError
from registry.choices import DiseaseArea
from registry.models import Patient, Study

from .base import (
    COMMON_VARIABLES,
    Variable,
    _add_common,
    _add_schedule,
    _add_therapy_flags,
    _doses,
    _lumbar_punctures,
    _patients,
    apply_filters,
)
from .icans import ICANS_VARIABLES, _add_icans
from .lm import LM_VARIABLES, _add_lm
from .missing import missing_reasons
from .npsle import NPSLE_VARIABLES, _add_npsle, add_npsle_regimen

DICTIONARIES: dict[str, list[Variable]] = {
    DiseaseArea.NPSLE: COMMON_VARIABLES + NPSLE_VARIABLES,
    DiseaseArea.LM: COMMON_VARIABLES + LM_VARIABLES,
    DiseaseArea.ICANS: COMMON_VARIABLES + ICANS_VARIABLES,
}


def data_dictionary(study: Study | str) -> list[Variable]:
    """The variables ``build_dataset`` returns for this study, in column order."""
    return DICTIONARIES[_resolve_study(study).disease_area]


def _resolve_study(study: Study | str) -> Study:
    if isinstance(study, Study):
        return study
    try:
        return Study.objects.get(code=study)
    except Study.DoesNotExist:
        raise AnalysisError(f"no study with the code {study!r}") from None


def build_dataset(
    study: Study | str, *, filters: Mapping[str, Any] | None = None, patients=None
) -> pd.DataFrame:
    """One row per patient of the study, with the columns of its data dictionary.

    ``filters`` narrows the cohort (see ``apply_filters``); ``patients`` optionally restricts the
    source queryset (the report layer passes the patients a user may see). The frame's ``attrs``
    carry the study code, the number of patients screened and the data dictionary.
    """
    study = _resolve_study(study)
    source = Patient.objects.filter(study=study) if patients is None else patients.filter(study=study)
    frame = _patients(source)
    if not frame.empty:
        lps = _lumbar_punctures(source)
        doses = _doses(source, lps)
        frame = _add_common(frame, source, lps, doses)
        frame = _add_schedule(frame, source, doses)
        builder = {DiseaseArea.NPSLE: _add_npsle, DiseaseArea.LM: _add_lm, DiseaseArea.ICANS: _add_icans}
        area = cast(DiseaseArea, study.disease_area)  # one of the choices
        frame = builder[area](frame, source, doses, lps)
        frame = _add_therapy_flags(frame, source)
        if study.disease_area == DiseaseArea.NPSLE:
            frame = add_npsle_regimen(frame)
    columns = [v.name for v in DICTIONARIES[study.disease_area]]
    frame = frame.reindex(columns=columns)
    screened = len(frame)
    if filters:
        frame = apply_filters(frame, filters)
    # A new index in place: reset_index() copied the 85 blocks of a 100,000-patient frame (0.35 s).
    frame.index = pd.RangeIndex(len(frame))
    frame.attrs.update(
        study=study.code,
        disease_area=study.disease_area,
        screened=screened,
        dictionary=[v.to_dict() for v in DICTIONARIES[study.disease_area]],
        missing_reasons=missing_reasons(source, columns),
    )
    return frame


__all__ = ["DICTIONARIES", "Variable", "apply_filters", "build_dataset", "data_dictionary"]
