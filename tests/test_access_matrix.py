"""Role × site matrix, generated from the URL configuration: every route, every role, own and other site.

Two sites each hold a full case record in every disease area. The other site's records are coded
"ZZOTHER…" so any page, list, search, admin changelist or autocomplete that shows them is caught.
For every route (walked from the URL resolver; a route with an unknown parameter fails the test
until it is given values here) and every role we request the route for the own-site and the
other-site object and record a leak when:
- an other-site object answers anything but 404 (anonymous users: a redirect to sign-in), or
- a response contains another site's study code, or
- a response shows an identifier (name, MRN) to a role that may not see identifiers.
The test asserts zero leaks and lists every one it finds.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.models import Role
from analytics.models import ReportDefinition
from casebook.records import KINDS
from registry.choices import DeathCause, DiseaseArea, FollowUpEventType
from review.models import DataQuery
from tests import factories as f

OTHER = "ZZOTHER"
SECRET_NAME = "Secretname Identifiable"


@dataclass
class SiteRecords:
    """One site's patients (by disease area) and a record of every kind for each."""

    site: object
    prefix: str
    patients: dict[str, object] = field(default_factory=dict)
    lps: dict[str, object] = field(default_factory=dict)
    records: dict[tuple[str, str], object] = field(default_factory=dict)
    queries: list = field(default_factory=list)
    screening: object = None


def build_site(site, studies, prefix: str) -> SiteRecords:
    data = SiteRecords(site=site, prefix=prefix)
    for area, study in studies.items():
        patient = f.PatientFactory(study=study, site=site, study_code=f"{prefix}-{area}")
        f.PatientIdentifierFactory(
            patient=patient, full_name=f"{SECRET_NAME} {prefix}", medical_record_number=f"{prefix}-MRN-{area}"
        )
        lp = f.LumbarPunctureFactory(patient=patient)
        f.CsfResultFactory(lumbar_puncture=lp)
        f.PathogenTestFactory(csf_result=lp.csf)
        f.IntrathecalDoseFactory(lumbar_puncture=lp)
        data.patients[area], data.lps[area] = patient, lp
        records = {
            "therapy": f.SystemicTherapyFactory(patient=patient),
            "adverse-event": f.AdverseEventFactory(patient=patient),
            "discharge": f.DischargeOutcomeFactory(patient=patient),
            "response": f.ResponseAssessmentFactory(patient=patient),
            "follow-up": f.FollowUpEventFactory(patient=patient),
        }
        if area == DiseaseArea.NPSLE:
            f.NpsleManifestationFactory(diagnosis=f.NpsleDiagnosisFactory(patient=patient))
            records["sledai"] = f.SledaiFactory(patient=patient)
        elif area == DiseaseArea.LM:
            f.MutationFindingFactory(diagnosis=f.LmDiagnosisFactory(patient=patient))
        else:
            records["infusion"] = f.CarTInfusionFactory(patient=patient)
            records["icans"] = f.IcansAssessmentFactory(patient=patient)
            records["crs"] = f.CrsAssessmentFactory(patient=patient)
        for kind, record in records.items():
            data.records[(area, kind)] = record
        data.queries.append(
            DataQuery.objects.create(
                patient=patient, section="therapy", message=f"{prefix} query", field_name="agent"
            )
        )
    data.screening = f.ScreeningLogEntryFactory(
        study=studies[DiseaseArea.NPSLE], site=site, note=f"{prefix} screening of the admissions"
    )
    dead = f.PatientFactory(
        study=studies[DiseaseArea.NPSLE],
        site=site,
        study_code=f"{prefix}-dead",
        death_date=dt.date(2021, 9, 1),
        death_cause=DeathCause.INFECTION,
    )
    f.FollowUpEventFactory(patient=dead, event_type=FollowUpEventType.DEATH, event_date=dead.death_date)
    return data


ROLES = [
    "anonymous",
    "no_role",
    Role.DATA_ENTRY,
    Role.REVIEWER,
    Role.RESEARCHER,
    Role.SITE_ADMIN,
    Role.STUDY_ADMIN,
    "superuser",
]
SEES_IDENTIFIERS = {Role.DATA_ENTRY, Role.REVIEWER, Role.STUDY_ADMIN, "superuser"}


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    from django.db import transaction

    with django_db_blocker.unblock(), transaction.atomic():
        own_site, other_site = f.SiteFactory(code="own"), f.SiteFactory(code="other")
        studies = {
            area: f.StudyFactory(code=f"m-{area}", disease_area=area, sites=[own_site, other_site])
            for area in DiseaseArea.values
        }
        own = build_site(own_site, studies, "OWN")
        other = build_site(other_site, studies, OTHER)
        users = {}
        for role in ROLES:
            if role == "anonymous":
                continue
            user = f.UserFactory(
                username=f"u-{role}", is_staff=role != "no_role", is_superuser=role == "superuser"
            )
            if role in Role.values:
                f.MembershipFactory(user=user, site=own_site, role=role)
            users[role] = user
        yield {"own": own, "other": other, "users": users, "studies": studies}
        transaction.set_rollback(True)


