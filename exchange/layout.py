"""The registry's own exchange layout: one table per kind of record, each row found by a natural key.

The exporter writes these tables and the importer reads them, so a study exported and imported into
an empty registry exports again byte for byte. Every row names its patient by ``study_code``; child
rows name their parent by its natural key (an LP by ``performed_at``, a syndrome by its code).

Values: dates ``YYYY-MM-DD``; date-times ISO 8601 in UTC (``2021-03-02T09:00:00Z``); decimals as
entered; yes/no as ``1``/``0`` (empty when unknown); coded values as their codes (the data dictionary
and the SPSS/Stata value labels give the labels); empty cells for missing values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from django.db import models

from protocols import models as pm
from registry import models as m
from registry.models.base import RegistryRecord


@dataclass(frozen=True)
class Table:
    """One exchange table: its model, natural key, columns, and how a row finds its parent record."""

    name: str
    model: type[RegistryRecord]
    keys: tuple[str, ...]
    #: How the model reaches the patient, and the parent table whose key columns this row repeats.
    parent: str | None = None
    parent_field: str = ""
    #: Columns computed by the registry (exported; on import they must agree with the recomputation).
    computed: tuple[str, ...] = ()
    #: Text columns the registry writes itself (not typed by staff, so not free text).
    registry_text: tuple[str, ...] = ()
    #: Model fields never exchanged (bookkeeping, parent links written as key columns).
    skipped: tuple[str, ...] = field(default=())
    #: Links to other records, written as that record's key: (column, field). A lumbar puncture is
    #: named by ``performed_at``, a phase by its number in the course's protocol.
    references: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return str(self.model._meta.verbose_name_plural)

    def value_fields(self) -> list[models.Field]:
        """The model fields written as columns after the key columns, in model order."""
        excluded = {"id", "created_at", "updated_at", "version", "patient", self.parent_field, *self.skipped}
        return [
            f for f in self.model._meta.concrete_fields if f.name not in excluded and f.name not in self.keys
        ]

    def columns(self) -> list[str]:
        return [
            *self.keys,
            *(f.name for f in self.value_fields()),
            *(column for column, _ in self.references),
        ]

    def free_text(self) -> tuple[str, ...]:
        """Columns of text typed by staff (a text field without a code list), key columns included —
        also a parent's key this table repeats (a dose's "other drug"): left out of de-identified
        exports unless the exporter asks for free text."""
        own = [
            f.name
            for f in self.model._meta.concrete_fields
            if isinstance(f, models.CharField | models.TextField)
            and not f.choices
            and f.name != "study_code"
            and f.name not in self.registry_text
            and f.name in self.columns()
        ]
        inherited = [key for key in self.keys if self.parent and key in BY_NAME[self.parent].free_text()]
        return tuple(dict.fromkeys([*own, *inherited]))

    def key_field(self, key: str) -> models.Field | None:
        """The model field a key column is read with: this model's, else the parent's (recursively)."""
        return _key_field(self.name, key)

    def model_keys(self) -> list[str]:
        """Key columns that are fields of this model (the others belong to the parent's key)."""
        names = {f.name for f in self.model._meta.concrete_fields}
        return [key for key in self.keys if key in names]


TABLES: tuple[Table, ...] = (
    Table("patients", m.Patient, ("study_code",), skipped=("study",)),
    Table(
        "patient_identifiers", m.PatientIdentifier, ("study_code",), parent="patients", parent_field="patient"
    ),
    Table("npsle_diagnoses", m.NpsleDiagnosis, ("study_code",), parent="patients", parent_field="patient"),
    Table(
        "npsle_syndromes",
        m.NpsleManifestation,
        ("study_code", "syndrome"),
        parent="npsle_diagnoses",
        parent_field="diagnosis",
    ),
    Table(
        "sledai_assessments",
        m.Sledai2kAssessment,
        ("study_code", "assessed_on"),
        parent="patients",
        parent_field="patient",
        computed=("total",),
        skipped=("scale_version",),
    ),
    Table(
        "lm_diagnoses",
        m.LmDiagnosis,
        ("study_code",),
        parent="patients",
        parent_field="patient",
    ),
    Table(
        "driver_mutations",
        m.MutationFinding,
        ("study_code", "specimen", "mutation"),
        parent="lm_diagnoses",
        parent_field="diagnosis",
    ),
    Table(
        "car_t_infusions",
        m.CarTInfusion,
        ("study_code", "infusion_date", "product"),
        parent="patients",
        parent_field="patient",
    ),
    Table(
        "icans_assessments",
        m.IcansAssessment,
        ("study_code", "assessed_at"),
        parent="patients",
        parent_field="patient",
        computed=("ice_score", "icans_grade"),
        skipped=("scale_version",),
    ),
    Table(
        "crs_assessments",
        m.CrsAssessment,
        ("study_code", "assessed_at"),
        parent="patients",
        parent_field="patient",
        computed=("crs_grade",),
        skipped=("scale_version",),
    ),
    Table(
        "lumbar_punctures",
        m.LumbarPuncture,
        ("study_code", "performed_at"),
        parent="patients",
        parent_field="patient",
    ),
    Table(
        "csf_results",
        m.CsfResult,
        ("study_code", "performed_at"),
        parent="lumbar_punctures",
        parent_field="lumbar_puncture",
    ),
    Table(
        "pathogen_tests",
        m.PathogenTest,
        ("study_code", "performed_at", "test"),
        parent="csf_results",
        parent_field="csf_result",
    ),
    Table(
        "intrathecal_doses",
        m.IntrathecalDose,
        ("study_code", "performed_at", "drug", "drug_other", "timing"),
        parent="lumbar_punctures",
        parent_field="lumbar_puncture",
    ),
    Table(
        "systemic_therapies",
        m.SystemicTherapy,
        ("study_code", "category", "agent", "start_date"),
        parent="patients",
        parent_field="patient",
    ),
    Table(
        "adverse_events",
        m.AdverseEvent,
        ("study_code", "ctcae_term", "term_other", "onset_date"),
        parent="patients",
        parent_field="patient",
        skipped=("lumbar_puncture",),
        references=(("lumbar_puncture_performed_at", "lumbar_puncture"),),
    ),
    Table(
        "discharge_outcomes", m.DischargeOutcome, ("study_code",), parent="patients", parent_field="patient"
    ),
    Table(
        "response_assessments",
        m.ResponseAssessment,
        ("study_code", "assessed_on"),
        parent="patients",
        parent_field="patient",
    ),
    Table(
        "follow_up_events",
        m.FollowUpEvent,
        ("study_code", "event_type", "event_date"),
        parent="patients",
        parent_field="patient",
    ),
    # Intrathecal courses (after the LPs and doses they link to). A course names its protocol
    # version as code:version; the protocols themselves are reference data, not exchanged.
    Table(
        "courses",
        pm.Course,
        ("study_code", "start_date"),
        parent="patients",
        parent_field="patient",
    ),
    Table(
        "planned_injections",
        pm.PlannedInjection,
        ("study_code", "course_start_date", "sequence"),
        parent="courses",
        parent_field="course",
        skipped=("phase", "lumbar_puncture"),
        references=(("phase_number", "phase"), ("lumbar_puncture_performed_at", "lumbar_puncture")),
        registry_text=("deviation",),
    ),
    Table(
        "safety_overrides",
        pm.SafetyOverride,
        ("study_code", "performed_at", "check_code"),
        parent="lumbar_punctures",
        parent_field="lumbar_puncture",
        registry_text=("finding",),
    ),
    Table(
        "dose_formulations",
        pm.DoseFormulation,
        ("study_code", "performed_at", "drug", "drug_other", "timing"),
        parent="intrathecal_doses",
        parent_field="dose",
    ),
)
BY_NAME = {table.name: table for table in TABLES}


@cache
def _key_field(table_name: str, key: str) -> models.Field | None:
    """``Table.key_field``, worked out once per table and column (an import asks it for every row)."""
    table = BY_NAME[table_name]
    names = {f.name: f for f in table.model._meta.concrete_fields}
    if key == "course_start_date":
        return pm.Course._meta.get_field("start_date")
    if key in names:
        return names[key]
    return _key_field(table.parent, key) if table.parent else None
