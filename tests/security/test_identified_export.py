"""Medium findings on exports.

- Identified export was open to data entry: a nurse downloaded names and MRNs of 202 patients in one
  request. Exporting identifiers is now its own right (study administrators and superusers), asks
  for a reason, and is recorded as a security event and in the study's audit export.
- Free text went out in de-identified exports (``adverse_events.term_other``): every typed text
  column — key columns included — is left out unless the exporter asks for free text.
"""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from django.urls import reverse

from accounts.models import Role
from audit.models import SecurityEvent, SecurityEventKind
from registry.choices import CtcaeTerm
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    north = f.SiteFactory(code="north", name="North")
    study = f.StudyFactory(code="npsle-e", sites=[north])
    patients = []
    for n in range(3):
        patient = f.PatientFactory(study=study, site=north, study_code=f"E{n}")
        f.PatientIdentifierFactory(
            patient=patient, full_name=f"Secret Person {n}", medical_record_number=f"MRN-{n}"
        )
        patients.append(patient)
    f.AdverseEventFactory(
        patient=patients[0], ctcae_term=CtcaeTerm.OTHER, term_other="Mr Zhang's fall at home"
    )
    users = {}
    for name, role in (
        ("nurse", Role.DATA_ENTRY),
        ("reviewer", Role.REVIEWER),
        ("study-admin", Role.STUDY_ADMIN),
    ):
        users[name] = f.UserFactory(username=name)
        f.MembershipFactory(user=users[name], site=north, role=role)
    return {"study": study, "patients": patients, **users}


def _files(content: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name).decode(errors="replace") for name in archive.namelist()}


def _export(client, study, **extra):
    return client.post(
        reverse("exchange:export"), {"study": study.pk, "format": "csv", "dates": "shift", **extra}
    )


@pytest.mark.parametrize("who", ["nurse", "reviewer"])
def test_identified_export_is_not_open_to_data_entry(client, world, who):
    client.force_login(world[who])
    page = client.get(reverse("exchange:export"))
    assert "identified" not in page.context["form"].fields
    response = _export(client, world["study"], identified="on", reason="curious")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"Secret Person" not in body and b"MRN-" not in body
    if response.status_code == 200:  # the checkbox is not on their form: a de-identified export
        assert "patient_identifiers.csv" not in _files(body)
    assert not SecurityEvent.objects.filter(kind=SecurityEventKind.IDENTIFIED_EXPORT).exists()


def test_identified_export_needs_a_reason_and_is_recorded(client, world):
    client.force_login(world["study-admin"])
    refused = _export(client, world["study"], identified="on", reason="  ")
    assert refused.status_code == 400
    assert "Give the reason" in refused.content.decode()
    assert not SecurityEvent.objects.filter(kind=SecurityEventKind.IDENTIFIED_EXPORT).exists()

    response = _export(
        client, world["study"], identified="on", reason="Linkage with the cancer registry, protocol 7"
    )
    assert response.status_code == 200
    exported = _files(b"".join(response.streaming_content))
    assert "Secret Person 0" in exported["patient_identifiers.csv"]
    event = SecurityEvent.objects.get(kind=SecurityEventKind.IDENTIFIED_EXPORT)
    assert event.user == world["study-admin"]
    assert event.detail["study"] == "npsle-e" and event.detail["patients"] == 3
    assert event.detail["reason"] == "Linkage with the cancer registry, protocol 7"
    assert "patient_identifiers" in event.detail["tables"] and event.detail["sites"] == ["north"]

    # The study's audit export lists the identified export, with its reason.
    audit = client.get(reverse("audit:export"), {"study": world["study"].pk})
    rows = list(csv.DictReader(io.StringIO(b"".join(audit.streaming_content).decode())))
    listed = [row for row in rows if row["action"] == "identified export"]
    assert len(listed) == 1
    assert listed[0]["user"] == "study-admin" and listed[0]["reason"].startswith("Linkage")
    assert listed[0]["new_value"].startswith("3 patients: patients, patient_identifiers")


def test_free_text_is_left_out_of_deidentified_exports_unless_asked_for(client, world):
    client.force_login(world["nurse"])
    plain = _files(b"".join(_export(client, world["study"]).streaming_content))
    events = list(csv.DictReader(io.StringIO(plain["adverse_events.csv"])))
    assert "term_other" not in events[0]
    assert "Zhang" not in "".join(plain.values())
    assert "free text left out" in plain["ABOUT.txt"]

    form = client.get(reverse("exchange:export")).content.decode()
    assert "may contain names, dates or other identifiers" in form
    with_text = _files(b"".join(_export(client, world["study"], free_text="on").streaming_content))
    assert "Mr Zhang's fall at home" in with_text["adverse_events.csv"]
    assert "free text INCLUDED" in with_text["ABOUT.txt"]
    event = SecurityEvent.objects.filter(kind=SecurityEventKind.EXPORT, user=world["nurse"]).latest("pk")
    assert event.detail["free_text"] is True
