"""One permission system: the admin's model permissions come from the roles' capabilities.

Permission groups were kept in step with the capabilities by hand. Now ``accounts.roles.RoleBackend``
derives Django's permissions from a user's memberships; the table below is the rights each role had
through its group, which the derivation must give exactly.
"""

from __future__ import annotations

import pytest

from accounts.models import Role
from tests import factories as f

pytestmark = pytest.mark.django_db

CLINICAL = [
    "patient", "npslediagnosis", "npslemanifestation", "sledai2kassessment", "lmdiagnosis", "mutationfinding",
    "cartinfusion", "icansassessment", "crsassessment", "lumbarpuncture", "csfresult", "pathogentest",
    "intrathecaldose", "systemictherapy", "adverseevent", "dischargeoutcome", "responseassessment",
    "followupevent",
]  # fmt: skip


def _perms(actions, models):
    return {f"registry.{action}_{model}" for model in models for action in actions}


SEE = {"registry.view_site", "registry.view_study"}
#: The screening log's counts: seen with the case records of a site, kept by its study administrators.
SCREENING_SEEN = {"registry.view_screeninglogentry"}
SCREENING_KEPT = _perms(("view", "add", "change", "delete"), ["screeninglogentry"])
EXPECTED = {
    Role.DATA_ENTRY: _perms(("view", "add", "change", "delete"), CLINICAL)
    | _perms(("view", "add", "change"), ["patientidentifier"])
    | SEE
    | SCREENING_SEEN,
    Role.REVIEWER: _perms(("view",), [*CLINICAL, "patientidentifier"]) | SEE | SCREENING_SEEN,
    Role.RESEARCHER: SEE,
    Role.SITE_ADMIN: _perms(("view", "add", "change", "delete"), CLINICAL)
    | SEE
    | {"registry.change_study"}
    | SCREENING_SEEN,
    Role.STUDY_ADMIN: _perms(("view", "add", "change", "delete"), CLINICAL)
    | _perms(("view", "add", "change"), ["patientidentifier"])
    | SEE
    | {"registry.change_study"}
    | SCREENING_KEPT,
}


@pytest.mark.parametrize("role", list(EXPECTED))
def test_each_role_has_exactly_the_model_permissions_of_its_capabilities(role):
    user = f.UserFactory(is_staff=True)
    f.MembershipFactory(user=user, role=role)
    assert user.get_all_permissions() == EXPECTED[role]
    assert user.has_perm("registry.view_study")
    assert user.has_module_perms("registry")
    assert not user.groups.exists()  # no permission group to keep in step


def test_no_membership_or_inactive_means_no_permissions():
    nobody = f.UserFactory(is_staff=True)
    assert nobody.get_all_permissions() == set()
    assert not nobody.has_module_perms("registry")
    gone = f.UserFactory(is_staff=True, is_active=False)
    f.MembershipFactory(user=gone, role=Role.DATA_ENTRY)
    assert not gone.has_perm("registry.view_patient")


def test_roles_at_two_sites_add_up():
    user = f.UserFactory(is_staff=True)
    f.MembershipFactory(user=user, role=Role.RESEARCHER)
    f.MembershipFactory(user=user, role=Role.REVIEWER)
    assert user.get_all_permissions() == EXPECTED[Role.REVIEWER]
