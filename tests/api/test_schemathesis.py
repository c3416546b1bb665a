"""schemathesis against the OpenAPI schema, as data entry and as a researcher.

Data entry, who may write, gets schemathesis's *coverage* phase on every operation (each field's
boundaries, wrong types, missing and extra values: about 1,000 requests for an LP write) and
MAX_EXAMPLES fuzzed requests; a researcher, whose writes are refused before any field is read, gets
the fuzzed requests only (the coverage phase would repeat one refusal a thousand times). The run
must have 0 server errors and 0 responses that break the schema. The data are a small world with
records at the user's site and at another site.

The tests are parametrized by operation here and each builds its schemathesis test when it runs,
with schemathesis's own builder (the one its pytest plugin calls). The plugin builds every
operation's coverage cases while pytest *collects*, so each xdist worker spent ~20 s generating
cases for all 137 operations, most of which the other worker runs.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import schemathesis
from django.core.serializers.json import DjangoJSONEncoder
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from knox.models import AuthToken
from schemathesis.checks import not_a_server_error
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.pytest._test_builder import build_operation_test  # what schemathesis's plugin calls
from schemathesis.python._constants.orchestrator import make_constants_value_source
from schemathesis.specs.openapi.checks import response_schema_conformance

from accounts.models import Role
from registry.choices import DiseaseArea
from tests import factories as f

MAX_EXAMPLES = 3

# schemathesis's WSGI transport tries `from flask import Flask` on every request it sends; without
# Flask installed each failed import searched sys.path again (py-spy: 3.3% of this module's samples).
# None in sys.modules makes that import fail at once, as it must.
if importlib.util.find_spec("flask") is None:
    sys.modules["flask"] = None  # type: ignore[assignment]


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
OPERATIONS = {result.ok().label: result.ok() for result in writer_schema.get_all_operations()}
SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def _run_operation(schema, label: str, token: str) -> None:
    """Build the operation's test as schemathesis's pytest plugin does, then run it."""
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label
    test = build_operation_test(
        config=schema.config,
        operation=operation,
        test_func=lambda case: _call(case, token),
        given_kwargs={},
        feedback=FeedbackSources(constants_value_source=make_constants_value_source(schema)),
        explicit_settings=SETTINGS,
    )
    test()


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
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_api_conforms_to_its_schema_for_data_entry(label, tokens):
    _run_operation(writer_schema, label, tokens[Role.DATA_ENTRY])


@pytest.mark.django_db
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_api_conforms_to_its_schema_for_a_researcher(label, tokens):
    _run_operation(reader_schema, label, tokens[Role.RESEARCHER])
