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

from django.conf import settings
from django.http import HttpRequest, HttpResponse

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
