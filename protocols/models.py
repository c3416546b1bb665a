"""Intrathecal treatment protocols and the courses planned from them.

Reference data (not owned by a site, readable by all staff, edited by site administrators):
``Protocol`` with its ``Phase``\\ s, drug ``Component``\\ s (each with its dose rule) and
``SupportiveRequirement``\\ s, and the ``Formulation`` catalogue. A protocol is versioned: its
``revision`` counts clinical versions (``version``, as on every registry record, counts edits).
Only a draft can change; an active revision is replaced by a new draft revision, so a course always
keeps the rules it was planned with.

Patient data (owned by the patient's site, in the "procedures" section of the case record, with
history, record versions and the review workflow's locks): a ``Course`` of one patient, its
``PlannedInjection``\\ s, the ``SafetyOverride``\\ s accepted when an injection was saved, and the
``DoseFormulation`` of a recorded dose.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from registry.choices import (
    Diluent,
    DiseaseArea,
    DoseTiming,
    IntrathecalDrug,
    Section,
    SystemicTherapyCategory,
)
from registry.dosing import INTRATHECAL_DOSE_LIMITS, EscalationRule
from registry.formatting import plain
from registry.models import IntrathecalDose, LumbarPuncture, Patient
from registry.models.base import RegistryRecord
from registry.models.studies import code_validator

from .choices import (
    CourseStatus,
    DoseRuleKind,
    EndRule,
    InjectionStatus,
    ProtocolStatus,
    SafetyCheck,
    StopReason,
)
from .thresholds import PLAN_AHEAD_MAX_DAYS, PLATELET_THRESHOLD_1E9_PER_L

DRAFT_ONLY = (
    "The {what} of an active or retired protocol cannot change; create a new version of the protocol."
)


# --- protocols (reference data) ------------------------------------------------------------------


class Protocol(RegistryRecord):
    """One version (``revision``) of an intrathecal treatment protocol."""

    reference_data = True  # shared by every site: no patient, no site owns it

    code = models.CharField(
        max_length=40,
        validators=[code_validator],
        help_text="Short stable name shared by every version, e.g. 'lm-pemetrexed'.",
    )
    revision = models.PositiveSmallIntegerField(
        "protocol version", default=1, help_text="1 for the first version; a new version adds 1."
    )
    name = models.CharField(max_length=200)
    disease_area = models.CharField(max_length=16, choices=DiseaseArea.choices)
    status = models.CharField(max_length=8, choices=ProtocolStatus.choices, default=ProtocolStatus.DRAFT)
    summary = models.TextField(blank=True, help_text="The schedule in words, as the protocol states it.")
    administration = models.TextField(
        blank=True, help_text="How each injection is prepared and given (dilution, volume, rate)."
    )
    source = models.TextField(blank=True, help_text="Where the protocol comes from (study, reference).")
    min_platelets_1e9_per_l = models.DecimalField(
        "platelet threshold (×10⁹/L)",
        max_digits=6,
        decimal_places=1,
        null=True,
        blank=True,
        help_text=f"Below this an injection needs an override; empty: the registry's {plain(PLATELET_THRESHOLD_1E9_PER_L)}.",
    )
    revision_note = models.CharField(
        "what changed", max_length=300, blank=True, help_text="For a new version: what changed and why."
    )

    class Meta:
        ordering = ["disease_area", "code", "-revision"]
        constraints = [
            models.UniqueConstraint(
                fields=["code", "revision"],
                name="protocol_revision_unique",
                violation_error_message="This protocol already has a version with this number.",
            ),
            models.UniqueConstraint(
                fields=["code"],
                condition=Q(status=ProtocolStatus.ACTIVE),
                name="protocol_one_active_revision",
                violation_error_message="Another version of this protocol is active; retire it first.",
            ),
            models.CheckConstraint(condition=Q(revision__gte=1), name="protocol_revision_from_1"),
            models.CheckConstraint(
                condition=Q(min_platelets_1e9_per_l__isnull=True) | Q(min_platelets_1e9_per_l__gt=0),
                name="protocol_platelets_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (version {self.revision})"

    @property
    def platelet_threshold_1e9_per_l(self) -> Decimal:
        return self.min_platelets_1e9_per_l or PLATELET_THRESHOLD_1E9_PER_L

    @property
    def is_draft(self) -> bool:
        return self.status == ProtocolStatus.DRAFT

    def ordered_phases(self) -> list[Phase]:
        return list(self.phases.order_by("order"))

    def components_for(self, phase: Phase) -> list[Component]:
        """The components given at an injection of ``phase`` (those of every phase, and its own)."""
        return [c for c in self.components.all() if c.phase_id in (None, phase.pk)]

    def completeness_errors(self) -> list[str]:
        """What stops this protocol from planning courses (checked before it is activated)."""
        phases = self.ordered_phases()
        errors = []
        if not phases:
            errors.append("A protocol needs at least one phase.")
        for phase in phases[:-1]:
            if phase.end_rule == EndRule.UNTIL_STOPPED:
                errors.append(f"Only the last phase may run until the course is stopped ('{phase.name}').")
        components = list(self.components.all())
        if not components:
            errors.append("A protocol needs at least one drug component.")
        drugs = {c.drug for c in components}
        for requirement in self.supportive_requirements.all():
            if requirement.for_drug not in drugs:
                errors.append(
                    f"'{requirement}' applies to {IntrathecalDrug(requirement.for_drug).label}, which the protocol "
                    "does not give."
                )
        return errors

    def clean(self) -> None:
        if not self.pk:
            return
        stored = type(self)._base_manager.filter(pk=self.pk).first()
        if stored is None or stored.status == ProtocolStatus.DRAFT:
            return
        clinical = [
            "code",
            "revision",
            "disease_area",
            "summary",
            "administration",
            "min_platelets_1e9_per_l",
        ]
        changed = [name for name in clinical if getattr(stored, name) != getattr(self, name)]
        if changed:
            raise ValidationError({changed[0]: DRAFT_ONLY.format(what="content")})
        if stored.status == ProtocolStatus.RETIRED and self.status != ProtocolStatus.RETIRED:
            raise ValidationError(
                {"status": "A retired version stays retired; create a new version instead."}
            )
        if self.status == ProtocolStatus.DRAFT:
            raise ValidationError(
                {"status": "An active version cannot return to draft; create a new version."}
            )


def _protocol_is_draft(record: RegistryRecord, what: str) -> dict[str, list[str]]:
    """Refuse a new or changed part of a protocol that is no longer a draft."""
    protocol = getattr(record, "protocol", None)
    if protocol is None or not protocol.pk or protocol.is_draft:
        return {}
    row = type(record)._base_manager.filter(pk=record.pk).values().first() if record.pk else None
    stored: dict[str, Any] | None = dict(row) if row is not None else None
    bookkeeping = {"created_at", "updated_at", "version"}
    if stored is not None and all(
        stored[f.attname] == getattr(record, f.attname)
        for f in record._meta.concrete_fields
        if f.name not in bookkeeping
    ):
        return {}
    return {"__all__": [DRAFT_ONLY.format(what=what)]}


class Phase(RegistryRecord):
    """A stretch of a protocol with one rhythm: e.g. twice weekly for 4 weeks.

    Injections fall on ``days_in_cycle`` of each ``cycle_days``-day cycle ("0,3" in a 7-day cycle is
    twice weekly), ``injection_count`` times (or, for the last phase, until the course is stopped).
    A later phase starts ``gap_before_days`` after the previous phase's last injection.
    """

    reference_data = True  # shared by every site: no patient, no site owns it

    protocol = models.ForeignKey(Protocol, on_delete=models.CASCADE, related_name="phases")
    order = models.PositiveSmallIntegerField(help_text="1 for the first phase, then 2, 3, …")
    name = models.CharField(max_length=100)
    cycle_days = models.PositiveSmallIntegerField("cycle (days)", default=7)
    days_in_cycle = models.CharField(
        "injection days in each cycle",
        max_length=60,
        default="0",
        help_text="Days from the start of each cycle, comma-separated: '0,3' in a 7-day cycle is twice weekly.",
    )
    end_rule = models.CharField(max_length=16, choices=EndRule.choices, default=EndRule.FIXED)
    injection_count = models.PositiveSmallIntegerField(
        "number of injections",
        null=True,
        blank=True,
        help_text="For a fixed phase, the injections; 'by response', the most. Empty until stopped.",
    )
    gap_before_days = models.PositiveSmallIntegerField(
        "days after the previous phase",
        null=True,
        blank=True,
        help_text="From the previous phase's last injection to this phase's first (empty for phase 1).",
    )
    min_interval_hours = models.PositiveSmallIntegerField(
        "shortest interval (hours)", help_text="The least time allowed since the previous injection."
    )
    window_days = models.PositiveSmallIntegerField(
        "date window (days)",
        default=1,
        help_text="How many days an injection may move from its planned date and still count as planned.",
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["protocol", "order"]
        constraints = [
            models.UniqueConstraint(
                fields=["protocol", "order"],
                name="phase_order_unique",
                violation_error_message="The protocol already has a phase with this number.",
            ),
            models.CheckConstraint(
                condition=Q(cycle_days__gte=1),
                name="phase_cycle_positive",
                violation_error_message="A cycle lasts at least one day.",
            ),
            models.CheckConstraint(
                condition=(Q(end_rule=EndRule.UNTIL_STOPPED) & Q(injection_count__isnull=True))
                | (
                    ~Q(end_rule=EndRule.UNTIL_STOPPED)
                    & Q(injection_count__isnull=False)
                    & Q(injection_count__gte=1)
                ),
                name="phase_count_matches_end_rule",
                violation_error_message="Give the number of injections, unless the phase runs until the course is stopped (then leave it empty).",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order}. {self.name}"

    def offsets(self) -> list[int]:
        """The injection days within a cycle, as integers (validated by ``clean``)."""
        return [int(part) for part in self.days_in_cycle.replace(" ", "").split(",") if part != ""]

    @property
    def open_ended(self) -> bool:
        return self.end_rule == EndRule.UNTIL_STOPPED

    def clean(self) -> None:
        errors: dict[str, list[str]] = _protocol_is_draft(self, "phases")
        try:
            offsets = self.offsets()
        except ValueError:
            errors.setdefault("days_in_cycle", []).append("Use whole days separated by commas, e.g. '0,3'.")
        else:
            if not offsets:
                errors.setdefault("days_in_cycle", []).append("Give at least one injection day, e.g. '0'.")
            elif offsets != sorted(set(offsets)) or offsets[0] != 0:
                errors.setdefault("days_in_cycle", []).append(
                    "List the days in increasing order, starting with 0 (the first day of the cycle)."
                )
            elif self.cycle_days and offsets[-1] >= self.cycle_days:
                errors.setdefault("days_in_cycle", []).append(
                    f"Every day must fall within the {self.cycle_days}-day cycle (0 to {self.cycle_days - 1})."
                )
        if self.order == 1 and self.gap_before_days is not None:
            errors.setdefault("gap_before_days", []).append(
                "The first phase starts on the course's start date."
            )
        if self.order and self.order > 1 and self.gap_before_days is None:
            errors.setdefault("gap_before_days", []).append(
                "Say how many days after the previous phase's last injection this phase starts."
            )
        if errors:
            raise ValidationError(errors)


class Component(RegistryRecord):
    """A drug given at each injection (of one phase, or of every phase), with its dose rule."""

    reference_data = True  # shared by every site: no patient, no site owns it

    protocol = models.ForeignKey(Protocol, on_delete=models.CASCADE, related_name="components")
    phase = models.ForeignKey(
        Phase,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="components",
        help_text="Leave empty when the drug is given in every phase.",
    )
    drug = models.CharField(max_length=24, choices=IntrathecalDrug.choices)
    timing = models.CharField(max_length=8, choices=DoseTiming.choices, default=DoseTiming.WITH)
    rule = models.CharField(
        "dose rule", max_length=12, choices=DoseRuleKind.choices, default=DoseRuleKind.FIXED
    )
    dose_mg = models.DecimalField(
        "dose (mg)",
        max_digits=6,
        decimal_places=2,
        help_text="The fixed dose, or the first dose of an escalation.",
    )
    step_mg = models.DecimalField(
        "step (mg)",
        max_digits=6,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Escalation only: added per injection.",
    )
    cap_mg = models.DecimalField(
        "protocol cap (mg)",
        max_digits=6,
        decimal_places=2,
        help_text="The protocol's highest dose per injection; never above the drug's absolute intrathecal cap.",
    )
    step_back_on_toxicity = models.BooleanField(
        "step back after toxicity",
        default=False,
        help_text="Escalation only: after grade ≥3 myelosuppression or intolerable symptoms the dose returns to "
        "the previous level and stays there.",
    )
    optional = models.BooleanField(default=False, help_text="The protocol allows leaving this drug out.")
    optional_note = models.CharField(
        "when it may be left out",
        max_length=200,
        blank=True,
        help_text="E.g. 'MTX unavailable or renal impairment'.",
    )
    volume_ml = models.DecimalField("volume (mL)", max_digits=5, decimal_places=1, null=True, blank=True)
    diluent = models.CharField(max_length=16, choices=Diluent.choices, blank=True)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["protocol", "phase__order", "timing", "drug"]
        constraints = [
            models.CheckConstraint(condition=Q(dose_mg__gt=0), name="component_dose_positive"),
            models.CheckConstraint(
                condition=Q(dose_mg__lte=F("cap_mg")),
                name="component_dose_within_cap",
                violation_error_message="The dose cannot be above the protocol's cap.",
            ),
            models.CheckConstraint(
                # Spelled out: a NULL step would make "step_mg > 0" unknown, which a CHECK lets through.
                condition=~Q(rule=DoseRuleKind.ESCALATING) | (Q(step_mg__isnull=False) & Q(step_mg__gt=0)),
                name="component_escalation_has_step",
                violation_error_message="An escalating dose needs a step (mg added per injection).",
            ),
            models.CheckConstraint(
                condition=~Q(rule=DoseRuleKind.FIXED) | Q(step_mg__isnull=True),
                name="component_fixed_has_no_step",
                violation_error_message="A fixed dose has no step; leave it empty or choose an escalating dose.",
            ),
            models.CheckConstraint(
                condition=Q(volume_ml__isnull=True) | (Q(volume_ml__gt=0) & Q(volume_ml__lte=50)),
                name="component_volume_range",
            ),
            # A protocol cap can never exceed the drug's absolute cap: the one table in registry.dosing.
            *(
                models.CheckConstraint(
                    condition=Q(cap_mg__lte=limit.max_mg) | ~Q(drug=limit.drug),
                    name=f"component_{limit.drug}_cap",
                    violation_error_message=(
                        f"The protocol cap cannot be above the absolute intrathecal cap of {plain(limit.max_mg)} mg "
                        f"for {limit.drug.label.lower()}."
                    ),
                )
                for limit in INTRATHECAL_DOSE_LIMITS.values()
            ),
        ]

    def __str__(self) -> str:
        label = IntrathecalDrug(self.drug).label
        if self.rule == DoseRuleKind.ESCALATING:
            dose = f"{plain(self.dose_mg)} mg + {plain(self.step_mg)} mg per injection to {plain(self.cap_mg)} mg"
        else:
            dose = f"{plain(self.dose_mg)} mg"
        when = "" if self.timing == DoseTiming.WITH else f" ({DoseTiming(self.timing).label.lower()})"
        return f"{label} {dose}{when}{' (optional)' if self.optional else ''}"

    def escalation(self) -> EscalationRule | None:
        if self.rule != DoseRuleKind.ESCALATING or self.step_mg is None:
            return None  # an escalating component without a step is refused by clean()
        return EscalationRule(self.dose_mg, self.step_mg, self.cap_mg)

    def clean(self) -> None:
        errors: dict[str, list[str]] = _protocol_is_draft(self, "drug components")
        if self.drug == IntrathecalDrug.OTHER:
            errors.setdefault("drug", []).append(
                "A protocol names its drugs; 'Other' has no intrathecal cap to check doses against."
            )
        if self.phase is not None and self.protocol_id and self.phase.protocol_id != self.protocol_id:
            errors.setdefault("phase", []).append("That phase belongs to another protocol.")
        if self.rule == DoseRuleKind.ESCALATING and not self.step_mg:
            errors.setdefault("step_mg", []).append(
                "An escalating dose needs a step (mg added per injection)."
            )
        if self.rule == DoseRuleKind.FIXED and self.step_mg is not None:
            errors.setdefault("step_mg", []).append(
                "A fixed dose has no step; leave it empty or choose an escalating dose."
            )
        if self.step_back_on_toxicity and self.rule != DoseRuleKind.ESCALATING:
            errors.setdefault("step_back_on_toxicity", []).append("Only an escalating dose can step back.")
        if self.optional_note and not self.optional:
            errors.setdefault("optional_note", []).append("Tick 'optional' or leave this empty.")
        if errors:
            raise ValidationError(errors)


class SupportiveRequirement(RegistryRecord):
    """Systemic supportive care that must be recorded before and during the injections of a drug."""

    reference_data = True  # shared by every site: no patient, no site owns it

    protocol = models.ForeignKey(Protocol, on_delete=models.CASCADE, related_name="supportive_requirements")
    category = models.CharField(max_length=24, choices=SystemicTherapyCategory.choices)
    for_drug = models.CharField(
        "needed with", max_length=24, choices=IntrathecalDrug.choices, default=IntrathecalDrug.PEMETREXED
    )
    description = models.CharField(max_length=200, help_text="E.g. 'folic acid 400 µg orally, daily'.")
    lead_min_days = models.PositiveSmallIntegerField("start at least (days before the first dose)", default=0)
    lead_max_days = models.PositiveSmallIntegerField(
        "start at most (days before the first dose)", null=True, blank=True
    )
    repeat_days = models.PositiveSmallIntegerField(
        "repeat every (days)",
        null=True,
        blank=True,
        help_text="A single administration covers this many days (vitamin B12 every 9 weeks: 63). Empty: a "
        "continuous regimen that must be ongoing at each injection.",
    )

    class Meta:
        ordering = ["protocol", "category"]
        constraints = [
            models.UniqueConstraint(
                fields=["protocol", "category", "for_drug"],
                name="supportive_requirement_once",
                violation_error_message="The protocol already requires this supportive care with this drug.",
            ),
            models.CheckConstraint(
                condition=Q(lead_max_days__isnull=True) | Q(lead_max_days__gte=F("lead_min_days")),
                name="supportive_lead_window_ordered",
                violation_error_message="The latest start cannot be earlier than the earliest.",
            ),
            models.CheckConstraint(
                condition=Q(repeat_days__isnull=True) | Q(repeat_days__gte=1),
                name="supportive_repeat_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.description

    def clean(self) -> None:
        errors = _protocol_is_draft(self, "supportive requirements")
        if errors:
            raise ValidationError(errors)


class Formulation(RegistryRecord):
    """A product that may be drawn up for an intrathecal injection, and whether it is safe there."""

    reference_data = True  # shared by every site: no patient, no site owns it

    drug = models.CharField(max_length=24, choices=IntrathecalDrug.choices)
    name = models.CharField(max_length=200, unique=True)
    preservative_free = models.BooleanField(default=True)
    intrathecal_use = models.BooleanField(
        "suitable for intrathecal use",
        default=True,
        help_text="Untick for products flagged as not for intrathecal use (e.g. with benzyl alcohol).",
    )
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["drug", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def flagged(self) -> bool:
        """Not for intrathecal use: it contains a preservative or is flagged as unsuitable."""
        return not (self.preservative_free and self.intrathecal_use)


# --- courses (patient data) ----------------------------------------------------------------------


class Course(RegistryRecord):
    """A patient's course of intrathecal therapy, planned from one protocol version."""

    review_section = Section.PROCEDURES
    patient_lookup = "patient"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="intrathecal_courses")
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="courses")
    start_date = models.DateField(help_text="The date of the first planned injection.")
    status = models.CharField(max_length=12, choices=CourseStatus.choices, default=CourseStatus.ACTIVE)
    ended_on = models.DateField(null=True, blank=True)
    stop_reason = models.CharField(max_length=16, choices=StopReason.choices, blank=True)
    stop_note = models.CharField(max_length=300, blank=True, help_text="Required when the reason is 'Other'.")

    class Meta:
        ordering = ["patient", "start_date"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient"],
                condition=Q(status=CourseStatus.ACTIVE),
                name="course_one_active_per_patient",
                violation_error_message="This patient already has an active course; stop it first.",
            ),
            models.CheckConstraint(
                condition=(Q(status=CourseStatus.ACTIVE) & Q(ended_on__isnull=True) & Q(stop_reason=""))
                | (Q(status=CourseStatus.COMPLETED) & Q(ended_on__isnull=False) & Q(stop_reason=""))
                | (Q(status=CourseStatus.STOPPED) & Q(ended_on__isnull=False) & ~Q(stop_reason="")),
                name="course_end_matches_status",
                violation_error_message="A stopped course needs its date and reason; an active one has neither.",
            ),
            models.CheckConstraint(
                condition=~Q(stop_reason=StopReason.OTHER) | ~Q(stop_note=""),
                name="course_other_reason_explained",
                violation_error_message="Say why the course stopped when the reason is 'Other'.",
            ),
            models.CheckConstraint(
                condition=Q(ended_on__isnull=True) | Q(ended_on__gte=F("start_date")),
                name="course_ends_after_start",
                violation_error_message="A course cannot end before it starts.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.protocol.name} v{self.protocol.revision} from {self.start_date:%Y-%m-%d}"

    @property
    def is_active(self) -> bool:
        return self.status == CourseStatus.ACTIVE

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.patient_id and self.protocol_id:
            area = self.patient.study.disease_area
            if self.protocol.disease_area != area:
                errors.setdefault("protocol", []).append(
                    f"{self.protocol} is a protocol for {DiseaseArea(self.protocol.disease_area).label}; "
                    f"{self.patient} is in a {DiseaseArea(area).label} study."
                )
            if self.pk is None and self.protocol.status != ProtocolStatus.ACTIVE:
                errors.setdefault("protocol", []).append(
                    "Courses are planned from the active version of a protocol only."
                )
        if self.patient_id:
            earliest = self.patient.earliest_possible_date
            for field, what in (("start_date", "course start"), ("ended_on", "course end")):
                day = getattr(self, field)
                if day is None:
                    continue
                if earliest and day < earliest:
                    errors.setdefault(field, []).append(
                        f"The {what} ({day:%Y-%m-%d}) is before the patient's birth."
                    )
                if self.patient.death_date and day > self.patient.death_date:
                    errors.setdefault(field, []).append(
                        f"The {what} ({day:%Y-%m-%d}) is after the patient's recorded death "
                        f"({self.patient.death_date:%Y-%m-%d})."
                    )
        if self.ended_on and self.ended_on > timezone.localdate():
            errors.setdefault("ended_on", []).append(f"{self.ended_on:%Y-%m-%d} is in the future.")
        latest_start = timezone.localdate() + dt.timedelta(days=PLAN_AHEAD_MAX_DAYS)
        if self.start_date and self.start_date > latest_start:
            errors.setdefault("start_date", []).append(
                f"A course can be planned at most {PLAN_AHEAD_MAX_DAYS} days ahead (until {latest_start:%Y-%m-%d})."
            )
        if errors:
            raise ValidationError(errors)


class PlannedInjection(RegistryRecord):
    """One injection of a course: when it was planned, what was proposed, and what happened."""

    review_section = Section.PROCEDURES
    patient_lookup = "course__patient"

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="injections")
    sequence = models.PositiveSmallIntegerField(help_text="1 for the course's first injection, then 2, 3, …")
    phase = models.ForeignKey(Phase, on_delete=models.PROTECT, related_name="+")
    planned_date = models.DateField()
    proposed_doses = models.JSONField(
        default=list,
        blank=True,
        help_text="The doses the protocol's rules proposed: [{'drug', 'dose_mg', 'timing'}, …].",
    )
    status = models.CharField(max_length=12, choices=InjectionStatus.choices, default=InjectionStatus.PLANNED)
    lumbar_puncture = models.OneToOneField(
        LumbarPuncture,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="planned_injection",
        help_text="The lumbar puncture or Ommaya tap that gave this injection.",
    )
    deviation = models.TextField(
        blank=True, help_text="What differed from the plan (written by the registry)."
    )
    deviation_reason = models.CharField(
        "reason for the deviation", max_length=300, blank=True, help_text="Why it was changed or missed."
    )

    class Meta:
        ordering = ["course", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["course", "sequence"],
                name="planned_injection_sequence_unique",
                violation_error_message="The course already has an injection with this number.",
            ),
            models.CheckConstraint(
                condition=(
                    Q(status__in=[InjectionStatus.GIVEN, InjectionStatus.CHANGED])
                    & Q(lumbar_puncture__isnull=False)
                )
                | (
                    Q(status__in=[InjectionStatus.PLANNED, InjectionStatus.MISSED, InjectionStatus.CANCELLED])
                    & Q(lumbar_puncture__isnull=True)
                ),
                name="planned_injection_lp_matches_status",
                violation_error_message="A given injection needs its lumbar puncture; any other has none.",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[InjectionStatus.CHANGED, InjectionStatus.MISSED])
                | ~Q(deviation_reason=""),
                name="planned_injection_deviation_explained",
                violation_error_message="Give the reason for a changed or missed injection.",
            ),
        ]

    def __str__(self) -> str:
        return f"Injection {self.sequence} planned for {self.planned_date:%Y-%m-%d}"

    @property
    def fulfilled(self) -> bool:
        return self.status in (InjectionStatus.GIVEN, InjectionStatus.CHANGED)

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        lp = self.lumbar_puncture if self.lumbar_puncture_id else None
        if lp is not None and self.course_id and lp.patient_id != self.course.patient_id:
            errors["lumbar_puncture"] = ["That lumbar puncture belongs to another patient."]
        if self.phase_id and self.course_id and self.phase.protocol_id != self.course.protocol_id:
            errors["phase"] = ["That phase belongs to another protocol than the course's."]
        if errors:
            raise ValidationError(errors)


