"""Planning a course from its protocol: the calendars of the three seed protocols and the dose rules."""

import datetime as dt
from decimal import Decimal

import pytest

from protocols.choices import CourseStatus, InjectionStatus
from protocols.planning import PastInjection, dated, injection_days, phase_slots, plan_slots, propose_doses
from protocols.selectors import course_calendar, next_injection
from protocols.thresholds import OPEN_PHASE_LOOKAHEAD
from registry.choices import Attribution, CtcaeTerm, DoseTiming, IntrathecalDrug
from tests import factories as f
from tests.protocols.conftest import START, give, lm_doses, npsle_doses, start

pytestmark = pytest.mark.django_db

LM_DAYS = [0, 3, 7, 10, 14, 17, 21, 24, 28, 35, 42, 49, 77, 105, 133]
PEM = (IntrathecalDrug.PEMETREXED, DoseTiming.WITH)


def days_of(course):
    return [(row.injection.planned_date - course.start_date).days for row in course_calendar(course)]


def pemetrexed(doses):
    return next(d.dose_mg for d in doses if d.drug == IntrathecalDrug.PEMETREXED)


def test_lm_calendar_is_twice_weekly_then_weekly_then_every_four_weeks(seeds, lm_patient, nurse):
    course = start(lm_patient, seeds["lm-pemetrexed"], nurse)
    rows = course_calendar(course)
    assert days_of(course) == LM_DAYS
    assert [row.injection.phase.name for row in rows[:9:4]] == [
        "Induction (month 1)",
        "Induction (month 1)",
        "Consolidation (month 2)",
    ]
    assert [pemetrexed(row.doses) for row in rows] == [
        10,
        15,
        20,
        25,
        30,
        35,
        40,
        45,
        50,
        50,
        50,
        50,
        50,
        50,
        50,
    ]
    assert all({d.drug for d in row.doses} == {"dexamethasone", "pemetrexed"} for row in rows)
    assert rows[0].is_next and not rows[1].is_next
    # The same days as the demo's LM schedule, from the protocol.
    assert injection_days(seeds["lm-pemetrexed"].ordered_phases(), before_day=134) == LM_DAYS


def test_methotrexate_arm_has_the_same_days_and_12_mg(seeds, lm_patient, nurse):
    course = start(lm_patient, seeds["lm-methotrexate"], nurse)
    rows = course_calendar(course)
    assert days_of(course) == LM_DAYS
    assert {(d.drug, d.dose_mg, d.timing) for row in rows for d in row.doses} == {
        ("methotrexate", Decimal("12"), "with"),
        ("dexamethasone", Decimal("2.5"), "before"),
        ("dexamethasone", Decimal("2.5"), "after"),
    }


def test_npsle_calendar_is_weekly_up_to_six(seeds, npsle_patient, nurse):
    course = start(npsle_patient, seeds["npsle-pumch"], nurse)
    assert days_of(course) == [0, 7, 14, 21, 28, 35]
    doses = course_calendar(course)[0].doses
    assert [(d.drug, d.dose_mg, d.volume_ml, d.optional) for d in doses] == [
        ("dexamethasone", Decimal("10"), Decimal("10"), False),
        ("methotrexate", Decimal("10"), Decimal("10"), True),
    ]


def test_icans_calendar_is_one_to_three_daily(seeds, icans_patient, nurse):
    course = start(icans_patient, seeds["icans-idm"], nurse)
    assert days_of(course) == [0, 1, 2]


def test_an_open_ended_phase_rolls_on_as_injections_are_given(seeds, lm_patient, nurse):
    course = start(lm_patient, seeds["lm-pemetrexed"], nurse)
    maintenance = [r for r in course_calendar(course) if r.injection.phase.open_ended]
    assert len(maintenance) == OPEN_PHASE_LOOKAHEAD
    for day in LM_DAYS[:13]:
        outcome = give(
            lm_patient,
            START + dt.timedelta(days=day),
            lm_doses(str(pemetrexed(next_injection(lm_patient).doses))),
            nurse,
        )
        assert outcome.planned_injection.status == InjectionStatus.GIVEN
    assert days_of(course)[-4:] == [77, 105, 133, 161]  # one more planned for each one given
    course.refresh_from_db()
    assert course.status == CourseStatus.ACTIVE


