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
    return SecurityEvent.objects.create(
        kind=kind,
        user=user if user is not None and user.is_authenticated else None,
        username=username or (user.get_username() if user is not None and user.is_authenticated else ""),
        ip_address=client_ip(request),
        path=request.get_full_path()[:500] if request is not None else "",
        detail=detail or {},
    )
