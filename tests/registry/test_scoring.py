"""Scores and grades computed from their components (clinical_reference §2–4)."""

from decimal import Decimal

import pytest

from registry.choices import (
    Consciousness,
    CtcaeTerm,
    CtcaeVersion,
    Hypotension,
    Hypoxia,
    MotorFinding,
    RaisedIcpFinding,
    SeizureFinding,
)
from registry.scoring import (
    ICE_ITEM_FIELDS,
    SLEDAI_2K_DESCRIPTORS,
    SLEDAI_2K_MAXIMUM,
    crs_grade,
    ctcae_grade_from_lab,
    icans_grade,
    ice_score,
    sledai_2k_total,
)


def test_sledai_has_24_descriptors_summing_to_105():
    assert len(SLEDAI_2K_DESCRIPTORS) == 24
    assert SLEDAI_2K_MAXIMUM == 105
    weights = sorted(d.weight for d in SLEDAI_2K_DESCRIPTORS)
    assert weights.count(8) == 8 and weights.count(4) == 6 and weights.count(2) == 7 and weights.count(1) == 3


def test_sledai_total_sums_ticked_weights():
    assert (
        sledai_2k_total({"seizure": True, "psychosis": True, "arthritis": True, "fever": True, "rash": False})
        == 21
    )
    assert sledai_2k_total({d.field: True for d in SLEDAI_2K_DESCRIPTORS}) == 105
    assert sledai_2k_total({}) == 0


def test_sledai_rejects_unknown_descriptor():
    with pytest.raises(KeyError):
        sledai_2k_total({"headache": True})


def test_ice_score_counts_items():
    assert len(ICE_ITEM_FIELDS) == 10
    assert ice_score(dict.fromkeys(ICE_ITEM_FIELDS, True)) == 10
    assert ice_score({"orientation_year": True, "writes_sentence": True}) == 2


def grade(
    ice=10,
    consciousness=Consciousness.NORMAL,
    seizure=SeizureFinding.NONE,
    motor=MotorFinding.NONE,
    raised_icp=RaisedIcpFinding.NONE,
):
    return icans_grade(
        ice=ice, consciousness=consciousness, seizure=seizure, motor=motor, raised_icp=raised_icp
    )


@pytest.mark.parametrize(("ice", "expected"), [(10, 0), (9, 1), (7, 1), (6, 2), (3, 2), (2, 3), (0, 3)])
def test_icans_grade_from_ice_alone(ice, expected):
    assert grade(ice=ice) == expected


def test_icans_grade_is_the_worst_domain():
    assert grade(ice=3, seizure=SeizureFinding.RAPIDLY_RESOLVING) == 3  # the reference's worked example
    assert grade(ice=8, consciousness=Consciousness.AWAKENS_TO_VOICE) == 2
    assert grade(ice=9, motor=MotorFinding.DEEP_FOCAL_WEAKNESS) == 4
    assert grade(ice=9, raised_icp=RaisedIcpFinding.FOCAL_OEDEMA) == 3
    assert grade(ice=9, seizure=SeizureFinding.LIFE_THREATENING) == 4


def test_unarousable_patient_is_grade_4_while_awake_ice_0_is_grade_3():
    assert grade(ice=0, consciousness=Consciousness.UNAROUSABLE) == 4
    assert grade(ice=0, consciousness=Consciousness.NORMAL) == 3


def crs(fever=True, hypotension=Hypotension.NONE, hypoxia=Hypoxia.NONE, masked=False, death=False):
    return crs_grade(
        fever=fever,
        hypotension=hypotension,
        hypoxia=hypoxia,
        fever_masked_by_treatment=masked,
        death_from_crs=death,
    )


def test_crs_grade_follows_the_worse_of_hypotension_and_hypoxia():
    assert crs() == 1
    assert crs(hypoxia=Hypoxia.LOW_FLOW) == 2
    assert crs(hypotension=Hypotension.ONE_VASOPRESSOR, hypoxia=Hypoxia.LOW_FLOW) == 3  # reference example
    assert crs(hypotension=Hypotension.NO_VASOPRESSOR, hypoxia=Hypoxia.POSITIVE_PRESSURE) == 4
    assert crs(death=True) == 5


def test_crs_needs_fever_unless_masked_by_treatment():
    assert crs(fever=False, hypotension=Hypotension.ONE_VASOPRESSOR) == 0
    assert crs(fever=False, masked=True, hypotension=Hypotension.ONE_VASOPRESSOR) == 3


@pytest.mark.parametrize(
    ("term", "value", "lln", "expected"),
    [
        (CtcaeTerm.NEUTROPHIL_DECREASED, "0.49", "2.0", 4),  # admiral's boundary values
        (CtcaeTerm.NEUTROPHIL_DECREASED, "0.5", "2.0", 3),
        (CtcaeTerm.NEUTROPHIL_DECREASED, "1.0", "2.0", 2),
        (CtcaeTerm.NEUTROPHIL_DECREASED, "1.5", "2.0", 1),
        (CtcaeTerm.NEUTROPHIL_DECREASED, "2.0", "2.0", 0),
        (CtcaeTerm.PLATELET_DECREASED, "24", "125", 4),
        (CtcaeTerm.PLATELET_DECREASED, "25", "125", 3),
        (CtcaeTerm.PLATELET_DECREASED, "74", "125", 2),
        (CtcaeTerm.PLATELET_DECREASED, "100", "125", 1),
        (CtcaeTerm.WBC_DECREASED, "0.9", "3.5", 4),
        (CtcaeTerm.WBC_DECREASED, "2.5", "3.5", 2),
    ],
)
def test_ctcae_v5_cytopenia_grades(term, value, lln, expected):
    assert ctcae_grade_from_lab(CtcaeVersion.V5, term, Decimal(value), lower_limit=Decimal(lln)) == expected


def test_grade_1_needs_the_labs_lower_limit():
    assert ctcae_grade_from_lab(CtcaeVersion.V5, CtcaeTerm.NEUTROPHIL_DECREASED, Decimal("1.7")) is None


def test_ctcae_v6_neutrophils_use_their_own_cut_points():
    assert ctcae_grade_from_lab(CtcaeVersion.V6, CtcaeTerm.NEUTROPHIL_DECREASED, Decimal("0.3")) == 3
    assert ctcae_grade_from_lab(CtcaeVersion.V5, CtcaeTerm.NEUTROPHIL_DECREASED, Decimal("0.3")) == 4


def test_unverified_rules_suggest_nothing():
    assert ctcae_grade_from_lab(CtcaeVersion.V6, CtcaeTerm.PLATELET_DECREASED, Decimal("10")) is None
    assert ctcae_grade_from_lab(CtcaeVersion.V5, CtcaeTerm.HEADACHE, Decimal("1")) is None


def test_transaminase_grade_is_a_multiple_of_the_upper_limit():
    alt = CtcaeTerm.ALT_INCREASED
    assert ctcae_grade_from_lab(CtcaeVersion.V5, alt, Decimal("100"), upper_limit=Decimal("40")) == 1
    assert ctcae_grade_from_lab(CtcaeVersion.V5, alt, Decimal("180"), upper_limit=Decimal("40")) == 2
    assert ctcae_grade_from_lab(CtcaeVersion.V5, alt, Decimal("900"), upper_limit=Decimal("40")) == 4
    assert ctcae_grade_from_lab(CtcaeVersion.V5, alt, Decimal("900")) is None
