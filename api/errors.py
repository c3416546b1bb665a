"""Errors as HTTP answers: field errors 400, locked or changed-meanwhile records 409, and JSON (not
Django's HTML pages) for an unknown route or a server error under /api/."""

from concurrency.exceptions import RecordModifiedError
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
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
    if isinstance(exc, exceptions.UnsupportedMediaType) and context.get("view") is not None:
        # Record bodies are JSON only (config/settings.py DEFAULT_PARSER_CLASSES): say what to send.
        given = context["request"].content_type.split(";")[0].strip()
        accepted = " or ".join(parser.media_type for parser in context["view"].get_parsers())
        named = f'not "{given}"' if given else "naming it in Content-Type"
        exc = exceptions.UnsupportedMediaType(given, detail=f"Send the body as {accepted}, {named}.")
    response = drf_exception_handler(exc, context)
    findings = getattr(exc, "findings", None)
    if response is not None and findings and isinstance(response.data, dict):
        response.data["safety_findings"] = [finding.to_dict() for finding in findings]
    return response


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception):
    """A route that does not exist (a negative or non-integer id in the path, a typo): JSON under /api/."""
    if _is_api(request):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse(
            {"detail": "Server error; it has been logged.", "code": "server_error"}, status=500
        )
    return defaults.server_error(request)
