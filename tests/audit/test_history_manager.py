"""A record's history manager: its class made once, its rows still the record's own."""

import pytest

from accounts.audited import HistoryManager
from registry.models import LumbarPuncture
from review.models import SectionReview
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_history_managers_share_one_class_and_keep_their_own_records():
    first, second = f.LumbarPunctureFactory(), f.LumbarPunctureFactory()
    second.opening_pressure_mmh2o = 180
    second.save()

    assert type(first.history) is type(second.history)  # not a new class per access
    assert isinstance(first.history, HistoryManager)
    assert isinstance(SectionReview.history, HistoryManager)
    assert [row.id for row in first.history.all()] == [first.pk]
    pressures = [row.opening_pressure_mmh2o for row in second.history.all()]  # newest first
    assert len(pressures) == 2 and pressures[0] == 180
    assert LumbarPuncture.history.count() == 3
