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
from rest_framework import serializers

from accounts.access import SITE_PATHS, Capability, scope
from registry import models as m
from registry.services import lumbar_puncture_save, record_save
from review.guards import section_is_draft
from review.models import SectionReview

READ_ONLY_MESSAGE = "This field is set by the registry and cannot be written through the API."


def nested_errors(error: DjangoValidationError) -> dict[str, Any]:
    """Service errors keyed 'csf.protein_g_per_l' / 'doses.1.dose_mg' → DRF's nested error shape."""
    result: dict[str, Any] = {}
    for key, messages in error.update_error_dict({}).items():
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


def to_api_error(error: DjangoValidationError) -> serializers.ValidationError:
    return serializers.ValidationError(_as_lists(nested_errors(error)))


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

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        for name, field in fields.items():
            if (
                self.instance is not None
                and not isinstance(self.instance, list)
                and name in self.create_only_fields
            ):
                field.read_only = True
            queryset = getattr(field, "queryset", None)
            if request is not None and queryset is not None and queryset.model._meta.model_name in SITE_PATHS:
                field.queryset = scope(queryset.model._default_manager.all(), request.user)
        return fields

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

    def _reason(self, validated: dict, instance: models.Model, default: str) -> str:
        given = (validated.pop("change_reason", "") or self.context.get("header_reason", "")).strip()
        if given:
            return given
        draft = section_is_draft(instance.owning_patient_id(), instance.review_section)
        return default if draft else ""

    def _save(self, instance: models.Model, reason: str) -> models.Model:
        try:
            return record_save(instance, actor=self.context["request"].user, reason=reason)
        except DjangoValidationError as error:
            if type(error).__name__ == "RecordLockedError":
                raise
            raise to_api_error(error) from error

    def create(self, validated_data):
        reason_given = validated_data.pop("change_reason", "")
        instance = self.Meta.model(**validated_data, **self.context.get("parent", {}))
        validated_data["change_reason"] = reason_given
        return self._save(instance, self._reason(validated_data, instance, "Created via the API"))

    def update(self, instance, validated_data):
        reason = self._reason(validated_data, instance, "Changed via the API")
        for name, value in validated_data.items():
            setattr(instance, name, value)
        return self._save(instance, reason)


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
    review_status = serializers.SerializerMethodField(
        help_text="Review status of each section of the case record."
    )
    # Read-only here: a death is recorded with POST .../death/ so the death event is written with it.
    death_date = serializers.DateField(read_only=True, allow_null=True)
    death_cause = serializers.ChoiceField(
        choices=m.Patient._meta.get_field("death_cause").choices, read_only=True, allow_blank=True
    )

    class Meta:
        model = m.Patient
        exclude = ["created_at", "updated_at"]
        read_only_fields = ["death_date", "death_cause"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and not fields["site"].read_only:
            fields["site"].queryset = scope(m.Site.objects.all(), request.user, Capability.EDIT_RECORDS)
            fields["study"].queryset = m.Study.objects.filter(sites__in=fields["site"].queryset).distinct()
        return fields

    def get_review_status(self, patient: m.Patient) -> dict[str, str]:
        statuses = dict(SectionReview.objects.filter(patient=patient).values_list("section", "status"))
        return {section: statuses.get(section, "draft") for section in SITE_SECTIONS}


SITE_SECTIONS = ("identity", "diagnosis", "procedures", "therapy", "safety", "outcomes")


class DeathSerializer(serializers.Serializer):
    death_date = serializers.DateField()
    death_cause = serializers.ChoiceField(choices=m.Patient._meta.get_field("death_cause").choices)
    change_reason = serializers.CharField(max_length=200)


CsfNestedSerializer = serializer_for(m.CsfResult, parent="lumbar_puncture")
DoseNestedSerializer = serializer_for(m.IntrathecalDose, parent="lumbar_puncture")
PathogenTestNestedSerializer = serializer_for(m.PathogenTest, parent="csf_result")


class LumbarPunctureSerializer(RegistrySerializer):
    """An LP; on creation its CSF result, pathogen tests and doses come with it and are saved as one."""

    csf = CsfNestedSerializer(required=False, allow_null=True, help_text="Only when creating the LP.")
    doses = DoseNestedSerializer(many=True, required=False, help_text="Only when creating the LP.")
    pathogen_tests = PathogenTestNestedSerializer(
        many=True,
        required=False,
        write_only=True,
        help_text="Only when creating the LP (read them under its CSF).",
    )

    class Meta:
        model = m.LumbarPuncture
        exclude = ["created_at", "updated_at"]
        read_only_fields = ["patient"]

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None:  # CSF and doses of an existing LP have their own endpoints
            for name in ("csf", "doses", "pathogen_tests"):
                fields[name].read_only = True
        return fields

    def create(self, validated_data):
        csf_data = validated_data.pop("csf", None)
        dose_data = validated_data.pop("doses", [])
        test_data = validated_data.pop("pathogen_tests", [])
        reason_given = validated_data.pop("change_reason", "")
        lp = m.LumbarPuncture(**validated_data, **self.context.get("parent", {}))
        validated_data["change_reason"] = reason_given
        reason = self._reason(validated_data, lp, "Recorded via the API")
        for item in (csf_data or {}, *dose_data, *test_data):
            item.pop("change_reason", None)
        try:
            return lumbar_puncture_save(
                lp=lp,
                csf=m.CsfResult(**csf_data) if csf_data else None,
                pathogen_tests=[m.PathogenTest(**data) for data in test_data],
                doses=[m.IntrathecalDose(**data) for data in dose_data],
                actor=self.context["request"].user,
                reason=reason,
            )
        except DjangoValidationError as error:
            if type(error).__name__ == "RecordLockedError":
                raise
            raise to_api_error(error) from error
