"""API viewsets: thin, scoped to the user's sites, every write through the services.

Updates and deletes need ``If-Match`` with the record's ETag (its version): a missing header answers
428, a stale one 412 with the current ETag, and a save that loses a race 409.
"""

from __future__ import annotations

from typing import cast

from django.db.models import Prefetch
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from accounts.access import (
    Capability,
    get_scoped_by_pk_or_404,
    has_capability,
    scope,
    site_of,
)
from accounts.audited import AuditedRecord
from accounts.models import Site, User
from audit.models import SecurityEventKind
from audit.services import security_event_record
from protocols import models as pm
from protocols.services import course_stop, injection_record, planned_injection_mark_missed
from registry import models as m
from registry import write_hooks
from registry.models.base import RegistryRecord
from registry.services import (
    patient_move_site,
    patient_record_death,
    record_delete,
    screening_entry_delete,
)

from . import serializers as s
from .permissions import CaseRecordPermission

ERROR = OpenApiResponse(
    OpenApiTypes.OBJECT, description="Field-level errors, or why the request was refused."
)
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="The record's ETag, as returned when it was read.",
)
REASON = OpenApiParameter(
    "X-Change-Reason",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Why the record changes (required once its section is submitted for review).",
)
REASON_ALWAYS = OpenApiParameter(
    "X-Change-Reason",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Why the record changes: required for every write and delete here (or `change_reason` in the body).",
)
WRITE_RESPONSES = {400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR, 412: ERROR, 428: ERROR}
#: The 400 of an intrathecal injection (an LP or its doses): field errors and the safety findings.
INJECTION_REFUSED = OpenApiResponse(
    s.InjectionRefusalSerializer,
    description="Field-level errors; when safety checks found something, the findings and one error per "
    "finding under `overrides` (send `overrides: {code: reason}` to accept a warning).",
)


MAX_DATABASE_ID = 2**63 - 1


def _is_database_id(value) -> bool:
    """A path id the database can look up (beyond bigint, PostgreSQL would fail instead of not finding)."""
    return str(value).isdigit() and int(value) <= MAX_DATABASE_ID


def etag(instance: AuditedRecord) -> str:
    return f'"{instance.version}"'


def _schema_for_writes(viewset, refused: OpenApiResponse = ERROR, reason: OpenApiParameter = REASON):
    # An update's body leaves out what only a creation sets (a patient's study, an LP's CSF).
    serializer = viewset.serializer_class
    body = {"request": serializer.for_update()} if serializer.create_only_fields else {}
    return extend_schema_view(
        create=extend_schema(
            parameters=[reason],
            responses={201: viewset.serializer_class, 400: refused, 403: ERROR, 404: ERROR, 409: ERROR},
        ),
        update=extend_schema(
            parameters=[IF_MATCH, reason],
            responses={200: viewset.serializer_class, **WRITE_RESPONSES, 400: refused},
            **body,
        ),
        partial_update=extend_schema(
            parameters=[IF_MATCH, reason],
            responses={200: viewset.serializer_class, **WRITE_RESPONSES, 400: refused},
            **body,
        ),
        destroy=extend_schema(
            parameters=[IF_MATCH, reason], responses={204: None, **WRITE_RESPONSES, 400: refused}
        ),
        retrieve=extend_schema(responses={200: viewset.serializer_class, 404: ERROR}),
    )(viewset)


