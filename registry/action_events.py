"""Workflow actions as events of the audit trail: the kinds, and the hook lower apps emit them through.

Row history says *what* changed; an action event says *what happened and why* (submitted, locked with
a signature, query closed, course stopped, data exported). The event table lives in ``audit``, a
floor above review and protocols, so those apps cannot import it: they call ``emit()`` here, and
``AuditConfig.ready()`` registers the recorder that writes the row. Apps above audit (exchange,
analytics) call ``audit.services.action_event_record`` directly; both end in the same service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models


class ActionKind(models.TextChoices):
    SECTION_SUBMITTED = "section_submitted", "Section submitted"
    SECTION_VERIFIED = "section_verified", "Section verified"
    SECTION_LOCKED = "section_locked", "Section locked (signed)"
    SECTION_UNLOCKED = "section_unlocked", "Section unlocked (signed)"
    QUERY_RAISED = "query_raised", "Query raised"
    QUERY_ANSWERED = "query_answered", "Query answered"
    QUERY_CLOSED = "query_closed", "Query closed"
    QUERY_REOPENED = "query_reopened", "Query reopened"
    COURSE_STARTED = "course_started", "Course started"
    COURSE_STOPPED = "course_stopped", "Course stopped"
    INJECTION_MISSED = "injection_missed", "Injection missed"
    SAFETY_OVERRIDDEN = "safety_overridden", "Safety finding overridden"
    EXPORT = "export", "De-identified export"
    IDENTIFIED_EXPORT = "identified_export", "Identified export"
    IMPORT_APPLIED = "import_applied", "Import applied"
    REPORT_DEFINITION_SAVED = "report_definition_saved", "Report definition saved"


@dataclass(frozen=True)
class Action:
    """One workflow action: who (None: the system, e.g. a data-quality rule), on what, from → to, why.

    ``patient_id`` is the patient the action is about (found from ``record`` when not given);
    ``patient_ids`` or ``patient_codes`` (study codes within ``study_id``) the patients an action over
    many covers (an export, an import). ``signature_meaning`` and ``signer`` are set for signed steps.
    """

    kind: ActionKind
    actor: Any
    study_id: int | None = None
    patient_id: int | None = None
    patient_ids: Iterable[int] = ()
    patient_codes: Iterable[str] = ()
    section: str = ""
    record: models.Model | None = None
    object_label: str = ""
    old_state: str = ""
    new_state: str = ""
    reason: str = ""
    signature_meaning: str = ""
    signer: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


Recorder = Callable[[Action], object]
_recorders: list[Recorder] = []


def register(recorder: Recorder) -> None:
    """Set the recorder (once: registering again replaces it, so reloading an app does not double rows)."""
    _recorders[:] = [recorder]


def emit(event: Action) -> None:
    """Record the event in the current transaction; an action without its event must not happen."""
    if not _recorders:
        raise ImproperlyConfigured("No action-event recorder is registered (is the audit app installed?).")
    for recorder in _recorders:
        recorder(event)
