"""Critical finding: a site administrator took over another site's patient through an import.

North's administrator uploaded one ``patients`` row naming a South patient's study code. The dry
run echoed South's values and offered "site South → North"; Apply moved the patient. Now an import
matches patients only at the sites its user manages, reveals nothing of another site's patient, and
never changes a patient's site — on every table of the exchange layout and on the REDCap path.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import Role
from exchange.models import ImportBatch
from registry.models import LumbarPuncture, Patient
from tests import factories as f

pytestmark = pytest.mark.django_db

SOUTH_BIRTH_DATE = dt.date(1998, 4, 1)
SOUTH_INDEX = dt.date(2019, 3, 11)
NOT_MANAGED = "belongs to a site you do not manage; nothing changed"


@pytest.fixture
def world():
    north, south = f.SiteFactory(code="north", name="North"), f.SiteFactory(code="south", name="South")
    study = f.StudyFactory(code="npsle-x", sites=[north, south])
    south_patient = f.PatientFactory(
        study=study,
        site=south,
        study_code="NP0005",
        birth_date=SOUTH_BIRTH_DATE,
        birth_year=1998,
        index_admission_date=SOUTH_INDEX,
    )
    f.PatientIdentifierFactory(
        patient=south_patient, full_name="Southern Secret", medical_record_number="S-77"
    )
    lp = f.LumbarPunctureFactory(patient=south_patient)
    admin_north = f.UserFactory(username="north-admin")
    f.MembershipFactory(user=admin_north, site=north, role=Role.SITE_ADMIN)
    return {
        "north": north,
        "south": south,
        "study": study,
        "patient": south_patient,
        "lp": lp,
        "admin": admin_north,
    }


def _upload(client, world, name: str, content: str, **extra):
    files = {"file": SimpleUploadedFile(name, content.encode())}
    files.update(extra)
    return client.post(
        reverse("exchange:import"),
        {"study": world["study"].pk, "site": world["north"].pk, **files},
    )


def _assert_nothing_of_south_leaks(html: str) -> None:
    for secret in ("1998-04-01", "2019-03-11", "11 March 2019", "South", "Southern Secret", "S-77"):
        assert secret not in html, secret


def test_site_admin_cannot_take_over_another_sites_patient_through_import(client, world):
    client.force_login(world["admin"])
    response = _upload(
        client,
        world,
        "patients.csv",
        "study_code,sex,birth_year,index_admission_date\nNP0005,F,1998,2019-05-01\n",
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert NOT_MANAGED in html
    _assert_nothing_of_south_leaks(html)
    assert "Apply this import" not in html
    batch = ImportBatch.objects.get()
    assert batch.errors and all("1998-04-01" not in e and "South" not in e for e in batch.errors)
    # Apply is refused too (the dry run had errors), and the patient stays South's, unchanged.
    assert client.post(reverse("exchange:import_apply", args=[batch.pk])).status_code == 404
    patient = Patient.objects.get(pk=world["patient"].pk)
    assert patient.site == world["south"]
    assert patient.index_admission_date == SOUTH_INDEX


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (
            "lumbar_punctures.csv",
            "study_code,performed_at,route,opening_pressure_mmh2o\nNP0005,{lp},lumbar,999\n",
        ),
        ("follow_up_events.csv", "study_code,event_type,event_date,notes\nNP0005,death,2022-01-01,\n"),
        (
            "adverse_events.csv",
            "study_code,ctcae_term,term_other,onset_date,grade\nNP0005,headache,,2022-01-01,1\n",
        ),
    ],
)
def test_import_of_any_table_is_scoped_to_the_sites_the_user_manages(client, world, name, content):
    client.force_login(world["admin"])
    lp_time = world["lp"].performed_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = _upload(client, world, name, content.format(lp=lp_time))
    html = response.content.decode()
    assert NOT_MANAGED in html
    _assert_nothing_of_south_leaks(html)
    assert LumbarPuncture.objects.get(pk=world["lp"].pk).opening_pressure_mmh2o != 999
    assert world["patient"].identifier.full_name == "Southern Secret"
    assert not world["patient"].follow_up_events.exists()


def test_identifiers_of_another_sites_patient_are_not_imported_by_a_user_with_the_right_at_home(
    client, world
):
    """A study administrator at North (identifier right there) still cannot touch South's identifiers."""
    admin = f.UserFactory(username="north-study-admin")
    f.MembershipFactory(user=admin, site=world["north"], role=Role.STUDY_ADMIN)
    client.force_login(admin)
    response = _upload(
        client,
        world,
        "patient_identifiers.csv",
        "study_code,full_name,medical_record_number\nNP0005,Taken Over,X-1\n",
    )
    html = response.content.decode()
    assert NOT_MANAGED in html
    _assert_nothing_of_south_leaks(html)
    world["patient"].identifier.refresh_from_db()
    assert world["patient"].identifier.full_name == "Southern Secret"


def test_redcap_import_is_scoped_to_the_sites_the_user_manages(client, world):
    client.force_login(world["admin"])
    dictionary = (
        'Variable / Field Name,Form Name,Field Type,Field Label,"Choices, Calculations, OR Slider Labels"\n'
        'record_id,demographics,text,Record,\nsex,demographics,radio,Sex,"1, Female | 2, Male"\n'
        "dob,demographics,text,Birth date,\n"
    )
    mapping = {
        "record_id": "record_id",
        "study_code_prefix": "NP",
        "tables": {
            "patients": {
                "instrument": None,
                "columns": {
                    "sex": {"field": "sex", "codes": {"1": "F", "2": "M"}},
                    "birth_date": {"field": "dob"},
                },
            }
        },
    }
    response = _upload(
        client,
        world,
        "records.csv",
        "record_id,redcap_repeat_instrument,sex,dob\n0005,,1,1997-01-01\n",
        redcap_dictionary=SimpleUploadedFile("dictionary.csv", dictionary.encode()),
        redcap_mapping=SimpleUploadedFile("mapping.json", json.dumps(mapping).encode()),
    )
    html = response.content.decode()
    assert NOT_MANAGED in html
    _assert_nothing_of_south_leaks(html)
    assert Patient.objects.get(pk=world["patient"].pk).birth_date == SOUTH_BIRTH_DATE


def test_no_import_changes_a_patients_site_even_for_the_operator(world):
    from accounts.services import system_user
    from exchange.importer import Importer, read_tables, sha256_of

    content = b"study_code,site\nNP0005,north\n"
    tables, notes = read_tables("patients.csv", content)
    result = Importer(study=world["study"], actor=system_user(), as_operator=True).run(
        tables, dry_run=False, file_name="patients.csv", sha256=sha256_of(content), source_format="csv"
    )
    assert not result.ok
    assert any(issue.column == "site" and "never moves a patient" in issue.message for issue in result.issues)
    assert Patient.objects.get(pk=world["patient"].pk).site == world["south"]