class RegistryViewSet(viewsets.ModelViewSet):
    """CRUD of one registry model, optionally under a parent given by the URL."""

    model: type[RegistryRecord]
    parent_model: type[RegistryRecord] | None = None
    parent_kwarg: str = ""
    parent_field: str = ""
    view_capability = Capability.VIEW_RECORDS
    write_capability = Capability.EDIT_RECORDS
    permission_classes = [CaseRecordPermission]
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    ordering = ["pk"]
    lookup_value_regex = r"\d+"
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_object(self):
        """The record, read once per request: an update checks its ETag and then DRF's update reads
        it again, each time with the serializer's prefetches (a third of a PATCH's time).

        It is linked to the parent the URL names, which ``_parent`` has read and checked, before the
        object permission walks it to the site: a pathogen test's write read its CSF result and LP
        again (19 queries, now 17)."""
        if not hasattr(self, "_object"):
            lookup = self.lookup_url_kwarg or self.lookup_field
            if not _is_database_id(self.kwargs.get(lookup)):
                raise NotFound()
            record = generics.get_object_or_404(
                self.filter_queryset(self.get_queryset()), **{self.lookup_field: self.kwargs[lookup]}
            )
            if (parent := self._parent()) is not None:
                setattr(record, self.parent_field, parent)
            self.check_object_permissions(self.request, record)
            self._object = record
        return self._object

    def _parent(self):
        if not self.parent_model:
            return None
        if not hasattr(self, "_parent_object"):
            raw = self.kwargs.get(self.parent_kwarg, "")
            if not _is_database_id(raw):
                raise NotFound()
            parent = get_scoped_by_pk_or_404(
                self.parent_model, self.request.user, self.view_capability, int(raw)
            )
            # Deeper routes repeat the patient: the parent must really be that patient's.
            patient_pk = self.kwargs.get("patient_pk")
            if patient_pk is not None and str(parent.owning_patient_id()) != str(patient_pk):
                raise NotFound()
            self._parent_object = parent
        return self._parent_object

    def get_queryset(self):
        queryset = scope(self.model._default_manager.all(), self.request.user, self.view_capability)
        parent = self._parent()
        if parent is not None:
            queryset = queryset.filter(**{self.parent_field: parent})
        return queryset.prefetch_related(*getattr(self.get_serializer_class(), "prefetch", ())).order_by("pk")

    def get_serializer_context(self):
        context = dict(super().get_serializer_context())
        context["header_reason"] = self.request.headers.get("X-Change-Reason", "")
        if self.parent_model and getattr(self, "request", None) is not None and "pk" not in self.kwargs:
            context["parent"] = {self.parent_field: self._parent()}
        return context

    def perform_create(self, serializer):
        parent = self._parent()
        if parent is not None:
            site = site_of(parent)
            if not has_capability(self.request.user, self.write_capability, site):
                raise PermissionDenied("Your role does not allow changes to case records at this site.")
        serializer.save()

    def retrieve(self, request, *args, **kwargs):
        instance = self.get_object()
        response = Response(self.get_serializer(instance).data)
        response["ETag"] = etag(instance)
        return response

    def _precondition(self, instance) -> Response | None:
        given = self.request.headers.get("If-Match")
        if not given:
            return Response(
                {"detail": "Send If-Match with the record's ETag (read it first) to change it."},
                status=status.HTTP_428_PRECONDITION_REQUIRED,
            )
        if given.strip() not in (etag(instance), f"W/{etag(instance)}"):
            response = Response(
                {"detail": "The record has changed since you read it; read it again."},
                status=status.HTTP_412_PRECONDITION_FAILED,
            )
            response["ETag"] = etag(instance)
            return response
        return None

    def update(self, request, *args, **kwargs):
        refused = self._precondition(self.get_object())
        if refused is not None:
            return refused
        response = super().update(request, *args, **kwargs)
        response["ETag"] = f'"{response.data["version"]}"'
        return response

    def destroy(self, request, *args, **kwargs):
        instance = self.get_object()
        refused = self._precondition(instance)
        if refused is not None:
            return refused
        reason = request.headers.get("X-Change-Reason", "").strip()
        if not reason and self.delete_needs_reason(instance):
            return Response(
                {"X-Change-Reason": [self.delete_reason_message]}, status=status.HTTP_400_BAD_REQUEST
            )
        self.perform_delete(instance, reason=reason or "Deleted via the API")
        return Response(status=status.HTTP_204_NO_CONTENT)

    delete_reason_message = "Give a reason: the record's section was submitted for review."

    def delete_needs_reason(self, instance) -> bool:
        return write_hooks.needs_reason(instance.owning_patient_id(), instance.review_section)

    def perform_delete(self, instance, *, reason: str) -> None:
        record_delete(instance, actor=cast(User, self.request.user), reason=reason)  # permission: signed in


