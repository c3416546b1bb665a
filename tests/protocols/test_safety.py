"""Every safety check fires on its trigger and not otherwise; overrides need a reason and are audited."""

import datetime as dt
from decimal import Decimal

import pytest

from protocols.choices import SafetyCheck, Severity
from protocols.models import Formulation, SafetyOverride
from protocols.planning import ProposedDose
from protocols.safety import (
    AdverseEventFact,
    ComponentFact,
    DoseEntry,
    InjectionContext,
    Requirement,
    TherapyFact,
    check_injection,
    evaluate,
)
from protocols.services import SafetyCheckError, injection_record
from registry.choices import CtcaeTerm, DoseTiming, IntrathecalDrug, SystemicTherapyCategory
from registry.models import LumbarPuncture
from tests import factories as f
from tests.protocols.conftest import START, at, dose, give, lm_doses, npsle_doses, start, with_vitamins

pytestmark = pytest.mark.django_db

WHEN = at(START)
MTX, DEX, PEM = IntrathecalDrug.METHOTREXATE, IntrathecalDrug.DEXAMETHASONE, IntrathecalDrug.PEMETREXED


def codes(context: InjectionContext) -> set[str]:
    return {finding.code for finding in evaluate(context)}


def ctx(*doses, **fields) -> InjectionContext:
    entries = [DoseEntry(drug, Decimal(mg)) for drug, mg in doses] or [DoseEntry(MTX, Decimal("10"))]
    return InjectionContext(performed_at=fields.pop("performed_at", WHEN), doses=entries, **fields)


NPSLE = {
    "protocol_label": "NPSLE (version 1)",
    "components": [
        ComponentFact(DEX, DoseTiming.WITH, Decimal("10")),
        ComponentFact(MTX, DoseTiming.WITH, Decimal("10")),
    ],
    "phase_label": "weekly injections",
    "min_interval_hours": 120,
    "proposed": [ProposedDose(DEX, Decimal("10")), ProposedDose(MTX, Decimal("10"))],
}


def test_a_clean_injection_has_no_finding():
    assert evaluate(ctx((DEX, "10"), (MTX, "10"), opening_pressure_mmh2o=180, **NPSLE)) == []


def test_absolute_cap_is_an_error_with_the_unit_hint():
    findings = evaluate(ctx((MTX, "120")))
    assert [(x.code, x.severity, x.field) for x in findings] == [
        (SafetyCheck.ABSOLUTE_CAP, Severity.ERROR, "doses.0.dose_mg")
    ]
    assert "Did you mean 12 mg?" in findings[0].message and not findings[0].overridable
    assert codes(ctx((MTX, "15"))) == set()


def test_protocol_cap():
    assert codes(ctx((DEX, "10"), (MTX, "12"), **NPSLE)) == {SafetyCheck.PROTOCOL_CAP}
    assert codes(ctx((DEX, "10"), (MTX, "10"), **NPSLE)) == set()
    assert codes(ctx((MTX, "12"))) == set(), "without a course only the absolute cap applies"


@pytest.mark.parametrize(
    ("mg", "expected"),
    [
        ("1", {SafetyCheck.UNIT_SLIP}),
        ("0.01", {SafetyCheck.UNIT_SLIP}),
        ("100", {SafetyCheck.UNIT_SLIP, SafetyCheck.ABSOLUTE_CAP}),
        ("10", set()),
        ("5", set()),
        ("12", {SafetyCheck.PROTOCOL_CAP}),
    ],
)
def test_unit_slip_against_the_proposed_dose(mg, expected):
    assert codes(ctx((DEX, "10"), (MTX, mg), **NPSLE)) == expected


def test_interval_shorter_than_the_phase_allows():
    previous = WHEN - dt.timedelta(hours=100)
    assert codes(ctx((DEX, "10"), (MTX, "10"), previous_injection_at=previous, **NPSLE)) == {
        SafetyCheck.INTERVAL
    }
    assert (
        codes(ctx((DEX, "10"), (MTX, "10"), previous_injection_at=WHEN - dt.timedelta(days=6), **NPSLE))
        == set()
    )
    assert codes(ctx(previous_injection_at=previous)) == set(), "without a course there is no interval rule"


