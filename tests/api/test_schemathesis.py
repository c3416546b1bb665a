"""schemathesis against the OpenAPI schema, as data entry and as a researcher.

Data entry, who may write, gets schemathesis's *coverage* phase on every operation (each field's
boundaries, wrong types, missing and extra values: about 1,000 requests for an LP write) and
MAX_EXAMPLES fuzzed requests; a researcher, whose writes are refused before any field is read, gets
the fuzzed requests only (the coverage phase would repeat one refusal a thousand times). The run
must have 0 server errors and 0 responses that break the schema. The data are a small world with
records at the user's site and at another site.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.serializers.json import DjangoJSONEncoder
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from knox.models import AuthToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from accounts.models import Role
from registry.choices import DiseaseArea
from tests import factories as f

MAX_EXAMPLES = 3


def _generate_schema() -> str:
    """The schema as the /api/schema/ endpoint serves it, generated in-process (no database at
    collection) once, as JSON text: both roles' schemas load it (generating it cost ~1.5 s)."""
    return json.dumps(SchemaGenerator().get_schema(request=None, public=True), cls=DjangoJSONEncoder)


SCHEMA_JSON = _generate_schema()


def _load_schema(*, coverage: bool):
    loaded = schemathesis.openapi.from_dict(json.loads(SCHEMA_JSON))
    loaded.app = get_wsgi_application()
    loaded.config.phases.coverage.enabled = coverage
    return loaded


writer_schema = _load_schema(coverage=True)
reader_schema = _load_schema(coverage=False)


@pytest.fixture(scope="module")
def tokens(django_db_setup, django_db_blocker):
    """Records at an own and another site, and one token per role; built once, rolled back after."""
    from django.db import transaction

    with django_db_blocker.unblock(), transaction.atomic():
        own, other = f.SiteFactory(code="own"), f.SiteFactory(code="other")
        for area in DiseaseArea.values:
            study = f.StudyFactory(code=f"api-{area}", disease_area=area, sites=[own, other])
            for site in (own, other):
                patient = f.PatientFactory(study=study, site=site)
                f.CsfResultFactory(lumbar_puncture=f.LumbarPunctureFactory(patient=patient))
                f.SystemicTherapyFactory(patient=patient)
        keys = {}
        for role in (Role.DATA_ENTRY, Role.RESEARCHER):
            user = f.UserFactory()
            f.MembershipFactory(user=user, site=own, role=role)
            keys[role] = AuthToken.objects.create(user=user)[1]
        yield keys
        transaction.set_rollback(True)


@pytest.fixture(scope="module", autouse=True)
def keep_test_connection():
    """Keep the test transaction's connection open across WSGI calls.

    schemathesis calls the WSGI app directly, so Django's request signals run
    ``close_old_connections``; inside the test's atomic block that closes the PostgreSQL
    connection (SQLite's in-memory database ignores it). Django's own test client disconnects
    the handler the same way.
    """
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _call(case, token: str) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Token {token}"},
        checks=[not_a_server_error, response_schema_conformance],
    )


@pytest.mark.django_db
@writer_schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema_for_data_entry(case, tokens):
    _call(case, tokens[Role.DATA_ENTRY])


@pytest.mark.django_db
@reader_schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema_for_a_researcher(case, tokens):
    _call(case, tokens[Role.RESEARCHER])