def test_a_late_injection_moves_the_rest_of_the_course(seeds, npsle_patient, nurse):
    course = start(npsle_patient, seeds["npsle-pumch"], nurse)
    give(npsle_patient, START, npsle_doses(), nurse)
    give(npsle_patient, START + dt.timedelta(days=10), npsle_doses(), nurse, deviation_reason="Ward full")
    assert days_of(course) == [0, 7, 14, 21, 28, 35][:2] + [17, 24, 31, 38]


def test_escalation_reaches_the_50_mg_cap_and_stays(seeds, lm_patient, nurse):
    start(lm_patient, seeds["lm-pemetrexed"], nurse)
    given = []
    for day in LM_DAYS[:11]:
        proposal = next_injection(lm_patient)
        given.append(pemetrexed(proposal.doses))
        give(lm_patient, START + dt.timedelta(days=day), lm_doses(str(given[-1])), nurse)
    assert given == [10, 15, 20, 25, 30, 35, 40, 45, 50, 50, 50]


def _grade_3(patient, term, onset, **fields):
    return f.AdverseEventFactory(patient=patient, ctcae_term=term, grade=3, onset_date=onset, **fields)


@pytest.mark.parametrize(
    ("term", "fields"),
    [
        (CtcaeTerm.NEUTROPHIL_DECREASED, {"lab_value": Decimal("0.8"), "lab_lower_limit": Decimal("2.0")}),
        (CtcaeTerm.PLATELET_DECREASED, {"lab_value": Decimal("40")}),
        (CtcaeTerm.WBC_DECREASED, {"lab_value": Decimal("1.5"), "lab_lower_limit": Decimal("4.0")}),
        (CtcaeTerm.RADICULITIS, {"attribution": Attribution.INTRATHECAL_THERAPY}),
    ],
)
def test_a_grade_3_cytopenia_or_intolerable_event_steps_back_and_it_stays_back(
    seeds, lm_patient, nurse, term, fields
):
    start(lm_patient, seeds["lm-pemetrexed"], nurse)
    for day, mg in zip(LM_DAYS[:4], ("10", "15", "20", "25"), strict=True):
        give(lm_patient, START + dt.timedelta(days=day), lm_doses(mg), nurse)
    _grade_3(lm_patient, term, START + dt.timedelta(days=LM_DAYS[3] + 1), **fields)
    assert pemetrexed(next_injection(lm_patient).doses) == 20  # back to the previous level
    give(
        lm_patient,
        START + dt.timedelta(days=LM_DAYS[4]),
        lm_doses("20"),
        nurse,
        overrides={"cytopenia": "Counts recovered", "platelets": "Counts recovered"},
    )
    for day in LM_DAYS[5:8]:
        assert pemetrexed(next_injection(lm_patient).doses) == 20  # and never above it again
        give(lm_patient, START + dt.timedelta(days=day), lm_doses("20"), nurse)


def test_a_grade_3_event_not_of_the_marrow_nor_the_therapy_does_not_step_back(seeds, lm_patient, nurse):
    start(lm_patient, seeds["lm-pemetrexed"], nurse)
    give(lm_patient, START, lm_doses("10"), nurse)
    _grade_3(
        lm_patient, CtcaeTerm.HEADACHE, START + dt.timedelta(days=1), attribution=Attribution.LUMBAR_PUNCTURE
    )
    assert pemetrexed(next_injection(lm_patient).doses) == 15


