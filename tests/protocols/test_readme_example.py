"""The README's LM example, as written there: the calendar and the step back after grade 3."""

import datetime as dt

import pytest

from protocols.selectors import next_injection
from registry.choices import CtcaeTerm
from tests import factories as f
from tests.protocols.conftest import give, lm_doses, start

pytestmark = pytest.mark.django_db


def test_the_readme_pemetrexed_example(seeds, lm_patient, nurse):
    course = start(lm_patient, seeds["lm-pemetrexed"], nurse, dt.date(2021, 3, 1))
    first_eight = list(course.injections.order_by("sequence")[:8])
    assert [i.planned_date.day for i in first_eight] == [1, 4, 8, 11, 15, 18, 22, 25]
    for injection, mg in zip(first_eight[:4], ("10", "15", "20", "25"), strict=True):
        give(lm_patient, injection.planned_date, lm_doses(mg), nurse)
    f.AdverseEventFactory(
        patient=lm_patient,
        ctcae_term=CtcaeTerm.NEUTROPHIL_DECREASED,
        grade=3,
        onset_date=dt.date(2021, 3, 13),
    )
    upcoming = next_injection(lm_patient)
    assert {d.drug: d.dose_mg for d in upcoming.doses if d.drug == "pemetrexed"} == {"pemetrexed": 20}
    give(
        lm_patient,
        upcoming.injection.planned_date,
        lm_doses("20"),
        nurse,
        overrides={"cytopenia": "Recovered: ANC 1.8 on the day"},
    )
    again = next_injection(lm_patient)
    assert [d.dose_mg for d in again.doses if d.drug == "pemetrexed"] == [20]
