"""Protocols are edited by site administrators in the admin (drafts only, with a reason, audited);
the case-record pages start and stop courses and mark injections missed, with field-level errors."""

import datetime as dt

import pytest
from django.urls import reverse

from accounts.models import Role
from protocols.choices import CourseStatus, InjectionStatus, ProtocolStatus
from protocols.models import Protocol
from registry.services.versions import signed_version
from tests.protocols.conftest import START, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def site_admin(npsle_patient):
    return member(npsle_patient.site, Role.SITE_ADMIN, username="admin-north", is_staff=True)


def change_form(protocol, **changes):
    """The admin change form of a protocol with no inline rows changed."""
    data = {
        "code": protocol.code,
        "revision": protocol.revision,
        "name": protocol.name,
        "disease_area": protocol.disease_area,
        "summary": protocol.summary,
        "administration": protocol.administration,
        "source": protocol.source,
        "min_platelets_1e9_per_l": protocol.min_platelets_1e9_per_l or "",
        "revision_note": protocol.revision_note,
        "version": signed_version(protocol.version),
    }
    for prefix in ("phases", "components", "supportive_requirements"):
        data |= {f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0}  # inline rows untouched
    return data | changes


def test_site_admins_version_a_protocol_in_the_admin_and_every_step_is_attributed(seeds, client, site_admin):
    client.force_login(site_admin)
    active = seeds["npsle-pumch"]
    changelist = reverse("admin:protocols_protocol_changelist")
    assert client.get(changelist).status_code == 200

    # An active version is read-only: a change is refused, not applied.
    url = reverse("admin:protocols_protocol_change", args=[active.pk])
    refused = client.post(url, change_form(active, summary="rewritten"))
    assert refused.status_code == 403
    active.refresh_from_db()
    assert active.summary != "rewritten"

    client.post(changelist, {"action": "new_version", "_selected_action": [active.pk]})
    draft = Protocol.objects.get(code="npsle-pumch", revision=2)
    assert draft.status == ProtocolStatus.DRAFT and draft.phases.count() == active.phases.count()

    url = reverse("admin:protocols_protocol_change", args=[draft.pk])
    saved = client.post(
        url,
        change_form(
            draft, summary="Weekly; MTX 12 mg", change_reason="Local amendment 2025", revision_note="MTX"
        ),
    )
    assert saved.status_code == 302, saved.context["adminform"].form.errors if saved.context else saved
    draft.refresh_from_db()
    assert draft.summary == "Weekly; MTX 12 mg"
    latest = draft.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (site_admin, "Local amendment 2025")

    client.post(changelist, {"action": "activate", "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    active.refresh_from_db()
    assert (draft.status, active.status) == (ProtocolStatus.ACTIVE, ProtocolStatus.RETIRED)


def test_other_staff_read_protocols_but_cannot_change_them(seeds, client, npsle_patient):
    nurse = member(npsle_patient.site, Role.DATA_ENTRY, username="staff-nurse", is_staff=True)
    client.force_login(nurse)
    protocol = seeds["lm-pemetrexed"]
    assert client.get(reverse("admin:protocols_protocol_change", args=[protocol.pk])).status_code == 200
    client.post(
        reverse("admin:protocols_protocol_changelist"),
        {"action": "retire", "_selected_action": [protocol.pk]},
    )
    protocol.refresh_from_db()
    assert protocol.status == ProtocolStatus.ACTIVE
    assert client.get(reverse("protocols:protocol_detail", args=[protocol.pk])).status_code == 200


def test_course_pages_start_mark_missed_and_stop_with_field_errors(seeds, client, npsle_patient):
    nurse = member(npsle_patient.site, Role.DATA_ENTRY, username="page-nurse")
    client.force_login(nurse)
    created = client.post(
        reverse("protocols:course_create", args=[npsle_patient.pk]),
        {"protocol": seeds["npsle-pumch"].pk, "start_date": START.isoformat(), "version": signed_version(0)},
    )
    assert created.status_code == 302
    course = npsle_patient.intrathecal_courses.get()
    assert course.injections.count() == 6

    first = course.injections.get(sequence=1)
    missed_url = reverse("protocols:injection_missed", args=[npsle_patient.pk, course.pk, first.pk])
    blank = client.post(missed_url, {"deviation_reason": ""})
    assert "This field is required." in blank.content.decode()
    client.post(missed_url, {"deviation_reason": "Patient declined the LP"})
    first.refresh_from_db()
    assert (first.status, first.deviation_reason) == (InjectionStatus.MISSED, "Patient declined the LP")

    stop_url = reverse("protocols:course_stop", args=[npsle_patient.pk, course.pk])
    course.refresh_from_db()
    unexplained = client.post(
        stop_url,
        {
            "ended_on": (START + dt.timedelta(days=9)).isoformat(),
            "stop_reason": "other",
            "version": signed_version(course.version),
        },
    )
    assert "Say why the course stopped" in unexplained.content.decode()
    course.refresh_from_db()
    assert course.status == CourseStatus.ACTIVE
    client.post(
        stop_url,
        {
            "ended_on": (START + dt.timedelta(days=9)).isoformat(),
            "stop_reason": "recovered",
            "version": signed_version(course.version),
        },
    )
    course.refresh_from_db()
    assert (course.status, course.stop_reason) == (CourseStatus.STOPPED, "recovered")
    assert set(course.injections.values_list("status", flat=True)) == {
        InjectionStatus.MISSED,
        InjectionStatus.CANCELLED,
    }