def test_a_grade_3_event_before_the_course_does_not_step_back(seeds, lm_patient, nurse):
    _grade_3(
        lm_patient,
        CtcaeTerm.NEUTROPHIL_DECREASED,
        START - dt.timedelta(days=20),
        lab_value=Decimal("0.8"),
        lab_lower_limit=Decimal("2.0"),
    )
    start(lm_patient, seeds["lm-pemetrexed"], nurse)
    give(lm_patient, START, lm_doses("10"), nurse)
    assert pemetrexed(next_injection(lm_patient).doses) == 15


def test_the_next_dose_follows_what_was_given_not_what_was_proposed(seeds, lm_patient, nurse):
    start(lm_patient, seeds["lm-pemetrexed"], nurse)
    give(lm_patient, START, lm_doses("10"), nurse)
    give(lm_patient, START + dt.timedelta(days=3), lm_doses("10"), nurse, deviation_reason="Kept at 10 mg")
    assert pemetrexed(next_injection(lm_patient).doses) == 15


# --- the pure functions ----------------------------------------------------------------------------


class Phase:
    def __init__(self, order, cycle, offsets, count, gap=None, end_rule="fixed"):
        self.order, self.cycle_days, self._offsets = order, cycle, offsets
        self.injection_count, self.gap_before_days, self.end_rule = count, gap, end_rule

    def offsets(self):
        return self._offsets


def test_phase_slots_follow_the_cycle():
    assert list(phase_slots(Phase(1, 7, [0, 3], 5))) == [0, 3, 7, 10, 14]
    assert list(phase_slots(Phase(1, 28, [0], None), 3)) == [0, 28, 56]


def test_plan_slots_gaps_and_dates():
    phases = [
        Phase(1, 7, [0, 3], 4),
        Phase(2, 7, [0], 2, gap=4),
        Phase(3, 28, [0], None, 28, "until_stopped"),
    ]
    slots = plan_slots(phases, open_injections=2)
    assert [s.gap_days for s in slots] == [0, 3, 4, 3, 4, 7, 28, 28]
    assert dated(slots[:3], dt.date(2024, 1, 1)) == [
        dt.date(2024, 1, 1),
        dt.date(2024, 1, 4),
        dt.date(2024, 1, 8),
    ]


class Component:
    def __init__(self, drug, rule, dose, step=None, cap=None, back=False, timing="with"):
        self.drug, self.rule, self.dose_mg, self.step_mg = drug, rule, Decimal(dose), step and Decimal(step)
        self.cap_mg, self.step_back_on_toxicity, self.timing = Decimal(cap or dose), back, timing
        self.volume_ml, self.diluent, self.optional = None, "", False

    def escalation(self):
        from registry.dosing import EscalationRule

        return EscalationRule(self.dose_mg, self.step_mg, self.cap_mg)


def test_propose_doses_replays_what_happened():
    pem = Component("pemetrexed", "escalating", "10", "5", "50", back=True)
    given = [
        PastInjection({PEM: Decimal(mg)}, toxicity_before=toxic)
        for mg, toxic in (("10", False), ("15", False), ("20", False))
    ]
    assert [d[0].dose_mg for d in propose_doses([[pem]] * 3, given, toxicity_since_last=False)] == [
        25,
        30,
        35,
    ]
    assert [d[0].dose_mg for d in propose_doses([[pem]] * 3, given, toxicity_since_last=True)] == [15, 15, 15]
    stepped = [*given, PastInjection({PEM: Decimal("15")}, toxicity_before=True)]
    assert [d[0].dose_mg for d in propose_doses([[pem]] * 2, stepped, toxicity_since_last=False)] == [15, 15]
    fixed = Component("methotrexate", "fixed", "12")
    assert propose_doses([[fixed]], given, toxicity_since_last=True)[0][0].dose_mg == 12
    no_back = Component("pemetrexed", "escalating", "10", "5", "50", back=False)
    assert propose_doses([[no_back]], given, toxicity_since_last=True)[0][0].dose_mg == 25
