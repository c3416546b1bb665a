"""A large figure is not inlined in the report page: the page links it, served once per run by URL,
only to viewers of the run's own site scope."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from analytics.reports import display
from analytics.reports.definitions import default_definition
from tests.reports.conftest import researcher

pytestmark = pytest.mark.django_db


def test_large_figures_are_images_served_by_url_to_the_runs_own_viewers(client, demo, monkeypatch):
    monkeypatch.setattr(display, "INLINE_SVG_MAX_BYTES", 0)  # every figure counts as large
    definition = default_definition(demo["lm"])
    client.force_login(researcher("chest-researcher", "chest"))
    page = client.get(reverse("reports:detail", args=[definition.pk])).content.decode()
    urls = re.findall(
        r'<img alt="[^"]*" src="([^"]+\.svg)" loading="lazy" data-testid="figure-by-url">', page
    )
    assert urls and "<svg" not in page, "no figure is inlined"
    figure = client.get(urls[0])
    assert figure.status_code == 200 and figure["Content-Type"] == "image/svg+xml"
    assert "<svg" in figure.content.decode() and "immutable" in figure["Cache-Control"]

    client.force_login(researcher("other-scope", "chest", "haem"))
    assert client.get(urls[0]).status_code == 404, "another site scope never sees this run's figures"
