"""Issue 19's wording: a specific duplicate study-code message, and no link a role cannot use."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import Role
from registry.models import Patient
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_a_duplicate_study_code_says_what_to_do():
    first = f.PatientFactory(study_code="NP-0101")
    again = Patient(
        study=first.study,
        site=first.site,
        study_code="NP-0101",
        birth_date=first.birth_date,
        birth_year=first.birth_year,
    )
    with pytest.raises(ValidationError) as error:
        again.validate_constraints()
    assert error.value.messages == [
        "Another patient of this study already has this study code; choose the next free code, or "
        "find that patient under Patients if it is the same person."
    ]


@pytest.mark.parametrize(("role", "offered"), [(Role.RESEARCHER, False), (Role.DATA_ENTRY, True)])
def test_home_offers_find_a_patient_only_to_a_role_that_may_open_the_list(client, role, offered):
    site = f.SiteFactory()
    f.StudyFactory(sites=[site])
    user = f.UserFactory()
    f.MembershipFactory(user=user, site=site, role=role)
    client.force_login(user)
    home = client.get("/").content.decode()
    assert ("Find a patient" in home) is offered
    assert client.get(reverse("casebook:patient_list")).status_code == (200 if offered else 403)
