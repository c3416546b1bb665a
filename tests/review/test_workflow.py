"""Review workflow: draft → submitted → verified → locked, e-signatures, unlocking, and locks everywhere."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from accounts.audited import UnauditedWriteError
from accounts.models import Role
from registry.models import SystemicTherapy
from registry.services import record_delete, record_save
from registry.services.bulk import bulk_record_create
from registry.services.versions import signed_version
from review import services
from review.guards import RecordLockedError
from review.models import ElectronicSignature, ReviewStatus, SectionReview, SignatureMeaning
from tests import factories as f

pytestmark = pytest.mark.django_db

PASSWORD = "reviewer-password-1"


@pytest.fixture
def team():
    site = f.SiteFactory()
    study = f.StudyFactory(sites=[site])
    nurse = f.UserFactory(first_name="Lin", last_name="Wei")
    reviewer = f.UserFactory(first_name="Chen", last_name="Jing", password=PASSWORD)
    f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
    f.MembershipFactory(user=reviewer, site=site, role=Role.REVIEWER)
    patient = f.PatientFactory(study=study, site=site)
    therapy = f.SystemicTherapyFactory(patient=patient)
    return {"nurse": nurse, "reviewer": reviewer, "patient": patient, "therapy": therapy}


def lock_therapy(team):
    services.section_submit(patient=team["patient"], section="therapy", actor=team["nurse"])
    services.section_verify(patient=team["patient"], section="therapy", actor=team["reviewer"])
    return services.sections_lock(
        patient=team["patient"], sections=["therapy"], actor=team["reviewer"], password=PASSWORD
    )


def test_the_happy_path_and_its_signature(team):
    signature = lock_therapy(team)
    review = SectionReview.objects.get(patient=team["patient"], section="therapy")
    assert review.status == ReviewStatus.LOCKED and review.locked_by == team["reviewer"]
    assert (signature.printed_name, signature.meaning) == ("Chen Jing", SignatureMeaning.REVIEW_AND_LOCK)
    assert "I have reviewed these data" in signature.get_meaning_display()
    assert [h.status for h in review.history.order_by("history_id")] == [
        "draft",
        "submitted",
        "verified",
        "locked",
    ]


def test_each_step_belongs_to_its_role(team):
    with pytest.raises(PermissionDenied):
        services.section_submit(patient=team["patient"], section="therapy", actor=team["reviewer"])
    services.section_submit(patient=team["patient"], section="therapy", actor=team["nurse"])
    with pytest.raises(PermissionDenied):
        services.section_verify(patient=team["patient"], section="therapy", actor=team["nurse"])


def test_lock_needs_the_password_and_a_verified_section(team):
    services.section_submit(patient=team["patient"], section="therapy", actor=team["nurse"])
    with pytest.raises(ValidationError, match="Only verified sections"):
        services.sections_lock(
            patient=team["patient"], sections=["therapy"], actor=team["reviewer"], password=PASSWORD
        )
    services.section_verify(patient=team["patient"], section="therapy", actor=team["reviewer"])
    with pytest.raises(ValidationError, match="password is not correct"):
        services.sections_lock(
            patient=team["patient"], sections=["therapy"], actor=team["reviewer"], password="nope"
        )
    assert not ElectronicSignature.objects.exists()


def test_open_queries_block_verification(team):
    services.section_submit(patient=team["patient"], section="therapy", actor=team["nurse"])
    query = services.query_raise(
        patient=team["patient"],
        actor=team["reviewer"],
        record=team["therapy"],
        field_name="agent",
        message="Which agent exactly?",
    )
    with pytest.raises(ValidationError, match="1 open query"):
        services.section_verify(patient=team["patient"], section="therapy", actor=team["reviewer"])
    services.query_answer(query=query, actor=team["nurse"], text="Methylprednisolone, corrected.")
    with pytest.raises(ValidationError, match="open query"):
        services.section_verify(patient=team["patient"], section="therapy", actor=team["reviewer"])
    services.query_close(query=query, actor=team["reviewer"])
    services.section_verify(patient=team["patient"], section="therapy", actor=team["reviewer"])
    assert [m.text for m in query.messages.all()] == [
        "Which agent exactly?",
        "Methylprednisolone, corrected.",
    ]


def test_a_locked_section_is_read_only_everywhere(team, client, admin_client):
    lock_therapy(team)
    therapy = team["therapy"]
    therapy.agent = "changed"
    with pytest.raises(RecordLockedError):
        record_save(therapy, actor=team["nurse"], reason="typo")
    with pytest.raises(RecordLockedError):
        record_delete(SystemicTherapy.objects.get(pk=therapy.pk), actor=team["nurse"], reason="duplicate")
    with pytest.raises(RecordLockedError):
        bulk_record_create(
            [SystemicTherapy(patient=team["patient"], category="cyc", start_date=dt.date(2021, 3, 1))],
            actor=team["nurse"],
            reason="import",
        )
    with pytest.raises(RecordLockedError):
        team["patient"].delete()
    # the pages: no edit buttons, and a forged POST is refused with the reason
    client.force_login(team["nurse"])
    page = client.get(reverse("casebook:patient_detail", args=[team["patient"].pk])).content.decode()
    assert "Add therapy" not in page and "read-only" in page
    response = client.post(
        reverse("casebook:record_edit", args=[team["patient"].pk, "therapy", therapy.pk]),
        {
            "category": "mpp",
            "agent": "forged",
            "start_date": "2021-03-01",
            "change_reason": "x",
            "version": signed_version(therapy.version),
        },
    )
    assert "is locked" in response.content.decode()
    # the admin: read-only with a notice (no form to submit), and a forged POST is refused, never a crash
    change_url = reverse("admin:registry_systemictherapy_change", args=[therapy.pk])
    page = admin_client.get(change_url).content.decode()
    assert "locked section and is read-only" in page and 'name="agent"' not in page
    response = admin_client.post(
        reverse("admin:registry_systemictherapy_change", args=[therapy.pk]),
        {
            "patient": team["patient"].pk,
            "category": "mpp",
            "agent": "admin",
            "start_date": "2021-03-01",
            "change_reason": "x",
            "version": signed_version(therapy.version),
        },
    )
    assert response.status_code == 403
    assert SystemicTherapy.objects.get(pk=therapy.pk).agent == "methylprednisolone"


def test_unlock_needs_a_reason_and_sends_the_section_back_to_review(team):
    lock_therapy(team)
    with pytest.raises(ValidationError, match="needs a reason"):
        services.section_unlock(
            patient=team["patient"], section="therapy", actor=team["reviewer"], reason=" ", password=PASSWORD
        )
    with pytest.raises(ValidationError, match="password is not correct"):
        services.section_unlock(
            patient=team["patient"],
            section="therapy",
            actor=team["reviewer"],
            reason="typo",
            password="guess",
        )
    assert SectionReview.objects.get(patient=team["patient"], section="therapy").status == ReviewStatus.LOCKED
    signature = services.section_unlock(
        patient=team["patient"],
        section="therapy",
        actor=team["reviewer"],
        reason="dose transcribed wrongly",
        password=PASSWORD,
    )
    assert signature.meaning == SignatureMeaning.UNLOCK and signature.reason == "dose transcribed wrongly"
    review = SectionReview.objects.get(patient=team["patient"], section="therapy")
    assert review.status == ReviewStatus.SUBMITTED
    assert review.history.latest().history_change_reason == (
        f"Unlocked with e-signature #{signature.pk}: dose transcribed wrongly"
    )


def test_submitted_records_need_a_reason_and_a_change_undoes_verification(team):
    services.section_submit(patient=team["patient"], section="therapy", actor=team["nurse"])
    services.section_verify(patient=team["patient"], section="therapy", actor=team["reviewer"])
    therapy = team["therapy"]
    therapy.agent = "methylprednisolone sodium succinate"
    with pytest.raises(ValidationError) as caught:
        record_save(therapy, actor=team["nurse"], reason="")
    assert "change_reason" in caught.value.message_dict
    record_save(therapy, actor=team["nurse"], reason="full agent name")
    assert (
        SectionReview.objects.get(patient=team["patient"], section="therapy").status == ReviewStatus.SUBMITTED
    )


def test_pages_ask_for_the_reason_once_submitted(team, client):
    services.section_submit(patient=team["patient"], section="therapy", actor=team["nurse"])
    client.force_login(team["nurse"])
    url = reverse("casebook:record_edit", args=[team["patient"].pk, "therapy", team["therapy"].pk])
    form = client.get(url).context["form"]
    assert form.fields["change_reason"].required
    versions = dict(
        __import__("re").findall(r'name="(version)" value="([^"]*)"', client.get(url).content.decode())
    )
    response = client.post(url, {"category": "mpp", "agent": "x", "start_date": "2021-03-01"} | versions)
    assert "change_reason" in response.context["form"].errors


def test_review_buttons_on_the_page(team, client):
    client.force_login(team["nurse"])
    client.post(reverse("review:submit", args=[team["patient"].pk, "therapy"]))
    client.force_login(team["reviewer"])
    page = client.get(reverse("casebook:patient_detail", args=[team["patient"].pk])).content.decode()
    assert "Verify" in page and "Raise query" in page
    client.post(reverse("review:verify", args=[team["patient"].pk, "therapy"]))
    response = client.post(
        reverse("review:lock", args=[team["patient"].pk]), {"sections": ["therapy"], "password": PASSWORD}
    )
    assert response.status_code == 302
    assert SectionReview.objects.get(section="therapy").status == ReviewStatus.LOCKED


def test_queryset_writes_that_skip_the_audit_trail_raise(team):
    therapies = SystemicTherapy.objects.filter(pk=team["therapy"].pk)
    for write in (
        lambda: therapies.update(agent="x"),
        lambda: therapies.delete(),
        lambda: SystemicTherapy.objects.bulk_update([team["therapy"]], ["agent"]),
        lambda: SystemicTherapy.objects.bulk_create([SystemicTherapy(patient=team["patient"])]),
    ):
        with pytest.raises(UnauditedWriteError):
            write()


def test_cascaded_deletes_carry_the_user_and_reason():
    lp = f.LumbarPunctureFactory()
    f.CsfResultFactory(lumbar_puncture=lp)
    f.IntrathecalDoseFactory(lumbar_puncture=lp)
    nurse = f.UserFactory()
    record_delete(lp, actor=nurse, reason="entered for the wrong patient")
    from registry.models import CsfResult, IntrathecalDose

    for model in (CsfResult, IntrathecalDose):
        deleted = model.history.get(history_type="-")
        assert (deleted.history_user, deleted.history_change_reason) == (
            nurse,
            "entered for the wrong patient",
        )


def test_the_whole_patient_at_once(team, client):
    client.force_login(team["nurse"])
    client.post(reverse("review:patient_submit", args=[team["patient"].pk]))
    statuses = dict(SectionReview.objects.filter(patient=team["patient"]).values_list("section", "status"))
    assert set(statuses.values()) == {ReviewStatus.SUBMITTED} and len(statuses) == 6
    services.query_raise(patient=team["patient"], actor=team["reviewer"], section="safety", message="Any AE?")
    client.force_login(team["reviewer"])
    response = client.post(reverse("review:patient_verify", args=[team["patient"].pk]), follow=True)
    statuses = dict(SectionReview.objects.filter(patient=team["patient"]).values_list("section", "status"))
    assert statuses.pop("safety") == ReviewStatus.SUBMITTED
    assert set(statuses.values()) == {ReviewStatus.VERIFIED}
    assert any("Adverse events not verified" in str(m) for m in response.context["messages"])
