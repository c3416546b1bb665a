"""Demo accounts: one person per role, with the sites the demo studies run at."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.db import transaction

from accounts.models import Role, Site, SiteMembership, User


@dataclass(frozen=True)
class DemoAccount:
    username: str
    first_name: str
    last_name: str
    role: Role | None  # None: superuser
    site_codes: tuple[str, ...]


DEMO_ACCOUNTS = (
    DemoAccount("nurse", "Lin", "Wei (data entry)", Role.DATA_ENTRY, ("north", "chest", "haem")),
    DemoAccount("reviewer", "Chen", "Jing (reviewer)", Role.REVIEWER, ("north", "chest", "haem")),
    DemoAccount(
        "researcher", "Zhang", "Min (researcher)", Role.RESEARCHER, ("north", "south", "chest", "haem")
    ),
    DemoAccount("siteadmin", "Wang", "Fang (site admin)", Role.SITE_ADMIN, ("north",)),
    DemoAccount("studyadmin", "Liu", "Yang (study admin)", Role.STUDY_ADMIN, ("north", "south")),
    DemoAccount("admin", "Registry", "Administrator", None, ()),
)


@transaction.atomic
def ensure_demo_accounts(*, reset_passwords: bool = False) -> dict[str, str]:
    """Create the demo accounts that are missing; return {username: password} for those given one now.

    Passwords are random and shown only when set, so a shared demo server has no known password.
    """
    sites = {site.code: site for site in Site.objects.all()}
    issued: dict[str, str] = {}
    for spec in DEMO_ACCOUNTS:
        user, created = User.objects.get_or_create(
            username=spec.username,
            defaults={
                "first_name": spec.first_name,
                "last_name": spec.last_name,
                "is_staff": True,
                "is_superuser": spec.role is None,
            },
        )
        if created or reset_passwords:
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.save(update_fields=["password"])
            issued[spec.username] = password
        if spec.role is None:
            continue
        for code in spec.site_codes:
            if code in sites:
                SiteMembership.objects.get_or_create(user=user, site=sites[code], role=spec.role)
    return issued
