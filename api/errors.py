"""Service errors as HTTP answers: field errors 400, locked or changed-meanwhile records 409."""

from concurrency.exceptions import RecordModifiedError
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from review.guards import RecordLockedError

from .serializers import to_api_error


def exception_handler(exc, context):
    if isinstance(exc, RecordLockedError):
        return Response({"detail": " ".join(exc.messages), "code": "locked"}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, RecordModifiedError):
        return Response(
            {
                "detail": "The record was changed by someone else meanwhile; fetch it again and re-apply your change.",
                "code": "modified",
            },
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, DjangoValidationError):
        exc = to_api_error(exc)
    response = drf_exception_handler(exc, context)
    findings = getattr(exc, "findings", None)
    if response is not None and findings and isinstance(response.data, dict):
        response.data["safety_findings"] = [finding.to_dict() for finding in findings]
    return response