FOLIC = Requirement(SystemicTherapyCategory.FOLIC_ACID, PEM, "folic acid 400 µg daily", lead_min_days=7)
B12 = Requirement(
    SystemicTherapyCategory.VITAMIN_B12, PEM, "vitamin B12 1,000 µg IM", lead_min_days=7, repeat_days=63
)


def vitamins(folic_start, b12_start, *, folic_end=None, b12_end=None):
    return [
        TherapyFact(SystemicTherapyCategory.FOLIC_ACID, folic_start, folic_end),
        TherapyFact(SystemicTherapyCategory.VITAMIN_B12, b12_start, b12_end),
    ]


@pytest.mark.parametrize(
    ("therapies", "first", "expected"),
    [
        (vitamins(START - dt.timedelta(days=10), START - dt.timedelta(days=10)), True, set()),
        ([], True, {SafetyCheck.FOLIC_ACID, SafetyCheck.VITAMIN_B12}),
        (
            vitamins(START - dt.timedelta(days=3), START - dt.timedelta(days=10)),
            True,
            {SafetyCheck.FOLIC_ACID},
        ),
        (vitamins(START - dt.timedelta(days=3), START - dt.timedelta(days=10)), False, set()),
        (
            vitamins(
                START - dt.timedelta(days=30),
                START - dt.timedelta(days=30),
                folic_end=START - dt.timedelta(days=1),
            ),
            False,
            {SafetyCheck.FOLIC_ACID},
        ),
        (
            vitamins(
                START - dt.timedelta(days=90),
                START - dt.timedelta(days=70),
                b12_end=START - dt.timedelta(days=70),
            ),
            False,
            {SafetyCheck.VITAMIN_B12},
        ),
        (
            vitamins(
                START - dt.timedelta(days=90),
                START - dt.timedelta(days=30),
                b12_end=START - dt.timedelta(days=30),
            ),
            False,
            set(),
        ),
    ],
)
def test_pemetrexed_needs_folic_acid_and_vitamin_b12(therapies, first, expected):
    context = ctx(
        (PEM, "10"),
        requirements=[FOLIC, B12],
        therapies=therapies,
        first_with=frozenset({PEM}) if first else frozenset(),
    )
    assert codes(context) == expected
    assert codes(ctx((MTX, "12"), requirements=[FOLIC, B12])) == set(), "only with pemetrexed"


def test_other_supportive_care_a_protocol_requires():
    requirement = Requirement(
        SystemicTherapyCategory.SYSTEMIC_DEXAMETHASONE,
        IntrathecalDrug.LIPOSOMAL_CYTARABINE,
        "dexamethasone 4 mg twice daily",
    )
    assert codes(ctx((IntrathecalDrug.LIPOSOMAL_CYTARABINE, "50"), requirements=[requirement])) == {
        SafetyCheck.SUPPORTIVE_CARE
    }


def platelets(value, days_before=1, grade=2):
    return AdverseEventFact(
        CtcaeTerm.PLATELET_DECREASED, grade, START - dt.timedelta(days=days_before), Decimal(value)
    )


def test_platelets_below_the_threshold_since_the_last_dose():
    previous = WHEN - dt.timedelta(days=7)
    assert codes(ctx(adverse_events=[platelets("45", grade=3)], previous_injection_at=previous)) == {
        SafetyCheck.PLATELETS,
        SafetyCheck.CYTOPENIA,
    }
    threshold = {"platelet_threshold_1e9_per_l": Decimal("75")}
    assert codes(ctx(adverse_events=[platelets("60")], previous_injection_at=previous, **threshold)) == {
        SafetyCheck.PLATELETS
    }
    assert codes(ctx(adverse_events=[platelets("80")], previous_injection_at=previous, **threshold)) == set()
    assert (
        codes(
            ctx(adverse_events=[platelets("60", days_before=10)], previous_injection_at=previous, **threshold)
        )
        == set()
    )


