"""Forms rendered through Jinja2 (config/forms.py) are the pages Django's own renderer makes.

Each page is requested twice, once with Django's template-language renderer and once with the
configured one; the HTML must be equal but for whitespace between tags and the apostrophe's entity
(``&#x27;`` in Django's escaping, ``&#39;`` in Jinja2's), which a browser shows the same.
"""

from __future__ import annotations

import re

import pytest
from django.forms.renderers import DjangoTemplates, Jinja2, get_default_renderer
from django.urls import reverse

from accounts.models import Role
from config.forms import FormRenderer
from registry.choices import DiseaseArea
from tests import factories as f

pytestmark = pytest.mark.django_db

DJANGO_RENDERER = "django.forms.renderers.DjangoTemplates"


def normalised(html: str) -> list[str]:
    """The page as a browser reads it: whitespace runs are one space and none counts between two
    tags (Django's templates break ``<input …>`` and a checkbox's label text with a newline where
    Jinja2's put a space); tokens, so that a failure shows where the pages part."""
    html = re.sub(r'(name="csrfmiddlewaretoken" value|name="csrf-token" content)="[^"]+"', r"\1", html)
    html = re.sub(r'nonce="[^"]+"', "nonce", html).replace("&#x27;", "&#39;")
    html = re.sub(r">\s+<", "><", re.sub(r"\s+", " ", html))
    return [token for token in re.split(r"(?<=>)", html) if token.strip()]


def both_ways(client, settings, url: str) -> tuple[list[str], list[str]]:
    pages = []
    for renderer in (DJANGO_RENDERER, "config.forms.FormRenderer"):
        settings.FORM_RENDERER = renderer
        response = client.get(url)
        assert response.status_code == 200, url
        pages.append(normalised(response.content.decode()))
    return pages[0], pages[1]


@pytest.fixture
def site():
    return f.SiteFactory(code="north")


@pytest.fixture
def lp(site):
    study = f.StudyFactory(code="npsle", disease_area=DiseaseArea.NPSLE, sites=[site])
    lp = f.LumbarPunctureFactory(patient=f.PatientFactory(study=study, site=site))
    f.CsfResultFactory(lumbar_puncture=lp)
    f.IntrathecalDoseFactory(lumbar_puncture=lp)
    return lp


def patient_in(area: str, site):
    study = f.StudyFactory(code=f"study-{area}", disease_area=area, sites=[site])
    return f.PatientFactory(study=study, site=site, area=area)


def test_case_record_forms_are_the_same_html(client, settings, site, lp):
    nurse = f.UserFactory()
    f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
    client.force_login(nurse)
    patient = lp.patient
    lm, icans = patient_in(DiseaseArea.LM, site), patient_in(DiseaseArea.ICANS, site)
    for url in (
        reverse("casebook:lp_edit", args=[patient.pk, lp.pk]),
        reverse("casebook:lp_create", args=[patient.pk]),
        reverse("casebook:patient_create"),
        reverse("casebook:record_create", args=[patient.pk, "adverse-event"]),
        reverse("casebook:record_create", args=[patient.pk, "sledai"]),
        reverse("casebook:diagnosis_edit", args=[patient.pk]),
        reverse("casebook:diagnosis_edit", args=[lm.pk]),  # checkbox lists of mutations
        reverse("casebook:lp_create", args=[lm.pk]),
        reverse("casebook:record_create", args=[icans.pk, "infusion"]),
        reverse("casebook:record_create", args=[icans.pk, "icans"]),
        reverse("casebook:record_create", args=[icans.pk, "crs"]),
    ):
        django, configured = both_ways(client, settings, url)
        assert len(django) > 100 and any(token.startswith(("<input", "<select")) for token in django), url
        assert configured == django, url


def test_admin_forms_are_the_same_html(admin_client, settings, lp):
    for url in (
        reverse("admin:registry_lumbarpuncture_change", args=[lp.pk]),
        reverse("admin:registry_patient_add"),
    ):
        django, configured = both_ways(admin_client, settings, url)
        assert configured == django, url


def test_jinja2_renders_djangos_widgets_and_the_admin_keeps_its_own():
    renderer = FormRenderer()
    assert isinstance(get_default_renderer(), FormRenderer)
    widget = renderer.get_template("django/forms/widgets/select.html")
    assert widget.__class__.__module__ == "django.template.backends.jinja2"
    admin_widget = renderer.get_template("admin/widgets/related_widget_wrapper.html")
    assert admin_widget.__class__.__module__ == "django.template.backends.django"
    assert renderer._holder == {
        "django/forms/widgets/select.html": renderer.jinja2,
        "admin/widgets/related_widget_wrapper.html": renderer.django,
    }
    assert isinstance(renderer.jinja2, Jinja2) and isinstance(renderer.django, DjangoTemplates)
