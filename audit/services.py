"""Recording security events (append-only)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .models import SecurityEvent, SecurityEventKind


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def security_event_record(
    kind: SecurityEventKind,
    *,
    request: HttpRequest | None = None,
    user=None,
    username: str = "",
    detail: dict[str, Any] | None = None,
) -> SecurityEvent:
    if (
        user is None
        and request is not None
        and getattr(request, "user", None)
        and request.user.is_authenticated
    ):
        user = request.user
    username = username or (user.get_username() if user is not None and user.is_authenticated else "")
    detail = dict(detail or {})
    path = request.get_full_path() if request is not None else ""
    # What a client types is bounded here, and the event says so: a sign-in with a 10,000-character
    # "username" is logged with its first characters and its length, never refused with an error.
    bounded = {}
    for name, value in (("username", username), ("path", path)):
        limit = SecurityEvent._meta.get_field(name).max_length
        if len(value) > limit:
            detail[f"{name}_length"] = len(value)
        bounded[name] = value[:limit]
    return SecurityEvent.objects.create(
        kind=kind,
        user=user if user is not None and user.is_authenticated else None,
        ip_address=client_ip(request),
        detail=detail,
        **bounded,
    )
