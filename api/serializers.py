"""Serializers: parse and show; the rules and the writes belong to the models and the services.

Every write serializer
- refuses keys it does not accept (unknown, or read-only such as the version, computed scores, the
  parent set by the URL, a patient's site after enrolment) with a field-level error: nothing sent
  is silently dropped;
- offers only records of the user's sites as choices for its relations, so an id from another
  site is "not found", as everywhere else;
- saves through ``record_save`` (or the LP unit of work), so model validation, locks, reasons,
  versions and history apply exactly as on the pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models import Prefetch
from rest_framework import serializers

from accounts.access import Capability, scope, site_path
from accounts.models import Site
from protocols import models as pm
from protocols.choices import ProtocolStatus, SafetyCheck, Severity, StopReason
from protocols.models import PlannedInjection
from protocols.services import AUTO, course_start, injection_record
from registry import models as m
from registry import write_hooks
from registry.choices import DeathCause
from registry.models.base import RegistryRecord
from registry.services import record_save, screening_entry_save
from review.models import SectionReview

READ_ONLY_MESSAGE = "This field is set by the registry and cannot be written through the API."


def nested_errors(error: DjangoValidationError) -> dict[str, Any]:
    """Service errors keyed 'csf.protein_g_per_l' / 'doses.1.dose_mg' → DRF's nested error shape."""
    result: dict[str, Any] = {}
    flat = error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}
    for key, messages in flat.items():
        key = "non_field_errors" if key == "__all__" else key
        parts = key.split(".")
        target = result
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target.setdefault(parts[-1], []).extend(messages)
    return result


def _as_lists(tree: Any) -> Any:
    """{'doses': {'1': {...}}} → {'doses': [{}, {...}]} where the keys are positions."""
    if isinstance(tree, dict):
        converted = {key: _as_lists(value) for key, value in tree.items()}
        if converted and all(key.isdigit() for key in converted):
            size = max(int(key) for key in converted) + 1
            return [converted.get(str(i), {}) for i in range(size)]
        return converted
    return tree


class RefusedWrite(serializers.ValidationError):
    """A 400 whose answer may carry the safety findings that refused an injection."""

    def __init__(self, detail: Any, *, findings: list[Any]) -> None:
        super().__init__(detail)
        self.findings = findings


def to_api_error(error: DjangoValidationError) -> serializers.ValidationError:
    """Field errors in DRF's nested shape; a refused injection keeps its safety findings, which the
    exception handler adds to the answer as ``safety_findings``."""
    return RefusedWrite(
        _as_lists(nested_errors(error)), findings=list(getattr(error, "findings", None) or [])
    )