def registry_viewset(
    model,
    *,
    parent_model=None,
    parent_kwarg="",
    parent_field="",
    serializer=None,
    filterset_fields=(),
    capability=Capability.VIEW_RECORDS,
    write_capability=Capability.EDIT_RECORDS,
    refused: OpenApiResponse = ERROR,
    reason: OpenApiParameter = REASON,
):
    """Build the viewset of one model (with its OpenAPI description; ``refused``: its 400 answer;
    ``reason``: when its writes need a reason)."""
    serializer = serializer or s.serializer_for(model, parent=parent_field or None)
    attrs = {
        "model": model,
        "queryset": model._default_manager.all(),
        "serializer_class": serializer,
        "parent_model": parent_model,
        "parent_kwarg": parent_kwarg,
        "parent_field": parent_field,
        "filterset_fields": list(filterset_fields),
        "ordering_fields": [f.name for f in model._meta.concrete_fields if not f.is_relation],
        "view_capability": capability,
        "write_capability": write_capability,
        "__doc__": f"{str(model._meta.verbose_name_plural).capitalize()}, scoped to your sites.",
    }
    viewset = type(f"{model.__name__}ViewSet", (RegistryViewSet,), attrs)
    if parent_kwarg:
        viewset = extend_schema(
            parameters=[OpenApiParameter(parent_kwarg, OpenApiTypes.INT, OpenApiParameter.PATH)]
        )(viewset)
    return _schema_for_writes(viewset, refused, reason)


class ReadOnlyScopedViewSet(viewsets.ReadOnlyModelViewSet):
    """Sites and studies the user works with (read-only; administrators manage them in the admin)."""

    permission_classes = [CaseRecordPermission]
    write_capability = Capability.EDIT_RECORDS
    lookup_value_regex = r"\d+"
    ordering = ["pk"]

    def get_queryset(self):
        user = self.request.user
        queryset = super().get_queryset()
        ids = {
            pk
            for capability in (Capability.VIEW_RECORDS, Capability.RUN_REPORTS)
            for pk in scope(queryset, user, capability).values_list("pk", flat=True)
        }
        return queryset.filter(pk__in=ids).order_by("pk")


class SiteViewSet(ReadOnlyScopedViewSet):
    queryset = Site.objects.all()
    serializer_class = s.serializer_for(Site)


class StudyViewSet(ReadOnlyScopedViewSet):
    # Each study lists its sites' ids: read for the whole page at once, not once per study.
    queryset = m.Study.objects.prefetch_related(Prefetch("sites", queryset=Site.objects.only("pk")))
    serializer_class = s.serializer_for(m.Study)


PatientBase = registry_viewset(
    m.Patient, serializer=s.PatientSerializer, filterset_fields=("study", "site", "sex", "study_code")
)


