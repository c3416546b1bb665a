"""A data query's step as a workflow action: one shape for the people who answer queries and the
quality rules that raise and close them, so the history and the audit CSV read the same for both."""

from __future__ import annotations

from accounts.models import User
from registry.action_events import Action, ActionKind, emit

from .models import DataQuery


def query_event(kind: ActionKind, query: DataQuery, *, actor: User | None, old: str, text: str = "") -> None:
    """Record ``query``'s step ``kind`` (``old`` → its current status); ``actor`` None is the system."""
    emit(
        Action(
            kind=kind,
            actor=actor,
            patient_id=query.patient_id,
            study_id=query.patient.study_id,
            section=query.section,
            record=query,
            object_label=f"Query #{query.pk}: {query.message[:200]}",
            old_state=old,
            new_state=query.status,
            reason=text,
            detail={"origin": query.origin, "rule": query.rule_code} if query.rule_code else {},
        )
    )