class RegistrySerializer(serializers.ModelSerializer):
    """Base of the case-record serializers (see the module docstring)."""

    version = serializers.IntegerField(
        read_only=True, help_text="Send it back as If-Match to update or delete."
    )
    change_reason = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="Why the record changes (required once its section is submitted for review). "
        "The X-Change-Reason header is accepted too.",
    )

    #: Fields writable when creating but fixed afterwards (e.g. a patient's study and site).
    create_only_fields: tuple[str, ...] = ()
    #: The request body of an update as the schema shows it (``for_update``): create-only fields read-only.
    updating = False
    #: Related rows the representation reads, prefetched by the viewset for a whole page at once
    #: (so a list costs the same few queries at 10 or 200 rows).
    prefetch: tuple[str | Prefetch, ...] = ()

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        for name, field in fields.items():
            if name in self.create_only_fields and (
                self.updating or (self.instance is not None and not isinstance(self.instance, list))
            ):
                field.read_only = True
            queryset = getattr(field, "queryset", None)
            if request is not None and queryset is not None and site_path(queryset.model) is not None:
                field.queryset = scope(queryset.model._default_manager.all(), request.user)  # type: ignore[attr-defined]
        return fields

    @classmethod
    def for_update(cls) -> type[RegistrySerializer]:
        """This serializer as the body of an update (PUT, PATCH), for the schema: the create-only
        fields shown read-only, as the server treats them, so clients do not send what it refuses."""
        return _for_update(cls)

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            errors = {}
            for key in data:
                if key not in self.fields:
                    errors[key] = ["Unknown field."]
                elif self.fields[key].read_only:
                    errors[key] = [READ_ONLY_MESSAGE]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)

    # --- writes through the services -----------------------------------------------------------

    def _reason(self, validated: dict, instance: RegistryRecord, default: str) -> str:
        given = (validated.pop("change_reason", "") or self.context.get("header_reason", "")).strip()
        if given:
            return given
        needed = write_hooks.needs_reason(instance.owning_patient_id(), instance.review_section)
        return "" if needed else default

    def _save(self, instance: RegistryRecord, reason: str) -> RegistryRecord:
        """Service errors propagate: api.errors turns them into 400 (fields) or 409 (locked)."""
        return record_save(instance, actor=self.context["request"].user, reason=reason)

    def create(self, validated_data):
        reason_given = validated_data.pop("change_reason", "")
        model: type[RegistryRecord] = self.Meta.model
        instance = model(**validated_data, **self.context.get("parent", {}))
        validated_data["change_reason"] = reason_given
        return self._save(instance, self._reason(validated_data, instance, "Created via the API"))

    def update(self, instance, validated_data):
        reason = self._reason(validated_data, instance, "Changed via the API")
        for name, value in validated_data.items():
            setattr(instance, name, value)
        return self._save(instance, reason)


@cache
def _for_update(serializer: type[RegistrySerializer]) -> type[RegistrySerializer]:
    """One class per serializer (the schema names its component after it: ``PatientUpdate``)."""
    name = serializer.__name__.removesuffix("Serializer") + "UpdateSerializer"
    return type(
        name, (serializer,), {"updating": True, "__module__": __name__, "__doc__": serializer.__doc__}
    )


@cache
def serializer_for(model: type[models.Model], *, parent: str | None = None, extra_read_only=()):
    """The RegistrySerializer of a model whose parent (if any) is set by the URL (one class per model)."""
    excluded = {"created_at", "updated_at"}
    read_only = [parent] if parent else []
    meta = type(
        "Meta",
        (),
        {
            "model": model,
            "exclude": sorted(excluded),
            "read_only_fields": [*read_only, *extra_read_only],
        },
    )
    return type(f"{model.__name__}Serializer", (RegistrySerializer,), {"Meta": meta, "__module__": __name__})


