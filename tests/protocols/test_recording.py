"""Recording injections against the plan: links, given / changed / missed with reasons, stopping."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from protocols.choices import CourseStatus, InjectionStatus, StopReason
from protocols.models import Course, PlannedInjection
from protocols.selectors import course_calendar, next_injection
from protocols.services import (
    SafetyCheckError,
    course_start,
    course_stop,
    injection_record,
    planned_injection_mark_missed,
)
from registry.models import LumbarPuncture
from registry.services import record_delete
from tests.protocols.conftest import START, at, dose, give, npsle_doses, start

pytestmark = pytest.mark.django_db


def statuses(course):
    return [row.injection.status for row in course_calendar(course)]


def test_recording_an_lp_links_it_to_the_next_planned_injection(seeds, npsle_patient, nurse):
    course = start(npsle_patient, seeds["npsle-pumch"], nurse)
    outcome = give(npsle_patient, START, npsle_doses(), nurse)
    injection = outcome.planned_injection
    assert injection.sequence == 1 and injection.status == InjectionStatus.GIVEN
    assert injection.lumbar_puncture == outcome.lumbar_puncture
    assert injection.proposed_doses == [
        {
            "drug": "dexamethasone",
            "dose_mg": "10",
            "timing": "with",
            "volume_ml": "10",
            "diluent": "saline_pf",
        },
        {
            "drug": "methotrexate",
            "dose_mg": "10",
            "timing": "with",
            "volume_ml": "10",
            "diluent": "saline_pf",
            "optional": True,
        },
    ]
    assert outcome.next.injection.sequence == 2
    assert statuses(course)[:2] == [InjectionStatus.GIVEN, InjectionStatus.PLANNED]
    row = injection.history.latest()
    assert row.history_user == nurse and row.history_change_reason == "Test injection"


def test_a_diagnostic_lp_without_doses_is_not_linked(seeds, npsle_patient, nurse):
    course = start(npsle_patient, seeds["npsle-pumch"], nurse)
    outcome = give(npsle_patient, START, [], nurse)
    assert outcome.planned_injection is None
    assert statuses(course)[0] == InjectionStatus.PLANNED


def test_an_lp_without_a_course_is_recorded_as_before(npsle_patient, nurse):
    outcome = give(npsle_patient, START, npsle_doses(), nurse)
    assert outcome.planned_injection is None and outcome.lumbar_puncture.doses.count() == 2


@pytest.mark.parametrize(
    ("doses", "days_late", "deviation"),
    [
        (
            lambda: [dose("dexamethasone", "10"), dose("methotrexate", "8")],
            0,
            "Methotrexate 8 mg instead of 10 mg",
        ),
        (lambda: npsle_doses(methotrexate=False), 0, "Methotrexate 10 mg left out (optional)"),
        (lambda: [*npsle_doses(), dose("cytarabine", "30")], 0, "Cytarabine 30 mg added"),
        (lambda: npsle_doses(), 2, "given 2 days later than planned (2021-03-08; window ±1 days)"),
    ],
)
def test_a_changed_injection_says_what_changed_and_needs_its_reason(
    seeds, npsle_patient, nurse, doses, days_late, deviation
):
    start(npsle_patient, seeds["npsle-pumch"], nurse)
    give(npsle_patient, START, npsle_doses(), nurse)
    day = START + dt.timedelta(days=7 + days_late)
    overrides = {"drug_not_in_protocol": "Added for a lymphoma relapse"}
    with pytest.raises(SafetyCheckError) as refused:
        give(npsle_patient, day, doses(), nurse, overrides=overrides)
    assert deviation in refused.value.message_dict["deviation_reason"][0]
    assert LumbarPuncture.objects.count() == 1, "nothing of the refused LP was written"
    injection = give(
        npsle_patient, day, doses(), nurse, overrides=overrides, deviation_reason="Renal function worse"
    ).planned_injection
    assert injection.status == InjectionStatus.CHANGED
    assert deviation in injection.deviation
    assert injection.deviation_reason == "Renal function worse"


def test_within_the_date_window_it_counts_as_given(seeds, npsle_patient, nurse):
    start(npsle_patient, seeds["npsle-pumch"], nurse)
    give(npsle_patient, START, npsle_doses(), nurse)
    injection = give(npsle_patient, START + dt.timedelta(days=8), npsle_doses(), nurse).planned_injection
    assert injection.status == InjectionStatus.GIVEN and injection.deviation == ""


def test_a_missed_injection_keeps_its_reason_and_the_plan_moves_on(seeds, npsle_patient, nurse):
    course = start(npsle_patient, seeds["npsle-pumch"], nurse)
    give(npsle_patient, START, npsle_doses(), nurse)
    second = next_injection(npsle_patient).injection
    planned_injection_mark_missed(injection=second, deviation_reason="Platelets 30 ×10⁹/L", actor=nurse)
    second.refresh_from_db()
    assert second.status == InjectionStatus.MISSED and second.deviation_reason == "Platelets 30 ×10⁹/L"
    assert second.history.latest().history_user == nurse
    third = next_injection(npsle_patient).injection
    assert third.sequence == 3 and third.planned_date == second.planned_date + dt.timedelta(days=7)
    with pytest.raises(ValidationError, match="already missed"):
        planned_injection_mark_missed(injection=second, deviation_reason="again", actor=nurse)
    fifth = course.injections.get(sequence=5)
    with pytest.raises(ValidationError, match="comes first"):
        planned_injection_mark_missed(injection=fifth, deviation_reason="out of order", actor=nurse)


def test_injections_are_fulfilled_in_order(seeds, npsle_patient, nurse):
    course = start(npsle_patient, seeds["npsle-pumch"], nurse)
    third = course.injections.get(sequence=3)
    with pytest.raises(SafetyCheckError) as refused:
        give(npsle_patient, START, npsle_doses(), nurse, planned=third)
    assert "Record injections in order" in refused.value.message_dict["planned_injection"][0]
    outcome = give(npsle_patient, START, npsle_doses(), nurse, planned=None)
    assert outcome.planned_injection is None, "an injection outside the plan"


def test_stopping_a_course_records_why_and_cancels_what_is_left(seeds, npsle_patient, nurse):
    course = start(npsle_patient, seeds["npsle-pumch"], nurse)
    give(npsle_patient, START, npsle_doses(), nurse)
    give(npsle_patient, START + dt.timedelta(days=7), npsle_doses(), nurse)
    with pytest.raises(ValidationError, match="after this date"):
        course_stop(course=course, ended_on=START, stop_reason=StopReason.RECOVERED, actor=nurse)
    with pytest.raises(ValidationError, match="Other"):
        course_stop(
            course=course, ended_on=START + dt.timedelta(days=9), stop_reason=StopReason.OTHER, actor=nurse
        )
    course_stop(
        course=course, ended_on=START + dt.timedelta(days=9), stop_reason=StopReason.RECOVERED, actor=nurse
    )
    course.refresh_from_db()
    assert (course.status, course.stop_reason, course.ended_on) == (
        CourseStatus.STOPPED,
        StopReason.RECOVERED,
        START + dt.timedelta(days=9),
    )
    assert course.history.latest().history_change_reason.startswith("Course stopped: Recovered")
    assert course.history.latest().history_user == nurse
    assert statuses(course) == [InjectionStatus.GIVEN] * 2 + [InjectionStatus.CANCELLED] * 4
    for injection in course.injections.filter(status=InjectionStatus.CANCELLED):
        change = injection.history.latest()  # each cancelled injection: its own row, who and why
        assert (change.history_type, change.status, change.history_user) == (
            "~",
            InjectionStatus.CANCELLED,
            nurse,
        )
        assert change.history_change_reason.startswith("Course stopped: Recovered")
        assert change.version == injection.version == change.prev_record.version + 1
    assert next_injection(npsle_patient) is None
    with pytest.raises(ValidationError, match="already stopped"):
        course_stop(
            course=course, ended_on=START + dt.timedelta(days=9), stop_reason=StopReason.DEATH, actor=nurse
        )


@pytest.mark.parametrize("reason", list(StopReason))
def test_every_stop_reason_is_accepted(seeds, icans_patient, nurse, reason):
    course = start(icans_patient, seeds["icans-idm"], nurse)
    course_stop(course=course, ended_on=START, stop_reason=reason, stop_note="see notes", actor=nurse)
    assert Course.objects.get(pk=course.pk).stop_reason == reason


def test_a_course_completes_when_every_injection_is_given(seeds, icans_patient, nurse):
    course = start(icans_patient, seeds["icans-idm"], nurse)
    for day in range(3):
        give(icans_patient, START + dt.timedelta(days=day), npsle_doses(), nurse)
    course.refresh_from_db()
    assert course.status == CourseStatus.COMPLETED and course.ended_on == START + dt.timedelta(days=2)


def test_one_active_course_per_patient_of_the_protocols_disease(seeds, npsle_patient, nurse):
    start(npsle_patient, seeds["npsle-pumch"], nurse)
    with pytest.raises(ValidationError, match="already has an active course"):
        start(npsle_patient, seeds["npsle-pumch"], nurse)
    with pytest.raises(ValidationError, match="is a protocol for"):
        course_start(
            patient=npsle_patient, protocol=seeds["lm-pemetrexed"], start_date=START, actor=nurse, reason="x"
        )


def test_deleting_the_lp_reopens_its_injection_with_the_deleters_reason(seeds, npsle_patient, nurse):
    course = start(npsle_patient, seeds["npsle-pumch"], nurse)
    lp = give(npsle_patient, START, npsle_doses(), nurse).lumbar_puncture
    record_delete(lp, actor=nurse, reason="entered for the wrong patient")
    injection = course.injections.get(sequence=1)
    assert injection.status == InjectionStatus.PLANNED and injection.lumbar_puncture is None
    row = injection.history.latest()
    assert row.history_user == nurse and "entered for the wrong patient" in row.history_change_reason


def test_editing_the_lp_keeps_its_link_and_removing_its_doses_releases_it(seeds, npsle_patient, nurse):
    course = start(npsle_patient, seeds["npsle-pumch"], nurse)
    lp = give(npsle_patient, START, npsle_doses(), nurse).lumbar_puncture
    lp = LumbarPuncture.objects.get(pk=lp.pk)
    lp.opening_pressure_mmh2o = 190
    doses = list(lp.doses.all())
    injection_record(lp=lp, doses=doses, actor=nurse, reason="pressure corrected")
    assert course.injections.get(sequence=1).lumbar_puncture_id == lp.pk
    lp = LumbarPuncture.objects.get(pk=lp.pk)
    injection_record(lp=lp, doses=[], removed=list(lp.doses.all()), actor=nurse, reason="no drug was given")
    assert course.injections.get(sequence=1).status == InjectionStatus.PLANNED


def test_the_plan_is_patient_data_with_history_and_site(seeds, npsle_patient, nurse):
    course = start(npsle_patient, seeds["npsle-pumch"], nurse)
    injection = PlannedInjection.objects.filter(course=course).first()
    assert injection.owning_patient_id() == npsle_patient.pk
    assert injection.review_section == "procedures"
    assert injection.history.get().history_user == nurse
    from accounts.access import site_of

    assert site_of(course) == site_of(injection) == npsle_patient.site_id
    assert at(START).date() == START
