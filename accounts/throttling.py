"""The username django-axes counts failed sign-ins against.

Axes stores the username as typed in a 255-character column; a longer one made PostgreSQL refuse
the row and the sign-in page answer 500. No account name is longer than the user model allows, so
the attempt is counted under its first characters (the security event keeps its length).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model


def axes_username(request, credentials: dict | None = None) -> str | None:
    """As axes reads it (credentials, else the posted form or API data), bounded to an account name."""
    field = settings.AXES_USERNAME_FORM_FIELD
    if credentials:
        username = credentials.get(field)
    else:
        data = getattr(request, "data", None) or getattr(request, "POST", {})
        username = data.get(field)
    if not isinstance(username, str):
        return username
    user_model = get_user_model()
    return username[: user_model._meta.get_field(user_model.USERNAME_FIELD).max_length]