class PatientSerializer(RegistrySerializer):
    """A patient; study and site are chosen at enrolment, among the user's sites, and fixed after."""

    create_only_fields = ("study", "site")
    prefetch = (
        Prefetch("section_reviews", queryset=SectionReview.objects.only("patient_id", "section", "status")),
    )
    review_status = serializers.SerializerMethodField(
        help_text="Review status of each section of the case record."
    )
    # Read-only here: a death is recorded with POST .../death/ so the death event is written with it.
    death_date = serializers.DateField(read_only=True, allow_null=True)
    death_cause = serializers.ChoiceField(choices=DeathCause.choices, read_only=True, allow_blank=True)

    class Meta:
        model = m.Patient
        exclude = ["created_at", "updated_at"]
        read_only_fields = ["death_date", "death_cause"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and not fields["site"].read_only:
            fields["site"].queryset = scope(Site.objects.all(), request.user, Capability.EDIT_RECORDS)
            fields["study"].queryset = m.Study.objects.filter(sites__in=fields["site"].queryset).distinct()
        return fields

    def get_review_status(self, patient: m.Patient) -> dict[str, str]:
        statuses = {review.section: review.status for review in patient.section_reviews.all()}
        return {section: statuses.get(section, "draft") for section in SITE_SECTIONS}


SITE_SECTIONS = ("identity", "diagnosis", "procedures", "therapy", "safety", "outcomes")


class ScreeningLogEntrySerializer(RegistrySerializer):
    """A count of the study's screening log. Study and site are chosen when it is recorded, among
    the sites where the user records screening, and fixed after; every write needs a reason."""

    create_only_fields = ("study", "site")
    change_reason = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="Why the count is recorded or changed (required; the X-Change-Reason header is accepted too).",
    )

    class Meta:
        model = m.ScreeningLogEntry
        exclude = ["created_at", "updated_at"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and not fields["site"].read_only:
            fields["site"].queryset = scope(Site.objects.all(), request.user, Capability.RECORD_SCREENING)
            fields["study"].queryset = m.Study.objects.filter(sites__in=fields["site"].queryset).distinct()
        return fields

    def _reason(self, validated: dict, instance: models.Model, default: str) -> str:
        """The reason given, never a default: the service refuses a write without one."""
        return (validated.pop("change_reason", "") or self.context.get("header_reason", "")).strip()

    def _save(self, instance, reason: str) -> m.ScreeningLogEntry:
        return screening_entry_save(entry=instance, actor=self.context["request"].user, reason=reason)


class PatientMoveSerializer(serializers.Serializer):
    site = serializers.PrimaryKeyRelatedField(queryset=Site.objects.all(), help_text="The new site's id.")
    reason = serializers.CharField(max_length=200, help_text="Why the patient moves (kept in the history).")


class DeathSerializer(serializers.Serializer):
    death_date = serializers.DateField()
    death_cause = serializers.ChoiceField(choices=DeathCause.choices)
    change_reason = serializers.CharField(max_length=200)


CsfNestedSerializer = serializer_for(m.CsfResult, parent="lumbar_puncture")
DoseNestedSerializer = serializer_for(m.IntrathecalDose, parent="lumbar_puncture")
PathogenTestNestedSerializer = serializer_for(m.PathogenTest, parent="csf_result")


class SafetyFindingSerializer(serializers.Serializer):
    """One safety finding of an injection (``protocols.safety.SafetyFinding``), for the schema."""

    code = serializers.ChoiceField(choices=SafetyCheck.choices)
    severity = serializers.ChoiceField(choices=Severity.choices)
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True, help_text="The field it concerns, e.g. doses.1.dose_mg.")
    overridable = serializers.BooleanField()


class InjectionRefusalSerializer(serializers.Serializer):
    """The 400 of an LP or dose write: field errors as elsewhere, plus what the safety checks found."""

    safety_findings = SafetyFindingSerializer(
        many=True,
        required=False,
        help_text="Present when safety checks found something; each unresolved finding also has an error "
        "under overrides.<code>.",
    )


class SafetyFields(serializers.Serializer):
    """What an intrathecal injection sent through the API adds to its data: the safety overrides
    (check code → reason) and, in a course, the planned injection it gives and why it differs.

    A write whose safety checks find something is refused with 400: the findings under
    ``safety_findings`` and one error per finding under ``overrides``; send the same request again
    with ``overrides: {"<code>": "<reason>"}`` to accept a finding that may be overridden.
    """

    overrides = serializers.DictField(
        child=serializers.CharField(max_length=300, allow_blank=False),
        required=False,
        write_only=True,
        help_text="Safety findings accepted, as {check code: reason}: " + ", ".join(SafetyCheck.values) + ".",
    )
    planned_injection = serializers.IntegerField(
        required=False,
        allow_null=True,
        write_only=True,
        help_text="The planned injection of the patient's course this LP gives (default: the next one; "
        "null: not part of the course).",
    )
    deviation_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        max_length=300,
        help_text="Why the injection differs from the plan (required when it does).",
    )

    @staticmethod
    def validate_overrides(value):
        unknown = sorted(set(value) - set(SafetyCheck.values))
        if unknown:
            raise serializers.ValidationError(
                f"Unknown safety check(s): {', '.join(unknown)}. The checks are: {', '.join(SafetyCheck.values)}."
            )
        return value

    def _safety_arguments(self, validated: dict, patient_id: int) -> dict[str, Any]:
        """Pop the safety fields; resolve the planned injection among the patient's own."""
        arguments = {
            "overrides": validated.pop("overrides", {}),
            "deviation_reason": validated.pop("deviation_reason", ""),
            "planned": AUTO,
        }
        if "planned_injection" in validated:
            pk = validated.pop("planned_injection")
            if pk is None:
                arguments["planned"] = None
            else:
                planned = PlannedInjection.objects.filter(pk=pk, course__patient_id=patient_id).first()
                if planned is None:
                    raise serializers.ValidationError(
                        {"planned_injection": ["No planned injection with this id in the patient's courses."]}
                    )
                arguments["planned"] = planned
        return arguments

    def _record(self, **kwargs):
        return injection_record(actor=self.context["request"].user, **kwargs).lumbar_puncture


