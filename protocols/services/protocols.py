"""Writing protocols: create one from a specification, activate it, start its next version, retire it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from accounts.models import User
from registry.services import record_save

from ..choices import ProtocolStatus
from ..models import Component, Formulation, Phase, Protocol, SupportiveRequirement

PROTOCOL_FIELDS = (
    "code",
    "revision",
    "name",
    "disease_area",
    "summary",
    "administration",
    "source",
    "min_platelets_1e9_per_l",
    "revision_note",
)
PHASE_FIELDS = (
    "order",
    "name",
    "cycle_days",
    "days_in_cycle",
    "end_rule",
    "injection_count",
    "gap_before_days",
    "min_interval_hours",
    "window_days",
    "description",
)
COMPONENT_FIELDS = (
    "drug",
    "timing",
    "rule",
    "dose_mg",
    "step_mg",
    "cap_mg",
    "step_back_on_toxicity",
    "optional",
    "optional_note",
    "volume_ml",
    "diluent",
    "note",
)
REQUIREMENT_FIELDS = ("category", "for_drug", "description", "lead_min_days", "lead_max_days", "repeat_days")
DECIMALS = {"dose_mg", "step_mg", "cap_mg", "volume_ml", "min_platelets_1e9_per_l"}


def _values(spec: Mapping[str, Any], fields: Sequence[str], where: str) -> dict[str, Any]:
    unknown = set(spec) - set(fields) - {"phase", "phases", "components", "supportive_requirements"}
    if unknown:
        raise ValidationError({where: f"Unknown field(s): {', '.join(sorted(unknown))}."})
    return {
        name: Decimal(str(value)) if name in DECIMALS and value is not None else value
        for name, value in spec.items()
        if name in fields
    }


def _save(obj, errors: dict[str, list[str]], where: str, *, actor: User, reason: str):
    try:
        return record_save(obj, actor=actor, reason=reason)
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            errors.setdefault(f"{where}.{field}", []).extend(messages)
        return None


@transaction.atomic
def protocol_create(*, spec: Mapping[str, Any], actor: User, reason: str) -> Protocol:
    """A draft protocol with its phases, components and supportive requirements, from a specification.

    The specification is the fixture format (``protocols/fixtures/seed_protocols.json``); a component's
    ``phase`` is the order of its phase, or null for every phase. Every record is validated like a form
    entry; errors come back keyed by where they are (``components.1.cap_mg``) and nothing is written.
    """
    errors: dict[str, list[str]] = {}
    protocol = Protocol(**_values(spec, PROTOCOL_FIELDS, "protocol"), status=ProtocolStatus.DRAFT)
    if _save(protocol, errors, "protocol", actor=actor, reason=reason) is None:
        raise ValidationError(errors)
    phases: dict[int, Phase] = {}
    for index, phase_spec in enumerate(spec.get("phases", ())):
        phase = _save(
            Phase(protocol=protocol, **_values(phase_spec, PHASE_FIELDS, f"phases.{index}")),
            errors,
            f"phases.{index}",
            actor=actor,
            reason=reason,
        )
        if phase is not None:
            phases[phase.order] = phase
    for index, component_spec in enumerate(spec.get("components", ())):
        order = component_spec.get("phase")
        if order is not None and order not in phases:
            errors.setdefault(f"components.{index}.phase", []).append(f"The protocol has no phase {order}.")
            continue
        _save(
            Component(
                protocol=protocol,
                phase=phases.get(order) if order is not None else None,
                **_values(component_spec, COMPONENT_FIELDS, f"components.{index}"),
            ),
            errors,
            f"components.{index}",
            actor=actor,
            reason=reason,
        )
    for index, requirement_spec in enumerate(spec.get("supportive_requirements", ())):
        _save(
            SupportiveRequirement(
                protocol=protocol,
                **_values(requirement_spec, REQUIREMENT_FIELDS, f"supportive_requirements.{index}"),
            ),
            errors,
            f"supportive_requirements.{index}",
            actor=actor,
            reason=reason,
        )
    if errors:
        raise ValidationError(errors)
    return protocol


@transaction.atomic
def protocol_activate(*, protocol: Protocol, actor: User, reason: str) -> Protocol:
    """Make a complete draft the active version; the version active until now is retired.

    Courses keep the version they were planned with, so activating changes only new courses.
    """
    protocol = Protocol.objects.select_for_update().get(pk=protocol.pk)
    if protocol.status != ProtocolStatus.DRAFT:
        raise ValidationError({"status": "Only a draft can be activated."})
    problems = protocol.completeness_errors()
    if problems:
        raise ValidationError({"__all__": problems})
    for current in Protocol.objects.select_for_update().filter(
        code=protocol.code, status=ProtocolStatus.ACTIVE
    ):
        current.status = ProtocolStatus.RETIRED
        record_save(current, actor=actor, reason=f"Replaced by version {protocol.revision}: {reason}")
    protocol.status = ProtocolStatus.ACTIVE
    return record_save(protocol, actor=actor, reason=reason)


@transaction.atomic
def protocol_retire(*, protocol: Protocol, actor: User, reason: str) -> Protocol:
    """No new course is planned from this version; courses already planned keep it."""
    if protocol.status == ProtocolStatus.RETIRED:
        return protocol
    protocol.status = ProtocolStatus.RETIRED
    return record_save(protocol, actor=actor, reason=reason)


@transaction.atomic
def protocol_new_revision(*, protocol: Protocol, actor: User, reason: str) -> Protocol:
    """A draft copy of ``protocol`` numbered after the highest version of its code, to edit."""
    highest = Protocol.objects.filter(code=protocol.code).aggregate(Max("revision"))["revision__max"]
    spec = protocol_spec(protocol) | {"revision": highest + 1, "revision_note": reason}
    return protocol_create(spec=spec, actor=actor, reason=f"New version of {protocol}: {reason}")


def protocol_spec(protocol: Protocol) -> dict[str, Any]:
    """A protocol as its specification (the fixture format), e.g. to copy it or to export it."""

    def plain_values(obj, fields):
        values = {}
        for name in fields:
            value = getattr(obj, name)
            values[name] = str(value) if isinstance(value, Decimal) else value
        return values

    phases = protocol.ordered_phases()
    return {
        **plain_values(protocol, PROTOCOL_FIELDS),
        "phases": [plain_values(phase, PHASE_FIELDS) for phase in phases],
        "components": [
            plain_values(component, COMPONENT_FIELDS)
            | {"phase": component.phase.order if component.phase else None}
            for component in protocol.components.select_related("phase")
        ],
        "supportive_requirements": [
            plain_values(requirement, REQUIREMENT_FIELDS)
            for requirement in protocol.supportive_requirements.all()
        ],
    }


@transaction.atomic
def formulation_ensure(*, spec: Mapping[str, Any], actor: User, reason: str) -> Formulation:
    """The catalogue entry with this name, created from the specification if missing."""
    existing = Formulation.objects.filter(name=spec["name"]).first()
    if existing is not None:
        return existing
    return record_save(Formulation(**dict(spec)), actor=actor, reason=reason)
