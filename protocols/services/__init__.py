"""Write services of protocols and courses (keyword-only, with the actor and the reason)."""

from .courses import course_replan, course_start, course_stop, planned_injection_mark_missed
from .injections import AUTO, InjectionOutcome, SafetyCheckError, injection_record
from .protocols import (
    formulation_ensure,
    protocol_activate,
    protocol_create,
    protocol_new_revision,
    protocol_retire,
    protocol_spec,
)

__all__ = [
    "AUTO",
    "InjectionOutcome",
    "SafetyCheckError",
    "course_replan",
    "course_start",
    "course_stop",
    "formulation_ensure",
    "injection_record",
    "planned_injection_mark_missed",
    "protocol_activate",
    "protocol_create",
    "protocol_new_revision",
    "protocol_retire",
    "protocol_spec",
]
