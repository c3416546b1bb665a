"""schemathesis against the OpenAPI schema, as data entry and as a researcher.

Every operation gets a bounded number of generated requests (MAX_EXAMPLES) — valid and invalid
bodies, odd ids, filters — and the run must have 0 server errors and 0 responses that break the
schema. The data are a small world with records at the user's site and at another site.
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


def _load_schema():
    """The schema as the /api/schema/ endpoint serves it, generated in-process (no database at collection)."""
    raw = json.loads(
        json.dumps(SchemaGenerator().get_schema(request=None, public=True), cls=DjangoJSONEncoder)
    )
    loaded = schemathesis.openapi.from_dict(raw)
    loaded.app = get_wsgi_application()
    return loaded


schema = _load_schema()


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


@pytest.fixture(params=[Role.DATA_ENTRY, Role.RESEARCHER])
def token(request, tokens):
    return tokens[request.param]


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, token):
    case.call_and_validate(
        headers={"Authorization": f"Token {token}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