def walk(patterns, prefix="", namespace=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern) and entry.name:
            yield (
                f"{namespace}{entry.name}",
                list(entry.pattern.regex.groupindex),
                prefix + str(entry.pattern),
            )


# Parameters the matrix knows how to fill; anything else fails test_every_route_is_covered.
KNOWN_PARAMETERS = {
    "pk",
    "lp_pk",
    "kind",
    "record_pk",
    "key",
    "object_id",
    "app_label",
    "content_type_id",
    "uidb64",
    "token",
    "url",
    "id",
    "query_pk",
    "action",
    "batch_pk",  # an import batch is its uploader's own (tests/exchange): not site-scoped
    "job_id",  # a job is its starter's own (tests/jobs: nobody else sees it): not site-scoped
    # a stored report run's figure: only the run's own site scope (tests/reports/test_report_page_figures.py)
    "run_pk",
    "protocol_pk",  # protocols are reference data, readable by all signed-in staff: not site-scoped
    "course_pk",
    "injection_pk",
}
#: Parameters naming a site-owned object: those routes are also requested with the other site's objects.
OBJECT_PARAMETERS = {"pk", "lp_pk", "record_pk", "object_id", "query_pk", "course_pk", "injection_pk"}
#: Routes that change something: also POSTed with the other site's objects (they must answer 404).
WRITE_ROUTE_WORDS = (
    "edit",
    "create",
    "delete",
    "death_record",
    "submit",
    "verify",
    "lock",
    "unlock",
    "query_raise",
    "query_reply",
    "move",
)


def report_urls(name: str, params: list[str]) -> list[str]:
    """Report routes take a report definition (one per study, not per site); figures come from the page."""
    if params != ["pk"]:
        return []
    return [
        reverse(name, kwargs={"pk": d.pk})
        for d in ReportDefinition.objects.filter(study__code__startswith="m-")
    ]


def concrete_urls(name: str, params: list[str], data: SiteRecords):
    """Every concrete URL of a route for one site's objects (or the route itself without parameters)."""
    if name.startswith(("admin:", "api:")):
        return []  # the admin is covered model by model below; the API in tests/api/test_api_access.py
    if name.startswith("reports:") and params:
        return []  # study-level, not site-level: covered by report_urls
    if name == "casebook:score":
        return [reverse(name, args=[kind]) for kind in ("sledai", "icans", "crs", "ctcae")]
    if name in ("password_reset_confirm", "password_reset_done"):
        return []
    if not params:
        return [reverse(name)]
    if params == ["query_pk", "action"]:
        return [
            reverse(name, kwargs={"query_pk": q.pk, "action": a})
            for q in data.queries
            for a in ("answer", "close", "reopen")
        ]
    if params == ["protocol_pk"]:
        from protocols.seed import ensure_seed_protocols

        return [reverse(name, kwargs={"protocol_pk": p.pk}) for p in ensure_seed_protocols().values()]
    urls = []
    for area, patient in data.patients.items():
        if name == "casebook:diagnosis_edit" and area == DiseaseArea.ICANS:
            continue  # ICANS studies have infusions and assessments instead of one diagnosis form
        if params == ["pk"]:
            urls.append(reverse(name, kwargs={"pk": patient.pk}))
        elif params == ["pk", "key"]:
            urls += [
                reverse(name, kwargs={"pk": patient.pk, "key": key})
                for key in ("identity", "diagnosis", "procedures", "therapy", "safety", "outcomes")
            ]
        elif params == ["pk", "lp_pk"]:
            urls.append(reverse(name, kwargs={"pk": patient.pk, "lp_pk": data.lps[area].pk}))
        elif params == ["pk", "kind"]:
            urls += [
                reverse(name, kwargs={"pk": patient.pk, "kind": kind})
                for kind in KINDS
                if (area, kind) in data.records
            ]
        elif params == ["pk", "kind", "record_pk"]:
            urls += [
                reverse(name, kwargs={"pk": patient.pk, "kind": kind, "record_pk": record.pk})
                for (a, kind), record in data.records.items()
                if a == area
            ]
            if name.endswith("delete"):
                urls.append(
                    reverse(
                        name,
                        kwargs={"pk": patient.pk, "kind": "lumbar-puncture", "record_pk": data.lps[area].pk},
                    )
                )
        elif params[:2] == ["pk", "course_pk"]:
            course = course_of(patient)
            kwargs = {"pk": patient.pk, "course_pk": course.pk}
            if params[2:] == ["injection_pk"]:
                kwargs["injection_pk"] = course.injections.order_by("sequence").first().pk
            urls.append(reverse(name, kwargs=kwargs))
    return urls


