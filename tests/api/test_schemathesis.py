"""schemathesis against the OpenAPI schema, as data entry and as a researcher.

Data entry, who may write, gets schemathesis's *coverage* phase on every operation (each field's
boundaries, wrong types, missing and extra values: about 460 requests for an LP write) and
MAX_EXAMPLES fuzzed requests; a researcher, whose writes are refused before any field is read, gets
the fuzzed requests only (the coverage phase would repeat one refusal a thousand times). The run
must have 0 server errors and 0 responses that break the schema.

The requests name real records: the path's ids are those of a record of the operation's kind at the
user's own site (and its parents'), and an update or delete sends the record's current ETag, so the
generated bodies reach the serializers and the services. (Generated ids alone were 0 or
out of range: a measured 99.9% of an LP write's 1,000 coverage requests answered "No patient
found", and a PUT of ``missing_codes: null`` that failed with a 500 went unseen.) The world has
one record of every kind at the user's site and patients at another site.

The tests are parametrized by operation here and each builds its schemathesis test when it runs,
with schemathesis's own builder (the one its pytest plugin calls). The plugin builds every
operation's coverage cases while pytest *collects*, so each xdist worker spent ~20 s generating
cases for all 137 operations, most of which the other worker runs.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import json
import re
import sys

import pytest
import schemathesis
from django.core.serializers.json import DjangoJSONEncoder
from django.core.wsgi import get_wsgi_application
from django.db import transaction
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from knox.models import AuthToken
from schemathesis.checks import not_a_server_error
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.pytest._test_builder import build_operation_test  # what schemathesis's plugin calls
from schemathesis.python._constants.orchestrator import make_constants_value_source
from schemathesis.specs.openapi.checks import response_schema_conformance

from accounts.access import site_path
from accounts.models import Role
from api import urls as api_urls
from api.views import etag
from protocols.seed import ensure_seed_protocols
from protocols.services import course_start
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


def _run_operation(schema, label: str, token: str, own_site) -> None:
    """Build the operation's test as schemathesis's pytest plugin does, then run it, on the ids of a
    record of the operation's kind at ``own_site``."""
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label
    model, ids = _path_ids(operation.path, own_site)
    schema.config.parameters = {f"path.{name}": str(value) for name, value in ids.items()}
    # Every case is rolled back, so the addressed record keeps its version: its ETag is read once.
    tag = etag(model._default_manager.get(pk=ids["id"])) if model is not None and "id" in ids else None
    test = build_operation_test(
        config=schema.config,
        operation=operation,
        test_func=lambda case: _call(case, token, tag),
        given_kwargs={},
        feedback=FeedbackSources(constants_value_source=make_constants_value_source(schema)),
        explicit_settings=SETTINGS,
    )
    test()


#: Each kind of record a patient of the area holds (besides LPs, therapies and events), made at both sites.
RECORDS = {
    DiseaseArea.NPSLE: (
        lambda patient: f.NpsleManifestationFactory(diagnosis__patient=patient),
        lambda patient: f.SledaiFactory(patient=patient),
        lambda patient: f.DischargeOutcomeFactory(patient=patient),
    ),
    DiseaseArea.LM: (
        lambda patient: f.MutationFindingFactory(diagnosis__patient=patient),
        lambda patient: f.ResponseAssessmentFactory(patient=patient),
    ),
    DiseaseArea.ICANS: (
        lambda patient: f.CarTInfusionFactory(patient=patient),
        lambda patient: f.IcansAssessmentFactory(patient=patient),
        lambda patient: f.CrsAssessmentFactory(patient=patient),
    ),
}


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """One record of every kind at an own and another site, and one token per role (by role; "site":
    the users' own site); built once per worker, rolled back after."""
    with django_db_blocker.unblock(), transaction.atomic():
        own, other = f.SiteFactory(code="own"), f.SiteFactory(code="other")
        protocols = ensure_seed_protocols()
        for area in DiseaseArea.values:
            study = f.StudyFactory(code=f"api-{area}", disease_area=area, sites=[own, other])
            for site in (own, other):
                patient = f.PatientFactory(study=study, site=site)
                f.PatientIdentifierFactory(patient=patient)
                csf = f.CsfResultFactory(lumbar_puncture=f.LumbarPunctureFactory(patient=patient))
                f.PathogenTestFactory(csf_result=csf)
                f.IntrathecalDoseFactory(lumbar_puncture=csf.lumbar_puncture)
                f.SystemicTherapyFactory(patient=patient)
                f.AdverseEventFactory(patient=patient)
                f.FollowUpEventFactory(patient=patient)
                for make in RECORDS[area]:
                    make(patient)
                if area == DiseaseArea.NPSLE:
                    course_start(
                        patient=patient,
                        protocol=protocols["npsle-pumch"],
                        start_date=f.INDEX_DATE + dt.timedelta(days=3),
                        actor=f.UserFactory(),
                        reason="API schema test",
                    )
            f.ScreeningLogEntryFactory(study=study, site=own)
        keys = {"site": own}
        for role in (Role.DATA_ENTRY, Role.RESEARCHER):
            user = f.UserFactory()
            f.MembershipFactory(user=user, site=own, role=role)
            keys[role] = AuthToken.objects.create(user=user)[1]
        yield keys
        transaction.set_rollback(True)