class LumbarPunctureSerializer(SafetyFields, RegistrySerializer):
    """An LP; on creation its CSF result, pathogen tests and doses come with it and are saved as one,
    after the protocol's safety checks (see ``SafetyFields``)."""

    csf = CsfNestedSerializer(required=False, allow_null=True, help_text="Only when creating the LP.")
    doses = DoseNestedSerializer(many=True, required=False, help_text="Only when creating the LP.")
    pathogen_tests = PathogenTestNestedSerializer(
        many=True,
        required=False,
        write_only=True,
        help_text="Only when creating the LP (read them under its CSF).",
    )
    safety_overrides = serializers.SerializerMethodField(
        help_text="Safety findings accepted when the injection was saved: who, when and why."
    )
    prefetch = (
        "csf",
        "doses",
        Prefetch("safety_overrides", queryset=pm.SafetyOverride.objects.select_related("overridden_by")),
    )

    #: The CSF and doses of an existing LP have their own endpoints.
    create_only_fields = ("csf", "doses", "pathogen_tests")

    class Meta:
        model = m.LumbarPuncture
        exclude = ["created_at", "updated_at"]
        read_only_fields = ["patient"]

    def get_safety_overrides(self, lp: m.LumbarPuncture) -> list[dict[str, Any]]:
        return [
            {
                "check": override.check_code,
                "finding": override.finding,
                "reason": override.reason,
                "overridden_by": override.overridden_by.get_username(),
                "overridden_at": override.overridden_at,
            }
            for override in lp.safety_overrides.all()
        ]

    def create(self, validated_data):
        csf_data = validated_data.pop("csf", None)
        dose_data = validated_data.pop("doses", [])
        test_data = validated_data.pop("pathogen_tests", [])
        reason_given = validated_data.pop("change_reason", "")
        parent = self.context.get("parent", {})
        safety = self._safety_arguments(validated_data, parent["patient"].pk)
        lp = m.LumbarPuncture(**validated_data, **parent)
        validated_data["change_reason"] = reason_given
        reason = self._reason(validated_data, lp, "Recorded via the API")
        for item in (csf_data or {}, *dose_data, *test_data):
            item.pop("change_reason", None)
        return self._record(
            lp=lp,
            csf=m.CsfResult(**csf_data) if csf_data else None,
            pathogen_tests=[m.PathogenTest(**data) for data in test_data],
            doses=[m.IntrathecalDose(**data) for data in dose_data],
            reason=reason,
            **safety,
        )

    def update(self, instance, validated_data):
        """A changed time or opening pressure is checked again with the LP's doses."""
        reason = self._reason(validated_data, instance, "Changed via the API")
        safety = self._safety_arguments(validated_data, instance.patient_id)
        for name, value in validated_data.items():
            setattr(instance, name, value)
        kept = list(m.IntrathecalDose.objects.filter(lumbar_puncture=instance))
        return self._record(lp=instance, kept=kept, reason=reason, **safety)


