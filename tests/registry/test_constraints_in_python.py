"""Check constraints judged in Python (registry.models.constraints) say what the database says: for
every check constraint of the registry's models, on generated records, ``evaluate`` passes a record
exactly when Django's own database check (``CheckConstraint.validate``, a query) passes it."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from registry.models.constraints import UNSUPPORTED, evaluate, referenced_fields

pytestmark = pytest.mark.django_db

MOMENT = dt.datetime(2021, 3, 2, 9, 0, tzinfo=dt.UTC)


def _samples(field: models.Field) -> list:
    """A few values of the field's type on both sides of the registry's usual limits, and NULL."""
    if field.choices:  # the codes, and values outside them
        outside = ["", "other"] if isinstance(field, models.CharField) else [-1, 99]
        return [None, *outside, *[code for code, _ in field.flatchoices if code != ""][:4]]
    if isinstance(field, models.BooleanField):
        return [None, True, False]
    if isinstance(field, models.DateTimeField):
        return [None, MOMENT, MOMENT + dt.timedelta(days=3), MOMENT - dt.timedelta(days=400)]
    if isinstance(field, models.DateField):
        return [
            None,
            MOMENT.date(),
            MOMENT.date() + dt.timedelta(days=3),
            MOMENT.date() - dt.timedelta(days=400),
        ]
    if isinstance(field, models.DecimalField):
        return [
            None,
            Decimal("-1"),
            Decimal("0"),
            Decimal("0.5"),
            Decimal("4"),
            Decimal("100"),
            Decimal("5000"),
        ]
    if isinstance(field, models.IntegerField):
        return [None, -1, 0, 1, 4, 5, 10, 30, 100, 1000, 5000]
    if isinstance(field, models.CharField | models.TextField):
        return [None, "", "other", "x"]
    return [None]


def _check_constraints():
    for model in apps.get_models():
        for constraint in model._meta.constraints:
            if isinstance(constraint, models.CheckConstraint) and isinstance(constraint.condition, Q):
                yield pytest.param(model, constraint, id=f"{model.__name__}.{constraint.name}")


@pytest.mark.parametrize(("model", "constraint"), list(_check_constraints()))
def test_python_and_the_database_judge_each_check_constraint_alike(model, constraint):
    fields = [model._meta.get_field(name) for name in referenced_fields(constraint.condition)]
    if any(field.is_relation for field in fields):
        pytest.skip("a condition over a link is left to the database")
    combinations = list(itertools.product(*(_samples(field) for field in fields)))
    random.Random(constraint.name).shuffle(combinations)
    judged = 0
    for values in combinations[:40]:
        record = model()
        for field, value in zip(fields, values, strict=True):
            setattr(record, field.attname, value)
        verdict = evaluate(constraint.condition, record)
        if verdict is UNSUPPORTED:
            continue
        try:
            constraint.validate(model, record)
            database_passes = True
        except ValidationError:
            database_passes = False
        assert (verdict is not False) == database_passes, (values, verdict)
        judged += 1
    assert judged or not combinations
