"""Idle expiry of sign-in sessions without a database write on every request.

A session expires ``SESSION_COOKIE_AGE`` (``SESSION_IDLE_SECONDS``) after it was last saved, so idle
expiry needs each request to push that deadline forward. Django's ``SESSION_SAVE_EVERY_REQUEST``
does it with an UPDATE of the session row on every page, API call and htmx poll. This middleware
saves the session only when its last save is at least ``SESSION_TOUCH_SECONDS`` old: a session in
use is written about once a minute, and an idle one expires between ``SESSION_IDLE_SECONDS -
SESSION_TOUCH_SECONDS`` and ``SESSION_IDLE_SECONDS`` after its last request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .models import User
from .statements import Statement

#: Where the session keeps the time (epoch seconds) of its last save by this middleware.
TOUCHED_KEY = "_touched_at"


def _now() -> int:
    return int(time.time())


class IdleSessionMiddleware:
    """Marks a live session modified when its deadline is due to move (placed after SessionMiddleware,
    so the session middleware saves it on the way out)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is None or session.session_key is None:
            return response  # no session yet: a visitor who has not signed in gets none
        now = _now()
        if now - session.get(TOUCHED_KEY, 0) >= settings.SESSION_TOUCH_SECONDS:
            session[TOUCHED_KEY] = now
        return response


#: The session row a request's cookie names, unexpired: read on every signed-in page request, so a
#: statement (``accounts.statements``) rather than a queryset built per request.
_LIVE_SESSION = Statement(
    lambda session_key, now: Session.objects.filter(session_key=session_key, expire_date__gt=now).order_by(),
    session_key=str,
    now=datetime,
)


class SessionStore(db.SessionStore):
    """Django's database sessions (``SESSION_ENGINE = "accounts.sessions"``), the row read by a statement."""

    def _get_session_from_db(self) -> Session | None:
        key = self.session_key
        found = _LIVE_SESSION(session_key=key, now=timezone.now()) if isinstance(key, str) else []
        if not found:
            self._session_key = None
            return None
        return found[0]


#: The signed-in user, read on every signed-in page request (as ``_LIVE_SESSION``).
_USER = Statement(lambda pk: User._default_manager.filter(pk=pk).order_by(), pk=int)


class SignInBackend(ModelBackend):
    """Django's ``ModelBackend`` (password sign-in, active accounts only) whose ``get_user`` — the
    session's user, on every signed-in request — reads the user by a statement."""

    def get_user(self, user_id: Any) -> User | None:
        try:
            pk = int(user_id)
        except (TypeError, ValueError):
            return None
        found = _USER(pk=pk)
        return found[0] if found and self.user_can_authenticate(found[0]) else None