class SafetyOverride(RegistryRecord):
    """A safety finding someone accepted, with their reason, when an injection was saved."""

    review_section = Section.PROCEDURES
    patient_lookup = "lumbar_puncture__patient"

    lumbar_puncture = models.ForeignKey(
        LumbarPuncture, on_delete=models.CASCADE, related_name="safety_overrides"
    )
    check_code = models.CharField("safety check", max_length=24, choices=SafetyCheck.choices)
    finding = models.TextField(help_text="What the check said when it was overridden.")
    reason = models.CharField(max_length=300)
    overridden_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    overridden_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["lumbar_puncture", "check_code"]
        constraints = [
            models.UniqueConstraint(
                fields=["lumbar_puncture", "check_code"],
                name="safety_override_once_per_check",
                violation_error_message="This check is already overridden for this lumbar puncture.",
            ),
            models.CheckConstraint(
                condition=~Q(reason=""),
                name="safety_override_has_reason",
                violation_error_message="An override needs a reason.",
            ),
        ]

    def __str__(self) -> str:
        return f"Override of '{self.get_check_code_display()}'"


class DoseFormulation(RegistryRecord):
    """The product a recorded intrathecal dose was drawn from."""

    review_section = Section.PROCEDURES
    patient_lookup = "dose__lumbar_puncture__patient"

    dose = models.OneToOneField(IntrathecalDose, on_delete=models.CASCADE, related_name="formulation_record")
    formulation = models.ForeignKey(Formulation, on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name = "dose formulation"

    def __str__(self) -> str:
        return f"{self.dose}: {self.formulation}"

    def clean(self) -> None:
        if self.dose_id and self.formulation_id and self.dose.drug != self.formulation.drug:
            raise ValidationError(
                {
                    "formulation": f"{self.formulation} is not a {IntrathecalDrug(self.dose.drug).label.lower()} product."
                }
            )
