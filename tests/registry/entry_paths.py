"""Drive one unsaved instance through the three entry paths the foundation has: model, form, admin."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import forms
from django.contrib import admin
from django.db import models
from django.urls import reverse

from registry.services.versions import signed_version


def form_data(instance: models.Model, *, split_datetimes: bool = False) -> dict[str, str | list[str]]:
    """The POST data a person would type to create ``instance``."""
    data: dict[str, str | list[str]] = {}
    for field in instance._meta.get_fields():
        if (
            not getattr(field, "editable", False)
            or field.auto_created
            or not field.concrete
            and not field.many_to_many
        ):
            continue
        if field.many_to_many:
            continue
        value = getattr(instance, field.attname)
        if field.name == "version":
            data[field.name] = signed_version(value)  # as the rendered page carries it
            continue
        if isinstance(field, models.BooleanField) and not field.null:
            if value:
                data[field.name] = "on"
            continue
        if value is None:
            data[field.name] = ""
        elif isinstance(value, dt.datetime):
            if split_datetimes:
                data[f"{field.name}_0"] = value.strftime("%Y-%m-%d")
                data[f"{field.name}_1"] = value.strftime("%H:%M:%S")
            else:
                data[field.name] = value.strftime("%Y-%m-%d %H:%M:%S")
        elif isinstance(value, dt.date):
            data[field.name] = value.isoformat()
        elif isinstance(value, bool):
            data[field.name] = "true" if value else "false"
        elif isinstance(value, Decimal):
            data[field.name] = format(value, "f")
        else:
            data[field.name] = str(value)
    return data


def form_errors(instance: models.Model) -> dict[str, list[str]]:
    form_class = forms.modelform_factory(type(instance), fields="__all__")
    form = form_class(data=form_data(instance))
    form.is_valid()
    return {field: list(messages) for field, messages in form.errors.items()}


def admin_post(client, instance: models.Model):
    """POST the admin add form for ``instance``'s model (inlines left empty)."""
    model = type(instance)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
    page = client.get(url)
    assert page.status_code == 200, f"admin add page of {model.__name__} answered {page.status_code}"
    data = form_data(instance, split_datetimes=True)
    for formset in page.context["inline_admin_formsets"]:
        prefix = formset.formset.prefix
        data |= {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"}
    return client.post(url, data)


def admin_errors(response) -> dict[str, list[str]]:
    form = response.context["adminform"].form
    return {field: list(messages) for field, messages in form.errors.items()}


def is_registered(model: type[models.Model]) -> bool:
    return admin.site.is_registered(model)
