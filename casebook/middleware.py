"""Edit URLs of a locked section answer with the section, read-only, wherever the view finds out."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .pages import HtmxHttpRequest, SectionLocked, locked_section_response


class LockedSectionMiddleware:
    """Turns ``SectionLocked`` (raised by ``pages.ensure_unlocked`` before any form opens) into the page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, SectionLocked):
            return None
        htmx_request: HtmxHttpRequest = request  # type: ignore[assignment]  # the django-htmx middleware ran
        return locked_section_response(htmx_request, exception.patient, exception.section)