def test_grade_3_cytopenia_since_the_last_dose():
    previous = WHEN - dt.timedelta(days=7)
    neutropenia = AdverseEventFact(
        CtcaeTerm.NEUTROPHIL_DECREASED, 3, START - dt.timedelta(days=2), Decimal("0.8")
    )
    assert codes(ctx(adverse_events=[neutropenia], previous_injection_at=previous)) == {SafetyCheck.CYTOPENIA}
    mild = AdverseEventFact(CtcaeTerm.NEUTROPHIL_DECREASED, 2, START - dt.timedelta(days=2), Decimal("1.2"))
    assert codes(ctx(adverse_events=[mild], previous_injection_at=previous)) == set()
    earlier = AdverseEventFact(CtcaeTerm.WBC_DECREASED, 3, START - dt.timedelta(days=9), Decimal("1.5"))
    assert codes(ctx(adverse_events=[earlier], previous_injection_at=previous)) == set()
    headache = AdverseEventFact(CtcaeTerm.HEADACHE, 3, START - dt.timedelta(days=2))
    assert codes(ctx(adverse_events=[headache], previous_injection_at=previous)) == set()
    # A first injection looks back two weeks.
    assert codes(ctx(adverse_events=[earlier])) == {SafetyCheck.CYTOPENIA}


@pytest.mark.parametrize(("pressure", "fires"), [(70, True), (79, True), (80, False), (None, False)])
def test_low_opening_pressure(pressure, fires):
    assert (SafetyCheck.LOW_ICP in codes(ctx(opening_pressure_mmh2o=pressure))) is fires


def test_drug_not_in_the_protocol():
    assert codes(ctx((DEX, "10"), (IntrathecalDrug.CYTARABINE, "30"), **NPSLE)) == {
        SafetyCheck.DRUG_NOT_IN_PROTOCOL
    }
    assert codes(ctx((IntrathecalDrug.CYTARABINE, "30"))) == set()


def test_a_preservative_containing_formulation(seeds):
    preserved = Formulation.objects.get(name__contains="Methotrexate injection with benzyl alcohol")
    clean = Formulation.objects.get(name="Methotrexate injection, preservative-free")
    context = InjectionContext(
        performed_at=WHEN, doses=[DoseEntry(MTX, Decimal("10"), formulation=preserved)]
    )
    assert [(x.code, x.field) for x in evaluate(context)] == [
        (SafetyCheck.PRESERVATIVE, "doses.0.formulation")
    ]
    context = InjectionContext(performed_at=WHEN, doses=[DoseEntry(MTX, Decimal("10"), formulation=clean)])
    assert evaluate(context) == []


# --- reading the registry --------------------------------------------------------------------------


def test_check_injection_reads_the_course_the_adverse_events_and_the_vitamins(seeds, lm_patient, nurse):
    start(lm_patient, seeds["lm-pemetrexed"], nurse)
    assert check_injection(lm_patient, at(START), lm_doses("10"), 150) == []
    give(lm_patient, START, lm_doses("10"), nurse)
    f.AdverseEventFactory(
        patient=lm_patient,
        ctcae_term=CtcaeTerm.NEUTROPHIL_DECREASED,
        grade=3,
        lab_value=Decimal("0.8"),
        lab_lower_limit=Decimal("2.0"),
        onset_date=START + dt.timedelta(days=1),
    )
    findings = check_injection(
        lm_patient,
        at(START + dt.timedelta(days=1), 20),
        [{"drug": "pemetrexed", "dose_mg": "100", "timing": "with"}, {"drug": "cytarabine", "dose_mg": "30"}],
        60,
    )
    assert [x.code for x in findings] == [
        SafetyCheck.ABSOLUTE_CAP,
        SafetyCheck.UNIT_SLIP,  # 100 mg is 10× the proposed 10 mg (stepped back after the neutropenia)
        SafetyCheck.INTERVAL,  # 34 h after the first, in the twice-weekly phase (48 h)
        SafetyCheck.CYTOPENIA,
        SafetyCheck.LOW_ICP,
        SafetyCheck.DRUG_NOT_IN_PROTOCOL,
    ]
    assert {x.code: x.field for x in findings}[SafetyCheck.INTERVAL] == "performed_at"
    assert all(isinstance(x.to_dict()["overridable"], bool) for x in findings)