# mypy cannot follow a base class built at run time (serializer_for): the one kind of ignore in api/.
class DoseSerializer(SafetyFields, serializer_for(m.IntrathecalDose, parent="lumbar_puncture")):  # type: ignore[misc]
    """One intrathecal dose of an LP: written with the LP's other doses through the same safety checks."""

    class Meta(serializer_for(m.IntrathecalDose, parent="lumbar_puncture").Meta):  # type: ignore[misc]
        pass

    def _write(self, dose: m.IntrathecalDose, validated: dict, default_reason: str) -> m.IntrathecalDose:
        lp = dose.lumbar_puncture
        reason = self._reason(validated, dose, default_reason)
        safety = self._safety_arguments(validated, lp.patient_id)
        for name, value in validated.items():
            setattr(dose, name, value)
        kept = list(m.IntrathecalDose.objects.filter(lumbar_puncture=lp).exclude(pk=dose.pk))
        self._record(lp=lp, doses=[dose], kept=kept, reason=reason, **safety)
        return dose

    def create(self, validated_data):
        validated_data.pop("lumbar_puncture", None)
        dose = m.IntrathecalDose(**self.context.get("parent", {}))
        return self._write(dose, validated_data, "Dose recorded via the API")

    def update(self, instance, validated_data):
        return self._write(instance, validated_data, "Dose changed via the API")


# --- protocols and courses ---------------------------------------------------------------------


class PhaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = pm.Phase
        exclude = ["created_at", "updated_at", "protocol"]


class ComponentSerializer(serializers.ModelSerializer):
    class Meta:
        model = pm.Component
        exclude = ["created_at", "updated_at", "protocol"]


class SupportiveRequirementSerializer(serializers.ModelSerializer):
    class Meta:
        model = pm.SupportiveRequirement
        exclude = ["created_at", "updated_at", "protocol"]


class ProtocolSerializer(serializers.ModelSerializer):
    """A protocol version with its phases, drug components and supportive care (read only: site
    administrators edit protocols in the admin)."""

    phases = PhaseSerializer(many=True, read_only=True)
    components = ComponentSerializer(many=True, read_only=True)
    supportive_requirements = SupportiveRequirementSerializer(many=True, read_only=True)

    class Meta:
        model = pm.Protocol
        exclude = ["created_at", "updated_at"]


class PlannedInjectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = pm.PlannedInjection
        exclude = ["created_at", "updated_at", "course"]
        read_only_fields = [
            f.name
            for f in pm.PlannedInjection._meta.concrete_fields
            if f.name not in ("created_at", "updated_at")
        ]


class CourseSerializer(RegistrySerializer):
    """A patient's course: started from an active protocol and a start date, which plans its
    injections (listed with what happened to each). Stop it or mark an injection missed with the
    ``stop`` and ``missed`` actions."""

    protocol = serializers.PrimaryKeyRelatedField(
        queryset=pm.Protocol.objects.filter(status=ProtocolStatus.ACTIVE),
        help_text="An active protocol of the study's disease area.",
    )
    injections = PlannedInjectionSerializer(many=True, read_only=True)
    # Read-only, so declared: DRF's generated field would drop the blank an active course answers.
    stop_reason = serializers.ChoiceField(choices=StopReason.choices, read_only=True, allow_blank=True)

    class Meta:
        model = pm.Course
        exclude = ["created_at", "updated_at"]
        read_only_fields = ["patient", "status", "ended_on", "stop_reason", "stop_note"]

    def create(self, validated_data):
        patient = self.context["parent"]["patient"]
        reason = self._reason(validated_data, pm.Course(patient=patient), "Course started via the API")
        return course_start(
            patient=patient,
            protocol=validated_data["protocol"],
            start_date=validated_data["start_date"],
            actor=self.context["request"].user,
            reason=reason,
        )


class CourseStopSerializer(serializers.Serializer):
    ended_on = serializers.DateField()
    stop_reason = serializers.ChoiceField(choices=StopReason.choices)
    stop_note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    change_reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class InjectionMissedSerializer(serializers.Serializer):
    injection = serializers.IntegerField(
        min_value=1, help_text="The id of the course's next planned injection."
    )
    deviation_reason = serializers.CharField(max_length=300, help_text="Why it was not given.")