def course_of(patient):
    """The patient's intrathecal course, planned from its study's seed protocol when first needed."""
    from accounts.services import system_user
    from protocols.seed import ensure_seed_protocols
    from protocols.services import course_start

    course = patient.intrathecal_courses.first()
    if course is None:
        protocol = next(
            p for p in ensure_seed_protocols().values() if p.disease_area == patient.study.disease_area
        )
        course = course_start(
            patient=patient,
            protocol=protocol,
            start_date=patient.index_admission_date,
            actor=system_user(),
            reason="Access matrix",
        )
    return course


def admin_urls(data: SiteRecords):
    """Change, history and delete pages of each registry model's object at this site."""
    objects = []
    for area, patient in data.patients.items():
        lp = data.lps[area]
        objects += [patient, patient.identifier, lp, lp.csf, lp.csf.pathogen_tests.get(), lp.doses.get()]
        objects += [record for (a, _), record in data.records.items() if a == area]
        for related in ("npsle_diagnosis", "lm_diagnosis"):
            diagnosis = getattr(patient, related, None) if hasattr(patient, related) else None
            if diagnosis:
                objects.append(diagnosis)
                objects += list(
                    diagnosis.manifestations.all()
                    if related == "npsle_diagnosis"
                    else diagnosis.mutations.all()
                )
    objects += [data.site, data.screening]
    urls = []
    for obj in objects:
        meta = obj._meta
        for view in ("change", "history", "delete"):
            urls.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=[obj.pk]))
    return urls


def list_urls():
    from django.apps import apps

    urls = [
        reverse(f"admin:registry_{m._meta.model_name}_changelist") + "?q="
        for m in apps.get_app_config("registry").get_models()
        if not m.__name__.startswith("Historical")
    ]
    urls += [
        reverse("admin:registry_patient_changelist") + f"?q={OTHER[:4]}",
        reverse("casebook:patient_list") + f"?q={OTHER[:4]}",
        reverse("casebook:patient_list") + "?q=MRN",
    ]
    for model, field_name in (
        ("lumbarpuncture", "patient"),
        ("adverseevent", "patient"),
        ("adverseevent", "lumbar_puncture"),
        ("npslediagnosis", "patient"),
        ("npslemanifestation", "diagnosis"),
        ("mutationfinding", "diagnosis"),
        ("csfresult", "lumbar_puncture"),
        ("pathogentest", "csf_result"),
        ("intrathecaldose", "lumbar_puncture"),
        ("patientidentifier", "patient"),
    ):
        urls.append(
            f"/admin/autocomplete/?app_label=registry&model_name={model}&field_name={field_name}&term="
        )
    return urls


def client_for(role, users, client_class):
    client = client_class()
    if role != "anonymous":
        client.force_login(users[role])
    return client


def test_every_route_is_covered():
    unknown = {
        (name, param)
        for name, params, _ in walk(get_resolver().url_patterns)
        for param in params
        if param not in KNOWN_PARAMETERS and not name.startswith("api:")  # tests/api/test_api_access.py
    }
    assert not unknown, f"routes with parameters the access matrix cannot fill yet: {sorted(unknown)}"


SITE_BOUND_ROLES = [role for role in ROLES if role != "superuser"]


