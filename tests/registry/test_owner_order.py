"""Rows of one owner in the model's own order, without the joins that ordering by the owner adds.

``Meta.ordering = ["patient", "performed_at"]`` orders by the patient's own ordering (its study's
code, its study code): two joins up to the study in every query that keeps the default order. Writes
read their section review and a patient's rows many times each, so those reads drop that part.
"""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registry.choices import Section, SystemicTherapyCategory
from registry.models import IntrathecalDose, LumbarPuncture, Study, SystemicTherapy
from review.models import ReviewStatus, SectionReview
from tests import factories as f
from tests.registry.test_services import record

pytestmark = pytest.mark.django_db


def _orders_by_study(sql: str) -> bool:
    return "ORDER BY" in sql and "registry_study" in sql.rsplit("ORDER BY", 1)[1]


def test_within_owner_drops_only_the_leading_relation():
    assert LumbarPuncture.objects.within_owner().query.order_by == ("performed_at",)
    assert IntrathecalDose.objects.within_owner().query.order_by == ("drug",)
    assert SystemicTherapy.objects.within_owner().query.order_by == ("start_date", "category")
    assert Study.objects.within_owner().query.order_by == ("code",)  # no owner to drop


def test_one_patients_rows_come_in_the_default_order_without_joining_the_study():
    patient = f.PatientFactory()
    other = f.PatientFactory(study=patient.study, site=patient.site)
    start = timezone.make_aware(dt.datetime(2021, 5, 1, 9, 0))
    for days in (9, 2, 30, 5):  # saved out of date order
        f.LumbarPunctureFactory(patient=patient, performed_at=start + dt.timedelta(days=days))
        f.LumbarPunctureFactory(patient=other, performed_at=start + dt.timedelta(days=days))
    for category in (SystemicTherapyCategory.RITUXIMAB, SystemicTherapyCategory.ORAL_GLUCOCORTICOID):
        f.SystemicTherapyFactory(patient=patient, category=category)

    for model in (LumbarPuncture, SystemicTherapy):
        default = list(model.objects.filter(patient=patient))
        with CaptureQueriesContext(connection) as read:
            owned = list(model.objects.filter(patient=patient).within_owner())
        assert owned == default
        assert "JOIN" not in read.captured_queries[0]["sql"]
    assert [lp.performed_at.day for lp in LumbarPuncture.objects.filter(patient=patient).within_owner()] == [
        3,
        6,
        10,
        31,
    ]


def test_recording_an_lp_orders_nothing_by_the_study():
    """The write path (validation, the review guard, the quality rules) reads no row in study order."""
    patient, nurse = f.PatientFactory(), f.UserFactory()
    SectionReview.objects.create(patient=patient, section=Section.PROCEDURES, status=ReviewStatus.SUBMITTED)
    with CaptureQueriesContext(connection) as written:
        record(patient, nurse, reason="Corrected from the ward sheet")
    assert written.captured_queries
    ordered = [query["sql"] for query in written.captured_queries if _orders_by_study(query["sql"])]
    assert ordered == []
