"""How forms and their widgets are rendered: Django's own templates through Jinja2.

Django ships each of its form and widget templates twice, for its own template language and for
Jinja2, and keeps the pair equal. Rendered through Jinja2 they cost a third less: the LP edit page
(about 140 widgets: the LP, its CSF, four dose rows and their products) took 66-72 ms of CPU per
request with Django's renderer and 40-48 ms with this one (three runs each, SQLite, DEBUG off,
2026-12-07); the page is the same but for whitespace between tags and an apostrophe written
``&#39;`` instead of ``&#x27;`` (``tests/test_form_renderer.py``). A template that exists only for
Django's language — the admin's widgets — is rendered by Django's renderer, as before.
"""

from __future__ import annotations

from typing import Any

from django.forms.renderers import BaseRenderer, DjangoTemplates, Jinja2
from django.template import TemplateDoesNotExist


class FormRenderer(BaseRenderer):
    """Jinja2 for the templates it has, Django's template language for the rest."""

    def __init__(self) -> None:
        self.jinja2, self.django = Jinja2(), DjangoTemplates()
        #: Which renderer holds each template, found once: a miss in Jinja2 is not searched again.
        self._holder: dict[str, BaseRenderer] = {}

    def get_template(self, template_name: str) -> Any:
        holder = self._holder.get(template_name)
        if holder is not None:
            return holder.get_template(template_name)
        try:
            template = self.jinja2.get_template(template_name)
            holder = self.jinja2
        except TemplateDoesNotExist:
            template = self.django.get_template(template_name)
            holder = self.django
        self._holder[template_name] = holder
        return template
