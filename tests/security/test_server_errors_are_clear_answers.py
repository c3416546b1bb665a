"""Medium finding: inputs that answered 500 (or an HTML page on the API) must be clear 4xx answers.

- JSON nested 1,000 deep raised RecursionError, also on the unauthenticated token endpoint.
- An admin delete of a record in a locked section raised RecordLockedError.
- Negative or non-integer path ids on the API answered Django's HTML 404 page, not JSON.
(Unreadable import files are in test_import_bombs.py.)
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Role
from registry.models import LumbarPuncture
from tests import factories as f

pytestmark = pytest.mark.django_db

DEEP = "[" * 1000 + "]" * 1000


@pytest.fixture
def nurse():
    site = f.SiteFactory(code="north")
    study = f.StudyFactory(code="npsle-5", sites=[site])
    user = f.UserFactory(username="nurse-5")
    f.MembershipFactory(user=user, site=site, role=Role.DATA_ENTRY)
    patient = f.PatientFactory(study=study, site=site)
    client = APIClient()
    client.force_authenticate(user)
    return client, patient


@pytest.mark.parametrize("url", ["/api/auth/token/", "/api/patients/"])
def test_json_nested_1000_deep_is_a_400_not_a_recursion_error(nurse, url):
    client, _ = nurse
    anonymous = APIClient()
    for api in (anonymous, client):
        response = api.generic("POST", url, DEEP, content_type="application/json")
        if api is anonymous and url != "/api/auth/token/":
            assert response.status_code in (401, 403)
            continue
        assert response.status_code == 400, response.content[:300]
        assert "nested" in response.json()["detail"]


def test_json_nested_moderately_deep_is_refused_too(nurse):
    client, patient = nurse
    body = '{"study_code": ' + "[" * 60 + "]" * 60 + "}"
    response = client.generic("POST", "/api/patients/", body, content_type="application/json")
    assert response.status_code == 400
    assert "nested" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/patients/-1/",
        "/api/patients/1.5/",
        "/api/patients/abc/",
        "/api/patients/-1/lumbar-punctures/",
        "/api/patients/abc/lumbar-punctures/",
        "/api/patients/{pk}/lumbar-punctures/-3/",
        "/api/patients/{pk}/lumbar-punctures/0.5/doses/",
        "/api/no-such-route/",
    ],
)
def test_bad_api_path_ids_answer_json_404s(nurse, path):
    client, patient = nurse
    response = client.get(path.format(pk=patient.pk))
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]


def test_admin_delete_of_a_record_in_a_locked_section_is_refused_with_a_message(client):
    root = f.UserFactory(username="root", is_superuser=True, is_staff=True)
    patient = f.PatientFactory()
    lp = f.LumbarPunctureFactory(patient=patient)
    f.locked_section(patient, by=root, at=timezone.now() - dt.timedelta(hours=1))
    client.force_login(root)
    change = client.get(reverse("admin:registry_lumbarpuncture_change", args=[lp.pk])).content.decode()
    assert "deletelink" not in change  # no delete button on a locked record
    confirm = client.post(reverse("admin:registry_lumbarpuncture_delete", args=[lp.pk]), {"post": "yes"})
    assert confirm.status_code in (302, 403)
    bulk = client.post(
        reverse("admin:registry_lumbarpuncture_changelist"),
        {"action": "delete_selected", "_selected_action": [lp.pk], "post": "yes"},
    )
    assert bulk.status_code == 403  # Django's refusal of a bulk delete without the right, logged
    assert LumbarPuncture.objects.filter(pk=lp.pk).exists()
    # A lock that lands between the confirmation and the delete: the record is kept and named.
    from django.contrib.admin.sites import site
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.test import RequestFactory

    request = RequestFactory().post("/")
    request.user = root
    request.session = {}
    request._messages = FallbackStorage(request)
    site._registry[LumbarPuncture].delete_queryset(request, LumbarPuncture.objects.filter(pk=lp.pk))
    assert LumbarPuncture.objects.filter(pk=lp.pk).exists()
    assert "section is locked" in str(list(request._messages)[0])
