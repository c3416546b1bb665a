"""The one table of intrathecal dose caps, its messages, and the pemetrexed escalation rule."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from protocols.seed import read_fixture
from registry.choices import IntrathecalDrug
from registry.dosing import INTRATHECAL_DOSE_LIMITS, EscalationRule, dose_cap_message
from registry.models import IntrathecalDose
from tests import factories as f

CAPS = {
    IntrathecalDrug.METHOTREXATE: 15,
    IntrathecalDrug.DEXAMETHASONE: 20,
    IntrathecalDrug.PEMETREXED: 50,
    IntrathecalDrug.CYTARABINE: 100,
    IntrathecalDrug.LIPOSOMAL_CYTARABINE: 50,
}


def test_caps_are_the_documented_ones():
    assert {drug: int(limit.max_mg) for drug, limit in INTRATHECAL_DOSE_LIMITS.items()} == CAPS


@pytest.mark.parametrize(("drug", "cap"), CAPS.items())
def test_dose_at_cap_is_accepted_and_above_is_refused(drug, cap):
    assert dose_cap_message(drug, Decimal(cap)) is None
    message = dose_cap_message(drug, Decimal(cap) + Decimal("0.5"))
    assert message and f"limit of {cap} mg" in message


def test_message_names_the_likely_slip():
    assert "Did you mean 12 mg?" in dose_cap_message(IntrathecalDrug.METHOTREXATE, Decimal("120"))
    assert "Did you mean 10 mg?" in dose_cap_message(IntrathecalDrug.METHOTREXATE, Decimal("10000"))
    assert "systemic dose" in dose_cap_message(IntrathecalDrug.METHOTREXATE, Decimal("17"))


@pytest.mark.django_db
@pytest.mark.parametrize(("drug", "cap"), CAPS.items())
def test_database_enforces_the_same_caps(drug, cap):
    """The backstop for writes that skip validation: generated from the same table."""
    dose = f.IntrathecalDoseFactory(drug=drug, dose_mg=Decimal(cap))
    with pytest.raises(IntegrityError), transaction.atomic():
        IntrathecalDose._base_manager.filter(pk=dose.pk).update(dose_mg=Decimal(cap) + 1)


def _seed_pemetrexed_escalation() -> EscalationRule:
    """The seed LM protocol's pemetrexed component (10 mg rising by 5 mg to 50 mg), as installed."""
    (component,) = [
        c
        for protocol in read_fixture()["protocols"]
        for c in protocol["components"]
        if c["drug"] == IntrathecalDrug.PEMETREXED and c["rule"] == "escalating"
    ]
    return EscalationRule(
        Decimal(component["dose_mg"]), Decimal(component["step_mg"]), Decimal(component["cap_mg"])
    )


PEMETREXED_ESCALATION = _seed_pemetrexed_escalation()


def test_pemetrexed_escalates_by_5_to_the_cap():
    dose, ceiling, given = None, None, []
    for _ in range(11):
        dose, ceiling = PEMETREXED_ESCALATION.next_dose(dose, ceiling_mg=ceiling, step_back=False)
        given.append(int(dose))
    assert given == [10, 15, 20, 25, 30, 35, 40, 45, 50, 50, 50]


def test_pemetrexed_steps_back_and_stays_there():
    rule = PEMETREXED_ESCALATION
    dose, ceiling = rule.next_dose(Decimal("25"), ceiling_mg=None, step_back=True)
    assert (dose, ceiling) == (Decimal("20"), Decimal("20"))
    dose, ceiling = rule.next_dose(dose, ceiling_mg=ceiling, step_back=False)
    assert dose == Decimal("20")
    assert rule.next_dose(Decimal("10"), ceiling_mg=None, step_back=True)[0] == Decimal("10")
