"""Code lists of protocols, courses and safety checks (stored values are short stable codes)."""

from django.db import models


class ProtocolStatus(models.TextChoices):
    DRAFT = "draft", "Draft (being written; no course can use it)"
    ACTIVE = "active", "Active (courses are planned from it)"
    RETIRED = "retired", "Retired (kept for the courses that used it)"


class EndRule(models.TextChoices):
    """How a phase ends."""

    FIXED = "fixed", "After a fixed number of injections"
    BY_RESPONSE = "by_response", "Up to a number of injections, fewer on response"
    UNTIL_STOPPED = "until_stopped", "Until the course is stopped (progression, intolerance, death)"


class DoseRuleKind(models.TextChoices):
    FIXED = "fixed", "Fixed dose"
    ESCALATING = "escalating", "Start dose rising by a step per injection to the cap"


class CourseStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed (every planned injection given or accounted for)"
    STOPPED = "stopped", "Stopped"


class StopReason(models.TextChoices):
    RECOVERED = "recovered", "Recovered or responded (no further injections needed)"
    LOW_ICP = "low_icp", "Low intracranial pressure"
    INTOLERANCE = "intolerance", "Intolerance or toxicity"
    PROGRESSION = "progression", "Disease progression"
    DEATH = "death", "Death"
    OTHER = "other", "Other (say why)"


class InjectionStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    GIVEN = "given", "Given as planned"
    CHANGED = "changed", "Given, changed from the plan"
    MISSED = "missed", "Missed"
    CANCELLED = "cancelled", "Not given: course ended"


#: Statuses of an injection that a lumbar puncture fulfilled.
FULFILLED = frozenset({InjectionStatus.GIVEN, InjectionStatus.CHANGED})
#: Statuses of injections that were due while the course ran (the denominator of adherence).
DUE = frozenset({InjectionStatus.GIVEN, InjectionStatus.CHANGED, InjectionStatus.MISSED})


class SafetyCheck(models.TextChoices):
    """The safety checks run before an intrathecal injection is saved (protocols.safety)."""

    ABSOLUTE_CAP = "absolute_cap", "Dose above the drug's absolute intrathecal cap"
    PROTOCOL_CAP = "protocol_cap", "Dose above the protocol's cap"
    UNIT_SLIP = "unit_slip", "Dose 10×, 100× or 1000× the proposed dose (µg/mg or decimal slip)"
    INTERVAL = "interval", "Shorter interval since the last injection than the protocol allows"
    FOLIC_ACID = "folic_acid", "Pemetrexed without folic acid recorded"
    VITAMIN_B12 = "vitamin_b12", "Pemetrexed without vitamin B12 recorded"
    SUPPORTIVE_CARE = "supportive_care", "Supportive care the protocol requires is not recorded"
    PLATELETS = "platelets", "Platelets below the threshold since the last dose"
    CYTOPENIA = "cytopenia", "Grade ≥3 cytopenia since the last dose"
    LOW_ICP = "low_icp", "Low opening pressure (low intracranial pressure)"
    DRUG_NOT_IN_PROTOCOL = "drug_not_in_protocol", "A drug the protocol does not include"
    PRESERVATIVE = "preservative", "A formulation flagged as not for intrathecal use (preservative)"


class Severity(models.TextChoices):
    ERROR = "error", "Refused (cannot be overridden)"
    WARNING = "warning", "Needs an override with a reason"
