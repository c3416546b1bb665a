"""Clinical scores and grades, computed in one place from their stored components.

Models store the raw items (SLEDAI-2K descriptors, ICE items, CRS findings, lab values with their
reference limits) and call these functions on save, so a total or grade is never typed by hand.
The scale versions are recorded with each assessment.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .choices import (
    Consciousness,
    CtcaeTerm,
    CtcaeVersion,
    Hypotension,
    Hypoxia,
    MotorFinding,
    RaisedIcpFinding,
    SeizureFinding,
)

SLEDAI_2K_VERSION = "SLEDAI-2K"
ASTCT_VERSION = "ASTCT 2019"


@dataclass(frozen=True)
class SledaiDescriptor:
    field: str
    label: str
    weight: int
    definition: str


#: The 24 SLEDAI-2K descriptors in form order, with their weights (maximum total 105).
SLEDAI_2K_DESCRIPTORS: tuple[SledaiDescriptor, ...] = (
    SledaiDescriptor("seizure", "Seizure", 8, "Recent onset; not metabolic, infectious or drug-related"),
    SledaiDescriptor(
        "psychosis", "Psychosis", 8, "Severe disturbance of reality perception; not uraemic or drug-related"
    ),
    SledaiDescriptor(
        "organic_brain_syndrome",
        "Organic brain syndrome",
        8,
        "Acute, fluctuating impairment of orientation, memory or attention with ≥2 associated features",
    ),
    SledaiDescriptor(
        "visual_disturbance", "Visual disturbance", 8, "Lupus retinal changes or optic neuritis"
    ),
    SledaiDescriptor(
        "cranial_nerve_disorder", "Cranial nerve disorder", 8, "New sensory or motor cranial neuropathy"
    ),
    SledaiDescriptor(
        "lupus_headache", "Lupus headache", 8, "Severe persistent headache not responding to narcotics"
    ),
    SledaiDescriptor(
        "cva", "Cerebrovascular accident", 8, "New cerebrovascular accident; not arteriosclerotic"
    ),
    SledaiDescriptor(
        "vasculitis",
        "Vasculitis",
        8,
        "Ulceration, gangrene, finger nodules, periungual infarction, "
        "splinter haemorrhages, or biopsy/angiography proof",
    ),
    SledaiDescriptor("arthritis", "Arthritis", 4, ">2 joints with pain and signs of inflammation"),
    SledaiDescriptor(
        "myositis", "Myositis", 4, "Proximal muscle pain/weakness with raised CK/aldolase, EMG or biopsy"
    ),
    SledaiDescriptor("urinary_casts", "Urinary casts", 4, "Heme-granular or red cell casts"),
    SledaiDescriptor(
        "haematuria", "Haematuria", 4, ">5 RBC/hpf; stones, infection and other causes excluded"
    ),
    SledaiDescriptor("proteinuria", "Proteinuria", 4, ">0.5 g/24 h"),
    SledaiDescriptor("pyuria", "Pyuria", 4, ">5 WBC/hpf; infection excluded"),
    SledaiDescriptor("rash", "Rash", 2, "Inflammatory lupus rash"),
    SledaiDescriptor("alopecia", "Alopecia", 2, "Abnormal patchy or diffuse hair loss"),
    SledaiDescriptor("mucosal_ulcers", "Mucosal ulcers", 2, "Oral or nasal ulcers"),
    SledaiDescriptor("pleurisy", "Pleurisy", 2, "Pleuritic pain with rub, effusion or pleural thickening"),
    SledaiDescriptor(
        "pericarditis", "Pericarditis", 2, "Pericardial pain with rub, effusion or ECG/echo confirmation"
    ),
    SledaiDescriptor("low_complement", "Low complement", 2, "CH50, C3 or C4 below the lab's lower limit"),
    SledaiDescriptor(
        "increased_dna_binding", "Increased DNA binding", 2, "Anti-dsDNA above the lab's normal range"
    ),
    SledaiDescriptor("fever", "Fever", 1, ">38 °C, infection excluded"),
    SledaiDescriptor("thrombocytopenia", "Thrombocytopenia", 1, "Platelets <100 ×10⁹/L, drug cause excluded"),
    SledaiDescriptor("leukopenia", "Leukopenia", 1, "WBC <3.0 ×10⁹/L, drug cause excluded"),
)
SLEDAI_2K_BY_FIELD = {d.field: d for d in SLEDAI_2K_DESCRIPTORS}
SLEDAI_2K_MAXIMUM = sum(d.weight for d in SLEDAI_2K_DESCRIPTORS)


def sledai_2k_total(present: dict[str, bool]) -> int:
    """Sum of the weights of the descriptors marked present."""
    unknown = set(present) - set(SLEDAI_2K_BY_FIELD)
    if unknown:
        raise KeyError(f"not SLEDAI-2K descriptors: {sorted(unknown)}")
    return sum(SLEDAI_2K_BY_FIELD[name].weight for name, ticked in present.items() if ticked)


@dataclass(frozen=True)
class IceItem:
    field: str
    domain: str
    label: str


#: The ten one-point ICE items (10 = normal).
ICE_ITEMS: tuple[IceItem, ...] = (
    IceItem("orientation_year", "Orientation", "Knows the year"),
    IceItem("orientation_month", "Orientation", "Knows the month"),
    IceItem("orientation_city", "Orientation", "Knows the city"),
    IceItem("orientation_hospital", "Orientation", "Knows the hospital"),
    IceItem("naming_object_1", "Naming", "Names the first object"),
    IceItem("naming_object_2", "Naming", "Names the second object"),
    IceItem("naming_object_3", "Naming", "Names the third object"),
    IceItem("follows_commands", "Following commands", "Follows a simple command"),
    IceItem("writes_sentence", "Writing", "Writes a standard sentence"),
    IceItem("counts_backwards", "Attention", "Counts backwards from 100 by 10"),
)
ICE_ITEM_FIELDS = tuple(item.field for item in ICE_ITEMS)


def ice_score(items: dict[str, bool]) -> int:
    """ICE score: one point per item passed."""
    unknown = set(items) - set(ICE_ITEM_FIELDS)
    if unknown:
        raise KeyError(f"not ICE items: {sorted(unknown)}")
    return sum(1 for passed in items.values() if passed)


def ice_domain_grade(score: int, consciousness: int) -> int:
    """ICANS grade implied by the ICE score; an unarousable patient cannot be tested (grade 4)."""
    if consciousness == Consciousness.UNAROUSABLE:
        return 4
    if score >= 10:
        return 0
    if score >= 7:
        return 1
    if score >= 3:
        return 2
    return 3


def icans_grade(*, ice: int, consciousness: int, seizure: int, motor: int, raised_icp: int) -> int:
    """ASTCT ICANS grade: the most severe of its five domains.

    The consciousness, seizure, motor and raised-ICP enums carry the grade they imply as their value.
    """
    return max(
        ice_domain_grade(ice, consciousness),
        Consciousness(consciousness).value,
        SeizureFinding(seizure).value,
        MotorFinding(motor).value,
        RaisedIcpFinding(raised_icp).value,
    )


def crs_grade(
    *, fever: bool, hypotension: int, hypoxia: int, fever_masked_by_treatment: bool, death_from_crs: bool
) -> int:
    """ASTCT CRS grade: fever plus the more severe of hypotension and hypoxia.

    After antipyretics or anti-cytokine therapy fever is no longer required; without fever (and
    without such treatment) hypotension or hypoxia alone is not CRS.
    """
    if death_from_crs:
        return 5
    organ = max(Hypotension(hypotension).value, Hypoxia(hypoxia).value)
    if fever:
        return max(1, organ)
    if fever_masked_by_treatment:
        return organ
    return 0


@dataclass(frozen=True)
class LabCutpoints:
    """Lower-is-worse cut-points: a value below g2 is grade ≥2, below g3 grade ≥3, below g4 grade 4.

    Grade 1 is "below the lab's lower limit of normal down to g2", so it needs the LLN.
    """

    unit: str
    g2_below: Decimal
    g3_below: Decimal
    g4_below: Decimal


@dataclass(frozen=True)
class FoldUlnCutpoints:
    """Higher-is-worse cut-points as multiples of the upper limit of normal (baseline normal)."""

    unit: str
    g2_above: Decimal
    g3_above: Decimal
    g4_above: Decimal


#: CTCAE lab cut-points by (version, term). Only verified rows are listed (clinical_reference §4);
#: any other combination gets no suggested grade rather than a guess.
CTCAE_LAB_RULES: dict[tuple[str, str], LabCutpoints | FoldUlnCutpoints] = {
    (CtcaeVersion.V5, CtcaeTerm.WBC_DECREASED): LabCutpoints(
        "×10⁹/L", Decimal("3.0"), Decimal("2.0"), Decimal("1.0")
    ),
    (CtcaeVersion.V5, CtcaeTerm.NEUTROPHIL_DECREASED): LabCutpoints(
        "×10⁹/L", Decimal("1.5"), Decimal("1.0"), Decimal("0.5")
    ),
    (CtcaeVersion.V5, CtcaeTerm.PLATELET_DECREASED): LabCutpoints(
        "×10⁹/L", Decimal("75"), Decimal("50"), Decimal("25")
    ),
    (CtcaeVersion.V6, CtcaeTerm.NEUTROPHIL_DECREASED): LabCutpoints(
        "×10⁹/L", Decimal("1.0"), Decimal("0.5"), Decimal("0.1")
    ),
    (CtcaeVersion.V5, CtcaeTerm.ALT_INCREASED): FoldUlnCutpoints(
        "U/L", Decimal("3"), Decimal("5"), Decimal("20")
    ),
    (CtcaeVersion.V5, CtcaeTerm.AST_INCREASED): FoldUlnCutpoints(
        "U/L", Decimal("3"), Decimal("5"), Decimal("20")
    ),
}


def ctcae_lab_unit(version: str, term: str) -> str | None:
    rule = CTCAE_LAB_RULES.get((version, term))
    return rule.unit if rule else None


def ctcae_grade_from_lab(
    version: str,
    term: str,
    value: Decimal,
    *,
    lower_limit: Decimal | None = None,
    upper_limit: Decimal | None = None,
) -> int | None:
    """The CTCAE grade a laboratory value implies, 0 when normal, or None when it cannot be graded.

    None means: no verified rule for this term and version, or the value falls in grade 1 territory
    but the lab's reference limit needed to confirm it was not recorded.
    """
    rule = CTCAE_LAB_RULES.get((version, term))
    if rule is None:
        return None
    if isinstance(rule, LabCutpoints):
        if value < rule.g4_below:
            return 4
        if value < rule.g3_below:
            return 3
        if value < rule.g2_below:
            return 2
        if lower_limit is None:
            return None
        return 1 if value < lower_limit else 0
    if upper_limit is None or upper_limit <= 0:
        return None
    fold = value / upper_limit
    if fold > rule.g4_above:
        return 4
    if fold > rule.g3_above:
        return 3
    if fold > rule.g2_above:
        return 2
    return 1 if fold > 1 else 0
