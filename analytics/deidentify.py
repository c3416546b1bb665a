"""De-identification: the one set of rules for everything that leaves the registry without identifiers.

The study export (exchange) and the researcher's report downloads (dataset, JSON, workbook) apply the
same rules:
- patients are named by their study code, never by a database id; no names, MRNs or birth dates;
- dates are shifted by a per-patient offset (±1–365 days, never 0), derived with ``DATE_SHIFT_KEY``
  so it is the same on every export and intervals within a patient are kept — or replaced by whole
  days from the patient's index admission;
- ages are whole years (rounded down), capped at 90 ("90" means 90 or older);
- free text is left out (a study export may include it on request, with a warning).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import math
from collections.abc import Iterable

import pandas as pd
from django.conf import settings

from analytics.datasets import Variable

AGE_CAP_YEARS = 90
MAX_SHIFT_DAYS = 365


class DateHandling(enum.StrEnum):
    EXACT = "exact"  # identified study exports only
    SHIFT = "shift"
    DAYS = "days"


DATE_LABELS = {
    DateHandling.SHIFT: "shifted by a secret offset per patient (±1–365 days; intervals kept)",
    DateHandling.DAYS: "whole days from the patient's index admission",
}


def date_shift_days(study_code: str, patient_id: int) -> int:
    """The patient's secret date offset: non-zero, within ±365 days, the same on every export.

    Keyed with ``DATE_SHIFT_KEY`` (not the session key), so knowing one does not give the other.
    """
    digest = hmac.new(
        settings.DATE_SHIFT_KEY.encode(), f"date-shift:{study_code}:{patient_id}".encode(), hashlib.sha256
    )
    offset = int.from_bytes(digest.digest()[:8], "big") % (2 * MAX_SHIFT_DAYS) - MAX_SHIFT_DAYS
    return offset or MAX_SHIFT_DAYS  # never "unshifted"


def capped_age(age: float | None) -> int | None:
    """Whole years, rounded down, capped at 90."""
    if age is None or (isinstance(age, float) and math.isnan(age)):
        return None
    return min(AGE_CAP_YEARS, math.floor(age))


#: Dataset columns that are free text typed by staff: never in a de-identified download.
FREE_TEXT_VARIABLES = frozenset({"car_t_product"})
#: Dataset columns that identify a record inside the registry and mean nothing outside it.
INTERNAL_VARIABLES = frozenset({"patient_id"})


def deidentified_dataset(
    frame: pd.DataFrame, *, dates: DateHandling = DateHandling.SHIFT, free_text: bool = False
) -> pd.DataFrame:
    """The analysis dataset as it may leave the registry (see the module docstring).

    ``free_text`` keeps typed text columns (a study export whose exporter asked for free text).
    """
    if dates == DateHandling.EXACT:
        raise ValueError("A de-identified dataset has shifted dates or days from the index date.")
    dropped = INTERNAL_VARIABLES | (frozenset() if free_text else FREE_TEXT_VARIABLES)
    out = frame.drop(columns=[c for c in frame.columns if c in dropped])
    if "age" in out:
        out["age"] = pd.array([capped_age(a) for a in frame["age"]], dtype="Int64")
    if "index_date" in out:
        study = frame.attrs["study"]
        out["index_date"] = [
            None
            if pd.isna(day)
            else 0
            if dates == DateHandling.DAYS
            else day + dt.timedelta(days=date_shift_days(study, patient_id))
            for patient_id, day in zip(frame["patient_id"], frame["index_date"], strict=True)
        ]
    out.attrs.update(frame.attrs)
    return out


def deidentified_dictionary(
    variables: Iterable[Variable], *, dates: DateHandling, free_text: bool = False
) -> list[Variable]:
    """The data dictionary of a de-identified dataset: what each column is and what was done to it."""
    dropped = INTERNAL_VARIABLES | (frozenset() if free_text else FREE_TEXT_VARIABLES)
    described = []
    for variable in variables:
        if variable.name in dropped:
            continue
        if variable.name == "age":
            variable = Variable(
                variable.name,
                variable.label,
                variable.unit,
                f"{variable.derivation}; de-identified: whole years (rounded down), "
                f"{AGE_CAP_YEARS} means {AGE_CAP_YEARS} or older",
            )
        elif variable.name == "index_date":
            variable = Variable(
                variable.name,
                variable.label,
                "days" if dates == DateHandling.DAYS else variable.unit,
                f"{variable.derivation}; de-identified: {DATE_LABELS[dates]}",
            )
        described.append(variable)
    return described


def deidentification_note(*, dates: DateHandling, free_text: bool = False) -> str:
    """One paragraph for an ABOUT file: what was removed and changed."""
    return (
        "De-identified: patients by study code only (no names, medical record numbers, birth dates or "
        f"registry ids); dates {DATE_LABELS[dates]}; ages in whole years, {AGE_CAP_YEARS} = "
        f"{AGE_CAP_YEARS} or older; "
        + (
            "free text INCLUDED at the exporter's request (check it for identifiers)."
            if free_text
            else "free text left out."
        )
    )
