"""The screening log in the admin: where a study administrator records the counts of the study's
flow diagram (Fig. 1), each with a reason kept in its history; others may read it, not change it.

alice is the study administrator of the own site, bob enters data there; the other site is not theirs.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Role
from registry.choices import ExclusionReason, ScreeningStep
from registry.models import ScreeningLogEntry
from tests import factories as f

pytestmark = pytest.mark.django_db

ADD = reverse("admin:registry_screeninglogentry_add")
CHANGELIST = reverse("admin:registry_screeninglogentry_changelist")


@pytest.fixture
def world():
    own, other = f.SiteFactory(code="own"), f.SiteFactory(code="other")
    study = f.StudyFactory(code="np", sites=[own, other])
    users = {}
    for name, role in (("alice", Role.STUDY_ADMIN), ("bob", Role.DATA_ENTRY)):
        users[name] = f.UserFactory(username=name, is_staff=True)
        f.MembershipFactory(user=users[name], site=own, role=role)
    return {
        "own": own,
        "other": other,
        "study": study,
        "users": users,
        "mine": f.ScreeningLogEntryFactory(study=study, site=own, patients=300),
        "theirs": f.ScreeningLogEntryFactory(study=study, site=other, patients=163),
    }


def form(world, **changes) -> dict:
    return {
        "study": world["study"].pk,
        "site": world["own"].pk,
        "period_start": "2013-01-01",
        "period_end": "2021-06-30",
        "step": ScreeningStep.EXCLUDED,
        "exclusion_reason": ExclusionReason.UNCERTAIN_DIAGNOSIS,
        "patients": 25,
        "search": "",
        "note": "",
        "change_reason": "Expert review of the possible cases",
    } | changes


def test_the_study_administrator_records_a_count_with_a_reason(client, world):
    client.force_login(world["users"]["alice"])
    page = client.get(ADD)
    assert page.status_code == 200
    assert set(page.context["adminform"].form.fields["site"].queryset) == {world["own"]}
    response = client.post(ADD, form(world))
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = ScreeningLogEntry.objects.get(step=ScreeningStep.EXCLUDED)
    record = entry.history.get()
    assert (record.history_user, record.history_change_reason, record.patients) == (
        world["users"]["alice"],
        "Expert review of the possible cases",
        25,
    )


def test_without_a_reason_the_form_says_so_and_nothing_is_saved(client, world):
    client.force_login(world["users"]["alice"])
    response = client.post(ADD, form(world, change_reason=""))
    assert response.status_code == 200
    assert "change_reason" in response.context["adminform"].form.errors
    mine = world["mine"]
    change = reverse("admin:registry_screeninglogentry_change", args=[mine.pk])
    edit = form(world, step=ScreeningStep.IDENTIFIED, exclusion_reason="", patients=310, change_reason="")
    response = client.post(
        change, edit | {"version": client.get(change).context["adminform"].form["version"].value()}
    )
    assert response.status_code == 200
    assert "change_reason" in response.context["adminform"].form.errors
    mine.refresh_from_db()
    assert mine.patients == 300
    assert not ScreeningLogEntry.objects.filter(step=ScreeningStep.EXCLUDED).exists()


def test_another_sites_counts_are_not_found(client, world):
    client.force_login(world["users"]["alice"])
    listed = client.get(CHANGELIST)
    assert list(listed.context["cl"].queryset) == [world["mine"]]
    theirs = world["theirs"]
    assert client.get(reverse("admin:registry_screeninglogentry_change", args=[theirs.pk])).status_code == 302
    assert client.post(ADD, form(world, site=world["other"].pk)).status_code == 200
    assert ScreeningLogEntry.objects.filter(site=world["other"]).count() == 1


def test_data_entry_reads_the_log_but_cannot_change_it(client, world):
    client.force_login(world["users"]["bob"])
    assert client.get(CHANGELIST).status_code == 200
    assert client.get(ADD).status_code == 403
    assert client.post(ADD, form(world)).status_code == 403
    mine = world["mine"]
    assert client.get(reverse("admin:registry_screeninglogentry_delete", args=[mine.pk])).status_code == 403
    assert not ScreeningLogEntry.objects.filter(step=ScreeningStep.EXCLUDED).exists()


def test_removing_a_count_asks_for_the_reason(client, world):
    client.force_login(world["users"]["alice"])
    mine = world["mine"]
    url = reverse("admin:registry_screeninglogentry_delete", args=[mine.pk])
    page = client.get(url)
    assert page.status_code == 200 and 'name="change_reason"' in page.content.decode()
    refused = client.post(url, {"post": "yes", "change_reason": " "}, follow=True)
    assert "Say why this count is recorded, corrected or removed" in refused.content.decode()
    assert ScreeningLogEntry.objects.filter(pk=mine.pk).exists()
    assert client.post(url, {"post": "yes", "change_reason": "Entered twice"}).status_code == 302
    assert not ScreeningLogEntry.objects.filter(pk=mine.pk).exists()
    removal = ScreeningLogEntry.history.filter(id=mine.pk).first()
    assert (removal.history_type, removal.history_user, removal.history_change_reason) == (
        "-",
        world["users"]["alice"],
        "Entered twice",
    )
    assert "delete_selected" not in client.get(CHANGELIST).context["cl"].model_admin.get_actions(
        page.wsgi_request
    )
