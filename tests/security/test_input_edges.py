"""Medium finding: schema and input edges.

- An import killed with ``kill -9`` left its batch "running" for ever: stale batches are detected and
  marked interrupted (the kill itself is tested in tests/exchange/test_interrupted_import.py).
- Two conflicting rows for the same key in one file: the last one won. Now a row error.
- ``page_size`` was silently replaced by the default or the cap. Now a 400 outside 1–500.
- The schema's enums did not match the API: an active course answers ``stop_reason: ""``, which
  the schema did not allow.
"""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from django.apps import apps
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.services import system_user
from exchange.batches import batches_mark_interrupted, this_host
from exchange.importer import Importer, read_tables, sha256_of
from exchange.models import ImportBatch, ImportStatus
from registry.models import Patient
from tests import factories as f

pytestmark = pytest.mark.django_db


def _batch(**fields) -> ImportBatch:
    defaults = {
        "study": f.StudyFactory(code="edges"),
        "file_name": "x.csv",
        "file_sha256": "0" * 64,
        "source_format": "csv",
        "dry_run": False,
        "started_by": system_user(),
        "host": this_host(),
    }
    return ImportBatch.objects.create(**(defaults | fields))


def test_a_batch_whose_process_was_killed_is_marked_interrupted_not_running_for_ever():
    gone = _batch(process_id=2**22 + 12345)  # no such process
    alive = _batch(study=f.StudyFactory(code="edges-2"), process_id=__import__("os").getpid())
    elsewhere = _batch(study=f.StudyFactory(code="edges-3"), host="another-machine", process_id=1)
    assert batches_mark_interrupted() == 1
    gone.refresh_from_db(), alive.refresh_from_db(), elsewhere.refresh_from_db()
    assert gone.status == ImportStatus.INTERRUPTED and "nothing was written" in gone.errors[0]
    assert alive.status == elsewhere.status == ImportStatus.RUNNING
    # A batch on another machine is interrupted once it is older than IMPORT_STALE_HOURS.
    assert batches_mark_interrupted(now=timezone.now() + dt.timedelta(hours=13)) == 2


def _import(content: bytes, study, name="patients.csv"):
    tables, notes = read_tables(name, content)
    return Importer(study=study, actor=system_user(), as_operator=True).run(
        tables, dry_run=False, file_name=name, sha256=sha256_of(content), source_format="csv", notes=notes
    )


def test_two_conflicting_rows_for_the_same_key_are_a_row_error_not_last_one_wins():
    site = f.SiteFactory(code="north")
    study = f.StudyFactory(code="dup", sites=[site])
    result = _import(
        b"study_code,site,sex,birth_year,index_admission_date\n"
        b"D1,north,F,1990,2021-03-01\n"
        b"D2,north,M,1980,2021-03-01\n"
        b"D1,north,F,1991,2021-03-01\n",
        study,
    )
    assert not result.ok
    issue = next(i for i in result.issues if i.line == 4)
    assert "repeats line 2" in issue.message and "different values" in issue.message
    assert not Patient.objects.filter(study=study).exists()


def test_the_same_moment_written_two_ways_is_the_same_key():
    site = f.SiteFactory(code="north")
    study = f.StudyFactory(code="dup2", sites=[site])
    patient = f.PatientFactory(study=study, site=site, study_code="D1")
    result = _import(
        b"study_code,performed_at,route\n"
        b"D1,2021-03-02T09:00:00Z,lumbar\n"
        b"D1,2021-03-02T17:00:00+08:00,lumbar\n",
        study,
        name="lumbar_punctures.csv",
    )
    assert [i.line for i in result.issues] == [3]
    assert "repeats line 2" in result.issues[0].message
    assert not patient.lumbar_punctures.exists()


@pytest.mark.parametrize("size", ["0", "-5", "abc", "501", "1e3", "10.5"])
def test_page_size_outside_1_to_500_is_a_400(size):
    user = f.UserFactory()
    f.MembershipFactory(user=user, role=Role.DATA_ENTRY)
    client = APIClient()
    client.force_authenticate(user)
    response = client.get("/api/patients/", {"page_size": size})
    assert response.status_code == 400
    assert response.json() == {"page_size": ["Give a whole number from 1 to 500."]}
    assert client.get("/api/patients/", {"page_size": "500"}).status_code == 200


def test_schema_enums_allow_the_blank_a_blank_choice_field_answers(tmp_path):
    schema_file = tmp_path / "schema.yaml"
    call_command("spectacular", file=str(schema_file))
    components = yaml.safe_load(schema_file.read_text())["components"]["schemas"]
    blank_ok = {name for name, spec in components.items() if spec.get("enum") == [""]}
    problems = []
    for model in apps.get_models():
        component = components.get(model.__name__)
        if not component:
            continue
        for field in model._meta.concrete_fields:
            prop = component.get("properties", {}).get(field.name)
            if not (field.choices and field.blank and prop):
                continue
            refs = [
                part.get("$ref", "").rsplit("/", 1)[-1]
                for part in prop.get("oneOf", []) + prop.get("allOf", [])
            ]
            if not blank_ok & set(refs) and "" not in prop.get("enum", []):
                problems.append(f"{model.__name__}.{field.name}")
    assert not problems, f"these answer '' but the schema does not allow it: {problems}"
