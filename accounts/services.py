"""Account services."""

from __future__ import annotations

from django.db import transaction

from .models import User

SYSTEM_USERNAME = "registry-system"


@transaction.atomic
def system_user() -> User:
    """The account that loaders and scheduled jobs act as, so their writes are attributable too.

    It cannot sign in (no usable password, inactive).
    """
    user, created = User.objects.get_or_create(
        username=SYSTEM_USERNAME,
        defaults={"is_active": False, "first_name": "Registry", "last_name": "system"},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user
