"""Patient search: study code and MRN by prefix, names by fragment; on PostgreSQL each is an index scan."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from accounts.models import Role
from registry.choices import DiseaseArea
from registry.models import Patient, PatientIdentifier
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(client):
    site = f.SiteFactory(code="north")
    study = f.StudyFactory(code="npsle", disease_area=DiseaseArea.NPSLE, sites=[site])
    user = f.UserFactory()
    f.MembershipFactory(user=user, site=site, role=Role.DATA_ENTRY)
    client.force_login(user)
    for code, name, mrn in [
        ("NP-7", "Wang Fang", "MRN-551"),
        ("NP-8", "Li Hua", "MRN-552"),
        ("XNP-9", "Zhao Lei", "A-1"),
    ]:
        f.PatientIdentifierFactory(
            patient=f.PatientFactory(study=study, site=site, study_code=code),
            full_name=name,
            medical_record_number=mrn,
        )


def found(client, query: str) -> list[str]:
    patients = client.get(reverse("casebook:patient_list"), {"q": query}).context["patients"]
    return sorted(p.study_code for p in patients)


def test_codes_and_mrns_match_by_prefix_names_by_fragment(client, world):
    assert found(client, "np-") == ["NP-7", "NP-8"], "a prefix, in any case; not XNP-9 (no infix match)"
    assert found(client, "mrn-55") == ["NP-7", "NP-8"]
    assert found(client, "MRN-551") == ["NP-7"]
    assert found(client, "fang") == ["NP-7"], "a name fragment of three or more characters"
    assert found(client, "ua") == [], "two letters are too short to search names"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the search indexes are PostgreSQL's")
def test_each_search_is_an_index_scan_on_postgresql(world):
    searches = [
        Patient.objects.filter(study_code__istartswith="NP-"),
        PatientIdentifier.objects.filter(medical_record_number__istartswith="MRN-55"),
        PatientIdentifier.objects.filter(full_name__icontains="fang"),
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # tiny tables: ask whether an index can serve
        for queryset, index in zip(
            searches, ["patient_code_prefix", "identifier_mrn_prefix", "identifier_name_trigram"], strict=True
        ):
            assert index in queryset.explain(), queryset.query
