"""Django's model permissions, derived from the capabilities of a user's roles (one permission system).

The pages and the API ask ``accounts.access`` for capabilities at a site; the admin asks Django's
``user.has_perm("registry.change_patient")``. ``RoleBackend`` answers the second from the first,
so a role's rights are declared once (``accounts.access.ROLE_CAPABILITIES``) and no permission
group has to be kept in step with them. Site scoping is applied on top, by ``accounts.access``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.contrib.auth.backends import BaseBackend

from .access import ROLE_CAPABILITIES, AnyUser, Capability, roles_by_site
from .models import User

#: The app whose case-record models the admin edits (protocols' records are edited on the pages).
CASE_RECORD_APP = "registry"
#: The study's screening log (registry.ScreeningLogEntry): counts, not patients. Those who see case
#: records at a site see its counts; study administrators record them.
SCREENING_LOG = "screeninglogentry"


def _case_record_models() -> tuple[list[str], list[str]]:
    """Model names of the registry's patient records: (clinical records, records holding identifiers)."""
    models = [
        m for m in apps.get_app_config(CASE_RECORD_APP).get_models() if getattr(m, "patient_lookup", None)
    ]
    identifying = [str(m._meta.model_name) for m in models if getattr(m, "holds_identifiers", False)]
    clinical = [str(m._meta.model_name) for m in models if not getattr(m, "holds_identifiers", False)]
    return clinical, identifying


def model_permissions(capabilities: Iterable[Capability]) -> set[str]:
    """The ``app.action_model`` permissions that a set of capabilities amounts to."""
    held = set(capabilities)
    if not held:
        return set()
    clinical, identifying = _case_record_models()
    codenames = {"view_site", "view_study"}  # every role sees the sites and studies it works in
    if Capability.VIEW_RECORDS in held:
        codenames |= {f"view_{name}" for name in clinical} | {f"view_{SCREENING_LOG}"}
    if Capability.RECORD_SCREENING in held:
        codenames |= {f"{action}_{SCREENING_LOG}" for action in ("view", "add", "change", "delete")}
    if Capability.EDIT_RECORDS in held:
        codenames |= {
            f"{action}_{name}" for name in clinical for action in ("view", "add", "change", "delete")
        }
    if Capability.VIEW_IDENTIFIERS in held:
        codenames |= {f"view_{name}" for name in identifying}
        if Capability.EDIT_RECORDS in held:  # identifiers are corrected, never deleted
            codenames |= {f"{action}_{name}" for name in identifying for action in ("add", "change")}
    if Capability.MANAGE_SITE in held:
        codenames.add("change_study")
    return {f"{CASE_RECORD_APP}.{codename}" for codename in codenames}


class RoleBackend(BaseBackend):
    """Answers ``has_perm`` from the user's roles at any of their sites (never authenticates anyone)."""

    def get_all_permissions(self, user_obj: AnyUser, obj: Any = None) -> set[str]:
        if obj is not None or not isinstance(user_obj, User) or not user_obj.is_active:
            return set()
        cached: set[str] | None = getattr(user_obj, "_role_permissions", None)
        if cached is None:
            roles = {role for site_roles in roles_by_site(user_obj).values() for role in site_roles}
            cached = model_permissions(c for role in roles for c in ROLE_CAPABILITIES[role])
            user_obj._role_permissions = cached
        return cached

    def has_perm(self, user_obj: AnyUser, perm: str, obj: Any = None) -> bool:
        return perm in self.get_all_permissions(user_obj, obj)

    def has_module_perms(self, user_obj: AnyUser, app_label: str) -> bool:
        return any(perm.startswith(f"{app_label}.") for perm in self.get_all_permissions(user_obj))
