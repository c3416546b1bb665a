"""The pages satisfy their Content-Security-Policy (script-src 'self', no inline script, no eval).

Every browser test fails on a CSP violation (tests/browser/conftest.py); this one tours the pages
the other browser tests do not reach — admin, API docs, imports, exports, audit, queries, history,
the move page — as a superuser, and checks the header is really there.
"""

import pytest
from playwright.sync_api import expect

from registry.models import LumbarPuncture, Patient
from tests.browser.conftest import sign_in
from tests.factories import UserFactory
from tests.replay import load_demo_replayed

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_page_satisfies_the_content_security_policy(page, screenshot):
    load_demo_replayed(only=["icans"])
    UserFactory(username="root", password="a-long-password-1", is_superuser=True, is_staff=True)
    patient = Patient.objects.order_by("pk").first()
    lp = LumbarPuncture.objects.filter(patient=patient).first()
    sign_in(page, "root", "a-long-password-1")
    expect(page.locator("text=Sign out")).to_be_visible()
    tour = [
        "/",
        "/patients/",
        f"/patients/{patient.pk}/",
        f"/patients/{patient.pk}/history/",
        f"/patients/{patient.pk}/move/",
        f"/patients/{patient.pk}/lumbar-punctures/{lp.pk}/",
        "/queries/",
        "/protocols/",
        "/data/import/",
        "/data/export/",
        "/audit/export/",
        "/reports/",
        "/admin/",
        "/admin/registry/patient/",
        f"/admin/registry/patient/{patient.pk}/change/",
        "/admin/knox/authtoken/",
        "/api/docs/",
        "/api/patients/",
    ]
    for path in tour:
        response = page.goto(path)
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        page.wait_for_load_state("networkidle")
    expect(page.locator(".swagger-ui, pre, body").first).to_be_visible()
    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info")).to_be_visible()  # Swagger UI ran from its script files
    screenshot("api-docs")
    # The fixture asserts no violation was reported on any of these pages.
    assert page.csp_violations == []