@pytest.mark.django_db
@pytest.mark.parametrize("role", SITE_BOUND_ROLES)
def test_no_role_sees_another_sites_records(role, world):
    from django.test import Client

    client = client_for(role, world["users"], Client)
    own, other = world["own"], world["other"]
    leaks: list[str] = []
    routes = list(walk(get_resolver().url_patterns))

    def check(url: str, *, other_object: bool, method: str = "get") -> None:
        response = getattr(client, method)(url)
        if response.status_code >= 500:
            leaks.append(f"{method.upper()} {url}: server error {response.status_code}")
        readable = not any(url.endswith(ext) for ext in (".pdf", ".xlsx", ".zip"))
        body = response.content.decode(errors="replace") if response.status_code == 200 and readable else ""
        if other_object:
            # 405 (wrong method) is answered before any lookup, so it says nothing about the object.
            expected = (302, 405) if role == "anonymous" else (404, 405)
            if method == "post":
                expected = (302,) if role == "anonymous" else (404,)
            if url.startswith("/admin/"):
                expected = (302, 403, 404)  # the admin redirects "doesn't exist" to its index
            if response.status_code not in expected:
                leaks.append(f"{method.upper()} {url}: other site's object answered {response.status_code}")
        if OTHER in body:
            leaks.append(f"{method.upper()} {url}: shows another site's record")
        if SECRET_NAME in body and role not in SEES_IDENTIFIERS:
            leaks.append(f"{method.upper()} {url}: shows an identifier to {role}")

    for name, params, _ in routes:
        for url in concrete_urls(name, params, own):
            check(url, other_object=False)
        if OBJECT_PARAMETERS.intersection(params):
            for url in concrete_urls(name, params, other):
                check(url, other_object=True)
                if any(word in name for word in WRITE_ROUTE_WORDS):
                    check(url, other_object=True, method="post")
    # Reports: a study's report shows only the patients of the sites the user reports on.
    for name, params, _ in routes:
        if name.startswith("reports:"):
            for url in report_urls(name, params):
                check(url, other_object=False, method="post" if name == "reports:save" else "get")
    for url in report_urls("reports:detail", ["pk"]):
        page = client.get(url)
        for figure in set(
            re.findall(r'href="(/reports/\d+/figures/[^"]+\.svg)', page.content.decode(errors="replace"))
        ):
            check(figure, other_object=False)
    for url in admin_urls(own):
        check(url, other_object=False)
    for url in admin_urls(other):
        check(url, other_object=True)
    for url in list_urls():
        check(url, other_object=False)
    assert not leaks, f"{len(leaks)} leak(s) for {role}:\n" + "\n".join(leaks[:40])


@pytest.mark.django_db
def test_superuser_reaches_every_site_without_errors(world):
    from django.test import Client

    client = client_for("superuser", world["users"], Client)
    failures = []
    for data in (world["own"], world["other"]):
        urls = [
            url
            for name, params, _ in walk(get_resolver().url_patterns)
            for url in concrete_urls(name, params, data)
        ]
        for url in [*urls, *admin_urls(data), *list_urls()]:
            status = client.get(url).status_code
            if status >= 500 or (url.startswith("/patients/") and status not in (200, 302, 405)):
                failures.append(f"{url}: {status}")
    assert not failures, "\n".join(failures)


EXPECTED_STATUS = {
    # (role, kind of page) → status for an own-site object
    "view": {
        "anonymous": 302,
        "no_role": 404,
        Role.DATA_ENTRY: 200,
        Role.REVIEWER: 200,
        Role.RESEARCHER: 404,
        Role.SITE_ADMIN: 200,
        Role.STUDY_ADMIN: 200,
        "superuser": 200,
    },
    "edit": {
        "anonymous": 302,
        "no_role": 404,
        Role.DATA_ENTRY: 200,
        Role.REVIEWER: 403,
        Role.RESEARCHER: 404,
        Role.SITE_ADMIN: 200,
        Role.STUDY_ADMIN: 200,
        "superuser": 200,
    },
}


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "page"), list(itertools.product(ROLES, EXPECTED_STATUS)))
def test_roles_get_what_their_role_allows_at_their_own_site(role, page, world):
    from django.test import Client

    client = client_for(role, world["users"], Client)
    patient = world["own"].patients[DiseaseArea.NPSLE]
    url = reverse("casebook:patient_detail" if page == "view" else "casebook:lp_create", args=[patient.pk])
    assert client.get(url).status_code == EXPECTED_STATUS[page][role]


@pytest.mark.django_db
def test_other_sites_records_cannot_be_changed(world):
    from django.test import Client

    client = client_for(Role.DATA_ENTRY, world["users"], Client)
    target = world["other"].records[(DiseaseArea.NPSLE, "therapy")]
    response = client.post(
        reverse("casebook:record_edit", args=[target.patient_id, "therapy", target.pk]),
        {"category": "cyc", "agent": "changed", "start_date": "2021-03-01"},
    )
    assert response.status_code == 404
    target.refresh_from_db()
    assert target.agent != "changed"
    lp = world["other"].lps[DiseaseArea.NPSLE]
    response = client.post(
        reverse("casebook:lp_edit", args=[lp.patient_id, lp.pk]), {"opening_pressure_mmh2o": "999"}
    )
    assert response.status_code == 404
    dose = lp.doses.get()
    assert dose.dose_mg == Decimal("10")


@pytest.mark.django_db
def test_a_researchers_report_holds_their_sites_patients_only(world):
    from django.test import Client

    client = client_for(Role.RESEARCHER, world["users"], Client)
    definition = ReportDefinition.objects.get(study=world["studies"][DiseaseArea.ICANS])
    page = client.get(reverse("reports:detail", args=[definition.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "OWN-icans" in html and OTHER not in html
    report = client.get(reverse("reports:json", args=[definition.pk])).content.decode()
    assert "OWN-icans" in report and OTHER not in report