def test_pemetrexed_outside_a_course_still_needs_the_vitamins(npsle_patient):
    findings = check_injection(npsle_patient, at(START), [dose(PEM, "10")], 150)
    assert {x.code for x in findings} == {SafetyCheck.FOLIC_ACID, SafetyCheck.VITAMIN_B12}
    with_vitamins(npsle_patient)
    assert check_injection(npsle_patient, at(START), [dose(PEM, "10")], 150) == []


# --- overrides -------------------------------------------------------------------------------------


def test_a_finding_blocks_the_save_until_overridden_with_a_reason(seeds, npsle_patient, nurse):
    start(npsle_patient, seeds["npsle-pumch"], nurse)
    with pytest.raises(SafetyCheckError) as refused:
        give(npsle_patient, START, npsle_doses(), nurse, pressure=60)
    assert [x.code for x in refused.value.findings] == [SafetyCheck.LOW_ICP]
    assert "Override it with a reason" in refused.value.message_dict["overrides.low_icp"][0]
    with pytest.raises(SafetyCheckError):
        give(npsle_patient, START, npsle_doses(), nurse, pressure=60, overrides={"low_icp": "   "})
    assert not LumbarPuncture.objects.exists() and not SafetyOverride.objects.exists()

    outcome = give(
        npsle_patient,
        START,
        npsle_doses(),
        nurse,
        pressure=60,
        overrides={"low_icp": "Headache relief needed; slow tap"},
    )
    override = SafetyOverride.objects.get()
    assert override.lumbar_puncture == outcome.lumbar_puncture
    assert (override.check_code, override.reason, override.overridden_by) == (
        SafetyCheck.LOW_ICP,
        "Headache relief needed; slow tap",
        nurse,
    )
    assert "60 mmH2O" in override.finding
    row = override.history.get()
    assert (row.history_user, row.history_change_reason, row.history_type) == (
        nurse,
        "Headache relief needed; slow tap",
        "+",
    )
    assert outcome.planned_injection.status == "given", "an override does not make the injection a deviation"


def test_an_error_cannot_be_overridden(npsle_patient, nurse):
    with pytest.raises(SafetyCheckError) as refused:
        give(npsle_patient, START, [dose(MTX, "120")], nurse, overrides={"absolute_cap": "I insist"})
    assert "Did you mean 12 mg?" in refused.value.message_dict["doses.0.dose_mg"][0]
    assert not LumbarPuncture.objects.exists()


def test_an_unchanged_injection_is_not_checked_again_and_an_override_holds(seeds, npsle_patient, nurse):
    start(npsle_patient, seeds["npsle-pumch"], nurse)
    lp = give(
        npsle_patient, START, npsle_doses(), nurse, pressure=60, overrides={"low_icp": "accepted"}
    ).lumbar_puncture
    lp = LumbarPuncture.objects.get(pk=lp.pk)
    lp.closing_pressure_mmh2o = 40
    injection_record(lp=lp, doses=list(lp.doses.all()), actor=nurse, reason="closing pressure added")
    lp = LumbarPuncture.objects.get(pk=lp.pk)
    lp.opening_pressure_mmh2o = 65
    injection_record(lp=lp, doses=list(lp.doses.all()), actor=nurse, reason="opening pressure corrected")
    assert SafetyOverride.objects.count() == 1