@functools.cache
def _viewsets_by_model() -> dict:
    routers = (
        api_urls.router,
        api_urls.patients,
        api_urls.npsle,
        api_urls.lm,
        api_urls.punctures,
        api_urls.csf,
    )
    return {
        viewset.queryset.model: viewset
        for router in routers
        for _prefix, viewset, _basename in router.registry
        if getattr(viewset, "queryset", None) is not None
    }


def _path_ids(path: str, own_site):
    """(model, {path parameter: id}) for an operation: a record of its kind at the own site, with its
    parents' ids up the route; (None, {}) for a path without database ids (a token's key is left to
    schemathesis: the user's own would revoke the token the run signs in with)."""
    names = re.findall(r"{(\w+)}", path)
    if not names or names == ["token_key"]:
        return None, {}
    viewset = resolve(re.sub(r"{\w+}", "1", path)).func.cls
    model = viewset.queryset.model
    to_site = site_path(model)
    record = model._default_manager.filter(**{to_site: own_site.pk} if to_site else {}).order_by("pk").first()
    assert record is not None, f"the schema test's world has no {model.__name__} at its own site"
    ids = {"id": record.pk} if "id" in names else {}
    by_model = _viewsets_by_model()
    while getattr(viewset, "parent_model", None) is not None:
        record = getattr(record, viewset.parent_field)
        ids[viewset.parent_kwarg] = record.pk
        viewset = by_model[viewset.parent_model]
    assert set(ids) == set(names), (path, ids)
    return model, ids


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


def _call(case, token: str, tag: str | None) -> None:
    """Send the case, with the addressed record's current ETag (``tag``) on an update or delete, and
    check the answer (a missing or stale ETag's 428 and 412 are tested in test_api.py). What the case
    wrote is rolled back, so every case meets the same world: a record one case deleted or a date one
    case took would otherwise turn the later cases into 404s and "already exists" answers."""
    headers = {"Authorization": f"Token {token}"}
    with transaction.atomic():
        if tag is not None and case.method in ("PUT", "PATCH", "DELETE"):
            headers["If-Match"] = tag
        case.call_and_validate(
            headers=headers,
            checks=[not_a_server_error, response_schema_conformance],
        )
        transaction.set_rollback(True)


#: The operations in two xdist groups, one per worker, instead of the module's one: with real records
#: the data-entry requests reach the services (3 to 4 minutes of one worker's time), and each worker
#: builds the world once for its half.
LABELS = [
    pytest.param(label, marks=pytest.mark.xdist_group(f"{__name__}-{i % 2}"))
    for i, label in enumerate(sorted(OPERATIONS))
]


@pytest.mark.django_db
@pytest.mark.parametrize("label", LABELS)
def test_api_conforms_to_its_schema_for_data_entry(label, world):
    _run_operation(writer_schema, label, world[Role.DATA_ENTRY], world["site"])


@pytest.mark.django_db
@pytest.mark.parametrize("label", LABELS)
def test_api_conforms_to_its_schema_for_a_researcher(label, world):
    _run_operation(reader_schema, label, world[Role.RESEARCHER], world["site"])