class PatientViewSet(PatientBase):  # type: ignore[valid-type,misc]  # a base built at run time
    @extend_schema(
        request=s.DeathSerializer,
        responses={200: s.PatientSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    def death(self, request, pk=None):
        """Record (or correct) the death: the patient's date and cause and the death follow-up event, together."""
        patient = self.get_object()
        if not has_capability(request.user, Capability.EDIT_RECORDS, patient.site_id):
            raise PermissionDenied("Your role does not allow changes to case records at this site.")
        data = s.DeathSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        patient_record_death(
            patient=patient,
            death_date=data.validated_data["death_date"],
            cause=data.validated_data["death_cause"],
            actor=request.user,
            reason=data.validated_data["change_reason"],
        )
        patient.refresh_from_db()
        return Response(s.PatientSerializer(patient, context=self.get_serializer_context()).data)

    @extend_schema(
        request=s.PatientMoveSerializer,
        responses={200: s.PatientSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    def move(self, request, pk=None):
        """Move the patient to another site of its study (study administrators of both sites), with a reason."""
        patient = self.get_object()
        if not has_capability(request.user, Capability.MOVE_PATIENTS, patient.site_id):
            raise PermissionDenied("Only a study administrator of this site may move its patients.")
        data = s.PatientMoveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        to_site = data.validated_data["site"]
        if not has_capability(request.user, Capability.MOVE_PATIENTS, to_site):
            raise ValidationError({"site": ["You may not move patients to this site."]})
        from_site = patient.site
        patient_move_site(
            patient=patient, to_site=to_site, actor=request.user, reason=data.validated_data["reason"]
        )
        security_event_record(
            SecurityEventKind.PATIENT_MOVED,
            request=request,
            detail={
                "study": patient.study.code,
                "patient": patient.study_code,
                "from_site": from_site.code,
                "to_site": to_site.code,
                "reason": data.validated_data["reason"],
            },
        )
        patient.refresh_from_db()
        return Response(s.PatientSerializer(patient, context=self.get_serializer_context()).data)


class ProtocolViewSet(viewsets.ReadOnlyModelViewSet):
    """Intrathecal protocols (every version) with their phases, components and supportive care:
    reference data readable by every signed-in user; site administrators edit them in the admin."""

    queryset = (
        pm.Protocol.objects.all()
        .prefetch_related("phases", "components", "supportive_requirements")
        .order_by("pk")
    )
    serializer_class = s.ProtocolSerializer
    permission_classes = [IsAuthenticated]
    filter_backends = [DjangoFilterBackend]
    filterset_fields = ["code", "disease_area", "status"]
    lookup_value_regex = r"\d+"

    def get_object(self):
        if not _is_database_id(self.kwargs.get("pk")):
            raise NotFound()
        return super().get_object()


ScreeningLogBase = registry_viewset(
    m.ScreeningLogEntry,
    serializer=s.ScreeningLogEntrySerializer,
    filterset_fields=("study", "site", "step", "exclusion_reason"),
    write_capability=Capability.RECORD_SCREENING,
    reason=REASON_ALWAYS,
)


class ScreeningLogViewSet(ScreeningLogBase):  # type: ignore[valid-type,misc]  # a base built at run time
    """The studies' screening logs (the counts of their flow diagrams), scoped to your sites: read by
    those who see case records there, written by study administrators, every write with a reason."""

    delete_reason_message = "Give a reason (X-Change-Reason): why this count is removed."

    def delete_needs_reason(self, instance) -> bool:
        return True

    def perform_delete(self, instance, *, reason: str) -> None:
        screening_entry_delete(entry=instance, actor=self.request.user, reason=reason)


def patient_child(model, **kwargs):
    return registry_viewset(
        model, parent_model=m.Patient, parent_kwarg="patient_pk", parent_field="patient", **kwargs
    )


_COURSES = patient_child(pm.Course, serializer=s.CourseSerializer, filterset_fields=("status",))


class CourseViewSet(_COURSES):  # type: ignore[valid-type,misc]  # a base built at run time
    """A patient's intrathecal courses with their planned injections. POST starts a course (its plan
    follows from the protocol); a course is then changed only by recording LPs, marking an
    injection missed, or stopping it."""

    http_method_names = ["get", "post", "head", "options"]

    def _course_for_change(self):
        course = self.get_object()
        if not has_capability(self.request.user, Capability.EDIT_RECORDS, course.patient.site_id):
            raise PermissionDenied("Your role does not allow changes to case records at this site.")
        return course

    def _answer(self, course):
        course = pm.Course.objects.get(pk=course.pk)
        return Response(s.CourseSerializer(course, context=self.get_serializer_context()).data)

    @extend_schema(
        request=s.CourseStopSerializer,
        responses={200: s.CourseSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    def stop(self, request, *args, **kwargs):
        """Stop the course on a date, saying why; the injections still planned are cancelled."""
        course = self._course_for_change()
        data = s.CourseStopSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        course_stop(
            course=course,
            ended_on=values["ended_on"],
            stop_reason=values["stop_reason"],
            stop_note=values["stop_note"],
            actor=request.user,
            reason=values["change_reason"] or request.headers.get("X-Change-Reason", ""),
        )
        return self._answer(course)

    @extend_schema(
        request=s.InjectionMissedSerializer,
        responses={200: s.CourseSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    def missed(self, request, *args, **kwargs):
        """Mark the course's next planned injection as not given, with why; the plan moves on."""
        course = self._course_for_change()
        data = s.InjectionMissedSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        injection = course.injections.filter(pk=data.validated_data["injection"]).first()
        if injection is None:
            raise ValidationError({"injection": ["No planned injection with this id in this course."]})
        planned_injection_mark_missed(
            injection=injection,
            deviation_reason=data.validated_data["deviation_reason"],
            actor=request.user,
            reason=request.headers.get("X-Change-Reason", ""),
        )
        return self._answer(course)


VIEWSETS = {
    "courses": CourseViewSet,
    "identifiers": patient_child(m.PatientIdentifier, capability=Capability.VIEW_IDENTIFIERS),
    "npsle-diagnosis": patient_child(m.NpsleDiagnosis),
    "sledai-assessments": patient_child(m.Sledai2kAssessment, filterset_fields=("assessed_on",)),
    "lm-diagnosis": patient_child(m.LmDiagnosis),
    "car-t-infusions": patient_child(m.CarTInfusion),
    "icans-assessments": patient_child(m.IcansAssessment),
    "crs-assessments": patient_child(m.CrsAssessment),
    "lumbar-punctures": patient_child(
        m.LumbarPuncture,
        serializer=s.LumbarPunctureSerializer,
        filterset_fields=("route",),
        refused=INJECTION_REFUSED,
    ),
    "systemic-therapies": patient_child(m.SystemicTherapy, filterset_fields=("category",)),
    "adverse-events": patient_child(m.AdverseEvent, filterset_fields=("ctcae_term", "grade", "attribution")),
    "discharge": patient_child(m.DischargeOutcome),
    "response-assessments": patient_child(m.ResponseAssessment),
    "follow-up-events": patient_child(m.FollowUpEvent, filterset_fields=("event_type",)),
}
MANIFESTATIONS = registry_viewset(
    m.NpsleManifestation,
    parent_model=m.NpsleDiagnosis,
    parent_kwarg="diagnosis_pk",
    parent_field="diagnosis",
    filterset_fields=("syndrome",),
)
MUTATIONS = registry_viewset(
    m.MutationFinding,
    parent_model=m.LmDiagnosis,
    parent_kwarg="diagnosis_pk",
    parent_field="diagnosis",
    filterset_fields=("specimen", "mutation"),
)
CSF = registry_viewset(
    m.CsfResult, parent_model=m.LumbarPuncture, parent_kwarg="lp_pk", parent_field="lumbar_puncture"
)
_DOSES = registry_viewset(
    m.IntrathecalDose,
    parent_model=m.LumbarPuncture,
    parent_kwarg="lp_pk",
    parent_field="lumbar_puncture",
    serializer=s.DoseSerializer,
    filterset_fields=("drug", "timing"),
    refused=INJECTION_REFUSED,
)


class DOSES(_DOSES):  # type: ignore[valid-type,misc]  # a base built at run time
    """Intrathecal doses of an LP, scoped to your sites; every write re-runs the injection's safety
    checks and keeps its course's plan in step (a removed dose may un-give a planned injection)."""

    def perform_delete(self, dose, *, reason: str) -> None:
        """Through the LP's unit of work (a service error becomes a 400 in the exception handler)."""
        lp = dose.lumbar_puncture
        injection_record(
            lp=lp,
            removed=[dose],
            kept=list(m.IntrathecalDose.objects.filter(lumbar_puncture=lp).exclude(pk=dose.pk)),
            actor=self.request.user,
            reason=reason,
        )


PATHOGEN_TESTS = registry_viewset(
    m.PathogenTest,
    parent_model=m.CsfResult,
    parent_kwarg="csf_pk",
    parent_field="csf_result",
    filterset_fields=("test", "result"),
)


__all__ = ["PatientViewSet", "ScreeningLogViewSet", "SiteViewSet", "StudyViewSet"]
