"""What each role may do, as Django permission groups (site scoping is applied on top of these)."""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth.models import Group, Permission

from .models import Role

#: Models whose records make up a case record (identifiers handled separately).
CASE_RECORD_MODELS = [
    "patient",
    "npslediagnosis",
    "npslemanifestation",
    "sledai2kassessment",
    "lmdiagnosis",
    "mutationfinding",
    "cartinfusion",
    "icansassessment",
    "crsassessment",
    "lumbarpuncture",
    "csfresult",
    "pathogentest",
    "intrathecaldose",
    "systemictherapy",
    "adverseevent",
    "dischargeoutcome",
    "responseassessment",
    "followupevent",
]


def _codenames(actions: tuple[str, ...], models: list[str]) -> list[str]:
    return [f"{action}_{model}" for model in models for action in actions]


ROLE_PERMISSIONS: dict[str, list[str]] = {
    Role.DATA_ENTRY: [
        *_codenames(("view", "add", "change", "delete"), CASE_RECORD_MODELS),
        *_codenames(("view", "add", "change"), ["patientidentifier"]),
        "view_site",
        "view_study",
    ],
    Role.REVIEWER: [
        *_codenames(("view",), [*CASE_RECORD_MODELS, "patientidentifier"]),
        "view_site",
        "view_study",
    ],
    # Researchers work with reports and de-identified datasets, not with case records.
    Role.RESEARCHER: ["view_site", "view_study"],
    # Site administrators manage their site's records but, like researchers, never see identifiers.
    Role.SITE_ADMIN: [
        *_codenames(("view", "add", "change", "delete"), CASE_RECORD_MODELS),
        "view_site",
        "view_study",
        "change_study",
    ],
    Role.STUDY_ADMIN: [
        *_codenames(("view", "add", "change", "delete"), CASE_RECORD_MODELS),
        *_codenames(("view", "add", "change"), ["patientidentifier"]),
        "view_site",
        "view_study",
        "change_study",
    ],
}


def group_name(role: str) -> str:
    return Role(role).label


def sync_role_groups(**_kwargs) -> None:
    """Create or update one permission group per role (runs after every migrate)."""
    if not apps.is_installed("registry"):
        return
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=group_name(role))
        permissions = Permission.objects.filter(content_type__app_label="registry", codename__in=codenames)
        missing = set(codenames) - set(permissions.values_list("codename", flat=True))
        if missing:
            # Right after the first migrate of a fresh database the permissions may not exist yet.
            continue
        group.permissions.set(permissions)
