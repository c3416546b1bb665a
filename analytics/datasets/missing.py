"""Why a dataset value is missing: the missing-data codes of the records it is read from.

The values themselves stay empty (NaN) whatever the code, so every analysis treats them as missing;
the codes only explain the gaps, so the report's cohort flow can count the patients left out of an
analysis by reason (``ecog missing (12: UNK 3, ND 2, not entered 7)``).
"""

from __future__ import annotations

from collections import defaultdict

from registry.models import CsfResult, LmDiagnosis, LumbarPuncture, NpsleDiagnosis

#: Dataset column → (model, field, path to the patient, order: the first record's code counts).
SOURCES = {
    "c3_g_per_l": (NpsleDiagnosis, "c3_g_per_l", "patient_id", "pk"),
    "c4_g_per_l": (NpsleDiagnosis, "c4_g_per_l", "patient_id", "pk"),
    "lupus_anticoagulant_ratio": (NpsleDiagnosis, "lupus_anticoagulant_ratio", "patient_id", "pk"),
    "bilag_np_grade": (NpsleDiagnosis, "bilag_np_grade", "patient_id", "pk"),
    "sle_duration_months": (NpsleDiagnosis, "sle_duration_months", "patient_id", "pk"),
    "ecog": (LmDiagnosis, "ecog", "patient_id", "pk"),
    "ecog_ge2": (LmDiagnosis, "ecog", "patient_id", "pk"),
    "icp_baseline": (LumbarPuncture, "opening_pressure_mmh2o", "patient_id", "performed_at"),
    "inc_icp": (LumbarPuncture, "opening_pressure_mmh2o", "patient_id", "performed_at"),
    "protein_baseline": (
        CsfResult,
        "protein_g_per_l",
        "lumbar_puncture__patient_id",
        "lumbar_puncture__performed_at",
    ),
    "inc_protein": (
        CsfResult,
        "protein_g_per_l",
        "lumbar_puncture__patient_id",
        "lumbar_puncture__performed_at",
    ),
    "wbc_baseline": (
        CsfResult,
        "wbc_1e6_per_l",
        "lumbar_puncture__patient_id",
        "lumbar_puncture__performed_at",
    ),
}


def missing_reasons(source, columns: list[str]) -> dict[str, dict[int, str]]:
    """{dataset column: {patient id: code}} for the columns of this dataset read from coded fields.

    Only records that carry a code are read (one query per kind of record), so a registry without
    codes pays one empty query per kind.
    """
    wanted = [c for c in columns if c in SOURCES]
    by_model: dict[tuple, list[str]] = defaultdict(list)
    for column in wanted:
        model, _, path, order = SOURCES[column]
        by_model[(model, path, order)].append(column)
    reasons: dict[str, dict[int, str]] = {column: {} for column in wanted}
    for (model, path, order), names in by_model.items():
        rows = (
            model.objects.filter(**{f"{path}__in": source.values("pk")})
            .exclude(missing_codes={})
            .order_by(order)
            .values_list(path, "missing_codes")
        )
        for patient_id, codes in rows:
            for column in names:
                code = codes.get(SOURCES[column][1])
                if code:
                    reasons[column].setdefault(patient_id, code)
    return {column: found for column, found in reasons.items() if found}
