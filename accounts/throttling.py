"""Sign-in throttling: django-axes' counters, bounded usernames, and a per-address limit.

One set of counters serves the sign-in page and the API's token endpoint (axes records every failed
``authenticate()``): ``AXES_FAILURE_LIMIT`` failures for one account from one address lock it for
``AXES_COOLOFF_MINUTES``. Password spraying — one or two guesses at each of many accounts — never
trips that, so an address with ``SIGN_IN_ADDRESS_FAILURE_LIMIT`` failures across all accounts in the
same window is refused too, whichever account it names next.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.dispatch import Signal
from django.utils import timezone

#: Sent once per refused request when an address is over its limit (the audit app records it).
address_blocked = Signal()


def axes_username(request, credentials: dict | None = None) -> str | None:
    """As axes reads it (credentials, else the posted form or API data), bounded to an account name.

    Axes stores the username as typed in a 255-character column; a longer one made PostgreSQL refuse
    the row and the sign-in page answer 500. No account name is longer than the user model allows,
    so the attempt is counted under its first characters (the security event keeps its length).
    """
    field = getattr(settings, "AXES_USERNAME_FORM_FIELD", "username")  # axes' default when unset
    if credentials:
        username = credentials.get(field)
    else:
        data = getattr(request, "data", None) or getattr(request, "POST", {})
        username = data.get(field) if hasattr(data, "get") else None
    if not isinstance(username, str):
        return username
    user_model = get_user_model()
    return username[: user_model._meta.get_field(user_model.USERNAME_FIELD).max_length]  # type: ignore[union-attr]


def _window_start(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) - settings.AXES_COOLOFF_TIME


def address_failures(ip_address: str | None, *, now: dt.datetime | None = None) -> int:
    """Failed sign-ins from this address, across every account, within the cool-off window."""
    if not ip_address:
        return 0
    total = AccessAttempt.objects.filter(
        ip_address=ip_address, attempt_time__gte=_window_start(now)
    ).aggregate(failures=Sum("failures_since_start"))["failures"]
    return total or 0


def lockout_condition(connection, username_column: str) -> tuple[str, Callable[[], list]]:
    """A subquery finding the counters that lock out the account named in ``username_column`` from
    some address now (its API tokens stop working meanwhile), in ``connection``'s SQL; and a function
    giving its parameters at the moment of asking (the cool-off window moves, and the limit is read
    from the settings each time). Written as SQL for the API's token check (``api.authentication``),
    which runs on every API request."""
    quote = connection.ops.quote_name
    meta = AccessAttempt._meta
    table = quote(meta.db_table)

    def column(name: str) -> str:
        return f"{table}.{quote(meta.get_field(name).column)}"

    attempt_time = meta.get_field("attempt_time")
    sql = (
        f"SELECT 1 FROM {table} WHERE {column('username')} = {username_column} "
        f"AND {column('attempt_time')} >= %s AND {column('failures_since_start')} >= %s"
    )

    def params() -> list:
        return [attempt_time.get_db_prep_value(_window_start(), connection), settings.AXES_FAILURE_LIMIT]

    return sql, params


class RegistryAxesHandler(AxesDatabaseHandler):
    """Axes' database handler plus the per-address limit (``AXES_HANDLER`` names it)."""

    def is_locked(self, request, credentials: dict | None = None) -> bool:
        if super().is_locked(request, credentials):
            return True
        ip_address = getattr(request, "axes_ip_address", None)
        if address_failures(ip_address, now=getattr(request, "axes_attempt_time", None)) < (
            settings.SIGN_IN_ADDRESS_FAILURE_LIMIT
        ):
            return False
        # Axes flags an account's lock-out when it counts the failure; an address's is flagged here,
        # so the sign-in page and the token endpoint answer it the same way (429).
        request.axes_locked_out = True
        if not getattr(request, "registry_address_blocked", False):
            request.registry_address_blocked = True
            address_blocked.send(sender=type(self), request=request, ip_address=ip_address)
        return True
