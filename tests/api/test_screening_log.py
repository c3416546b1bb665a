"""The screening log through the API: counts of a study's flow diagram, read by those who see case
records at the site, recorded by its study administrators, every write and removal with a reason.

alice is the study administrator of the own site, bob enters data there, carol is the study
administrator of the other site and dave a researcher of the own site.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import Role
from registry.choices import ExclusionReason, ScreeningStep
from registry.models import ScreeningLogEntry
from tests import factories as f

pytestmark = pytest.mark.django_db

URL = "/api/screening-log/"


@pytest.fixture
def world():
    own, other, elsewhere = f.SiteFactory(code="own"), f.SiteFactory(code="other"), f.SiteFactory(code="far")
    study = f.StudyFactory(code="np", sites=[own, other])
    users = {}
    for name, site, role in (
        ("alice", own, Role.STUDY_ADMIN),
        ("bob", own, Role.DATA_ENTRY),
        ("carol", other, Role.STUDY_ADMIN),
        ("dave", own, Role.RESEARCHER),
    ):
        users[name] = f.UserFactory(username=name)
        f.MembershipFactory(user=users[name], site=site, role=role)
    f.MembershipFactory(user=users["alice"], site=elsewhere, role=Role.STUDY_ADMIN)
    return {
        "own": own,
        "other": other,
        "elsewhere": elsewhere,
        "study": study,
        "users": users,
        "mine": f.ScreeningLogEntryFactory(study=study, site=own, patients=300),
        "theirs": f.ScreeningLogEntryFactory(study=study, site=other, patients=163),
    }


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def exclusion(world, **changes) -> dict:
    return {
        "study": world["study"].pk,
        "site": world["own"].pk,
        "period_start": "2013-01-01",
        "period_end": "2021-06-30",
        "step": ScreeningStep.EXCLUDED,
        "exclusion_reason": ExclusionReason.NO_LUMBAR_PUNCTURE,
        "patients": 52,
        "change_reason": "Record review of the 463 possible cases, 2013–2021",
    } | changes


def test_the_study_administrator_records_a_count_with_its_reason_in_the_history(world):
    alice = world["users"]["alice"]
    response = client_for(alice).post(URL, exclusion(world), format="json")
    assert response.status_code == 201, response.data
    entry = ScreeningLogEntry.objects.get(pk=response.data["id"])
    assert (entry.step, entry.exclusion_reason, entry.patients) == ("excluded", "no_lumbar_puncture", 52)
    record = entry.history.get()
    assert (record.history_user, record.history_change_reason, record.history_type) == (
        alice,
        "Record review of the 463 possible cases, 2013–2021",
        "+",
    )
    assert "change_reason" not in response.data


def test_a_count_without_a_reason_is_refused_and_nothing_is_written(world):
    client = client_for(world["users"]["alice"])
    for missing in ({"change_reason": ""}, {"change_reason": "   "}):
        response = client.post(URL, exclusion(world, **missing), format="json")
        assert response.status_code == 400
        assert "change_reason" in response.data
    assert not ScreeningLogEntry.objects.filter(step=ScreeningStep.EXCLUDED).exists()


def test_the_reason_may_come_as_the_header(world):
    body = exclusion(world)
    del body["change_reason"]
    response = client_for(world["users"]["alice"]).post(
        URL, body, format="json", HTTP_X_CHANGE_REASON="Fig. 1 of the paper"
    )
    assert response.status_code == 201, response.data
    assert ScreeningLogEntry.objects.get(pk=response.data["id"]).history.get().history_change_reason == (
        "Fig. 1 of the paper"
    )


def test_bad_counts_get_field_errors(world):
    client = client_for(world["users"]["alice"])
    cases = {
        "site": exclusion(world, site=world["other"].pk),  # not alice's site
        "patients": exclusion(world, patients=-1),
        "period_end": exclusion(world, period_end="2012-12-31"),
        "unknown": exclusion(world, unknown=1),
    }
    for field, body in cases.items():
        response = client.post(URL, body, format="json")
        assert response.status_code == 400, field
        assert field in response.data, (field, response.data)
    no_reason_code = client.post(URL, exclusion(world, exclusion_reason=""), format="json")
    assert no_reason_code.status_code == 400
    assert "Give a reason for excluded patients" in str(no_reason_code.data)
    not_in_study = client.post(URL, exclusion(world, site=world["elsewhere"].pk), format="json")
    assert not_in_study.status_code == 400
    assert not_in_study.data["site"] == ["This site does not take part in the study."]
    twice = client.post(
        URL, exclusion(world, step=ScreeningStep.IDENTIFIED, exclusion_reason=""), format="json"
    )
    assert twice.status_code == 400 and "already logged" in str(twice.data)
    assert ScreeningLogEntry.objects.count() == 2


def test_reading_is_scoped_to_my_sites(world):
    for name, expected in (("alice", [300]), ("bob", [300]), ("carol", [163]), ("dave", [])):
        response = client_for(world["users"][name]).get(URL)
        assert response.status_code == 200
        assert [row["patients"] for row in response.data["results"]] == expected, name
    assert client_for(world["users"]["alice"]).get(f"{URL}{world['theirs'].pk}/").status_code == 404
    filtered = client_for(world["users"]["alice"]).get(URL, {"step": "excluded"})
    assert filtered.data["count"] == 0


def test_data_entry_reads_but_may_not_record_screening(world):
    bob = client_for(world["users"]["bob"])
    assert bob.post(URL, exclusion(world), format="json").status_code == 403
    mine = world["mine"]
    response = bob.patch(
        f"{URL}{mine.pk}/",
        {"patients": 1, "change_reason": "x"},
        format="json",
        HTTP_IF_MATCH=f'"{mine.version}"',
    )
    assert response.status_code == 403
    assert (
        bob.delete(
            f"{URL}{mine.pk}/", HTTP_IF_MATCH=f'"{mine.version}"', HTTP_X_CHANGE_REASON="x"
        ).status_code
        == 403
    )
    mine.refresh_from_db()
    assert mine.patients == 300


def test_another_sites_count_is_not_found_for_writes_too(world):
    alice, theirs = client_for(world["users"]["alice"]), world["theirs"]
    url = f"{URL}{theirs.pk}/"
    etag = f'"{theirs.version}"'
    assert (
        alice.patch(url, {"patients": 1, "change_reason": "x"}, format="json", HTTP_IF_MATCH=etag).status_code
        == 404
    )
    assert alice.delete(url, HTTP_IF_MATCH=etag, HTTP_X_CHANGE_REASON="x").status_code == 404
    theirs.refresh_from_db()
    assert theirs.patients == 163


def test_a_correction_needs_the_etag_and_a_reason_and_keeps_study_and_site(world):
    alice, mine = client_for(world["users"]["alice"]), world["mine"]
    url = f"{URL}{mine.pk}/"
    assert alice.patch(url, {"patients": 310, "change_reason": "recount"}, format="json").status_code == 428
    etag = alice.get(url)["ETag"]
    assert alice.patch(url, {"patients": 310}, format="json", HTTP_IF_MATCH=etag).status_code == 400
    moved = alice.patch(
        url, {"site": world["other"].pk, "change_reason": "x"}, format="json", HTTP_IF_MATCH=etag
    )
    assert moved.status_code == 400 and "site" in moved.data
    response = alice.patch(
        url,
        {"patients": 310, "change_reason": "Recount after the 2021 search"},
        format="json",
        HTTP_IF_MATCH=etag,
    )
    assert response.status_code == 200, response.data
    mine.refresh_from_db()
    assert (mine.patients, mine.site) == (310, world["own"])
    latest = mine.history.first()
    assert (latest.history_user, latest.history_change_reason, latest.patients) == (
        world["users"]["alice"],
        "Recount after the 2021 search",
        310,
    )
    assert (
        alice.patch(url, {"patients": 1, "change_reason": "x"}, format="json", HTTP_IF_MATCH=etag).status_code
        == 412
    )


def test_removing_a_count_needs_a_reason_and_leaves_its_history(world):
    alice, mine = client_for(world["users"]["alice"]), world["mine"]
    url, etag = f"{URL}{mine.pk}/", f'"{mine.version}"'
    refused = alice.delete(url, HTTP_IF_MATCH=etag)
    assert refused.status_code == 400 and "X-Change-Reason" in refused.data
    assert ScreeningLogEntry.objects.filter(pk=mine.pk).exists()
    assert alice.delete(url, HTTP_IF_MATCH=etag, HTTP_X_CHANGE_REASON="Entered twice").status_code == 204
    assert not ScreeningLogEntry.objects.filter(pk=mine.pk).exists()
    removal = ScreeningLogEntry.history.filter(id=mine.pk).first()
    assert (removal.history_type, removal.history_user, removal.history_change_reason) == (
        "-",
        world["users"]["alice"],
        "Entered twice",
    )
