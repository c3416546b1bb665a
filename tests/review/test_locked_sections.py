"""A locked section opens read-only: its edit URLs answer with the section and one clear message."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Role
from registry import write_hooks
from registry.models import SystemicTherapy
from review import services
from tests import factories as f

pytestmark = pytest.mark.django_db

PASSWORD = "reviewer-password-1"
NOTICE = "This section is locked: signed by Chen Jing on "


@pytest.fixture
def locked(client):
    site = f.SiteFactory(name="North")
    study = f.StudyFactory(sites=[site])
    nurse = f.UserFactory(first_name="Lin", last_name="Wei")
    reviewer = f.UserFactory(first_name="Chen", last_name="Jing", password=PASSWORD, email="chen@example.org")
    f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
    f.MembershipFactory(user=reviewer, site=site, role=Role.REVIEWER)
    patient = f.PatientFactory(study=study, site=site)
    therapy = f.SystemicTherapyFactory(patient=patient)
    lp = f.LumbarPunctureFactory(patient=patient)
    for section in ("therapy", "procedures"):
        services.section_submit(patient=patient, section=section, actor=nurse)
        services.section_verify(patient=patient, section=section, actor=reviewer)
    services.sections_lock(
        patient=patient, sections=["therapy", "procedures"], actor=reviewer, password=PASSWORD
    )
    client.force_login(nurse)
    return {"patient": patient, "therapy": therapy, "lp": lp, "nurse": nurse, "reviewer": reviewer}


def edit_urls(locked) -> dict[str, tuple[str, str]]:
    p, therapy, lp = locked["patient"], locked["therapy"], locked["lp"]
    return {
        "edit": (reverse("casebook:record_edit", args=[p.pk, "therapy", therapy.pk]), "therapy"),
        "add": (reverse("casebook:record_create", args=[p.pk, "therapy"]), "therapy"),
        "delete": (reverse("casebook:record_delete", args=[p.pk, "therapy", therapy.pk]), "therapy"),
        "lp": (reverse("casebook:lp_edit", args=[p.pk, lp.pk]), "procedures"),
        "new lp": (reverse("casebook:lp_create", args=[p.pk]), "procedures"),
        "course": (reverse("protocols:course_create", args=[p.pk]), "procedures"),
    }


@pytest.mark.parametrize("which", ["edit", "add", "delete", "lp", "new lp", "course"])
@pytest.mark.parametrize("htmx", [False, True])
def test_edit_urls_answer_with_the_read_only_section(client, locked, which, htmx):
    url, section = edit_urls(locked)[which]
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    for response in (client.get(url, **headers), client.post(url, {"agent": "x", "reason": "y"}, **headers)):
        html = response.content.decode()
        assert response.status_code == 200
        assert html.count(NOTICE) == 1, "one message, in sentence case"
        assert "<form" not in html.split(f'id="section-{section}"')[-1] if not htmx else "<form" not in html
        assert "Request an unlock" in html
        assert ("<html" in html) != htmx, "a full page without htmx, the section alone with it"
    assert SystemicTherapy.objects.filter(pk=locked["therapy"].pk).exists()
    assert SystemicTherapy.objects.get(pk=locked["therapy"].pk).agent == locked["therapy"].agent


def test_the_patient_page_shows_the_notice_once_per_locked_section(client, locked):
    html = client.get(reverse("casebook:patient_detail", args=[locked["patient"].pk])).content.decode()
    assert html.count(NOTICE) == 2
    assert "section is locked (signed by" not in html, "not the refusal wording of the services as well"


def test_data_entry_asks_for_an_unlock_reviewers_sign_it(client, locked):
    url = reverse("review:unlock", args=[locked["patient"].pk, "therapy"])
    page = client.get(url).content.decode()
    assert "Request an unlock" in page and "Chen Jing" in page and "mailto:chen@example.org" in page
    assert 'name="password"' not in page
    assert client.post(url, {"reason": "x", "password": "y"}).status_code == 403
    client.force_login(locked["reviewer"])
    page = client.get(url).content.decode()
    assert 'name="password"' in page and "I unlock these data for correction." in page
    refused = client.post(url, {"reason": "dose typo", "password": "wrong"})
    assert "The password is not correct; the record was not unlocked." in refused.content.decode()
    client.post(url, {"reason": "dose typo", "password": PASSWORD})
    assert write_hooks.needs_reason(locked["patient"].pk, "therapy"), "back to submitted: a reason is needed"


def test_one_answer_to_whether_a_write_needs_a_reason(client, locked):
    """Pages, admin and API ask registry's write hooks; the pages' form marks the reason required."""
    patient = locked["patient"]
    assert not write_hooks.needs_reason(patient.pk, "safety")
    services.section_submit(patient=patient, section="safety", actor=locked["nurse"])
    assert write_hooks.needs_reason(patient.pk, "safety")
    html = client.get(reverse("casebook:record_create", args=[patient.pk, "adverse-event"])).content.decode()
    assert "Required: this section has been submitted for review." in html
