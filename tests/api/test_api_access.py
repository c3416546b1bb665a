"""The API's role × site matrix, generated from its URL configuration.

Every API route (walked from the resolver; a route with a parameter this test cannot fill fails it)
is requested by every role for records of its own site and of another site. A leak is: another
site's record answering anything but 404 (401/403 for anonymous), another site's study code in any
response, or an identifier shown to a role that may not see identifiers. Writes (POST/PATCH/DELETE)
against another site's records must answer 404 and change nothing.
"""

from __future__ import annotations

import pytest
from django.urls import get_resolver, reverse
from rest_framework.test import APIClient

from accounts.access import ROLE_CAPABILITIES, Capability
from accounts.models import Role
from protocols.seed import ensure_seed_protocols
from protocols.services import course_start
from registry.choices import DiseaseArea
from tests import factories as f
from tests.test_access_matrix import walk

OTHER = "ZZOTHER"
SECRET = "Secretname Identifiable"
ROLES = [
    "anonymous",
    "no_role",
    Role.DATA_ENTRY,
    Role.REVIEWER,
    Role.RESEARCHER,
    Role.SITE_ADMIN,
    Role.STUDY_ADMIN,
]
SEES_IDENTIFIERS = {Role.DATA_ENTRY, Role.REVIEWER, Role.STUDY_ADMIN}
WRITE_NOWHERE = {"no_role", Role.REVIEWER, Role.RESEARCHER}
#: Routes written with a capability of their own: a role without it anywhere is refused (403) before
#: any lookup, which says nothing about the record.
WRITE_CAPABILITY = {"api:screening-log-detail": Capability.RECORD_SCREENING}
SEED_PROTOCOL = {
    DiseaseArea.NPSLE: "npsle-pumch",
    DiseaseArea.LM: "lm-pemetrexed",
    DiseaseArea.ICANS: "icans-idm",
}
FILLABLE = {"pk", "patient_pk", "lp_pk", "csf_pk", "diagnosis_pk", "format"}


def records(site, studies, prefix):
    """One patient per disease area with a record at every nesting level; the objects for each route."""
    objects = {}
    for area, study in studies.items():
        patient = f.PatientFactory(study=study, site=site, study_code=f"{prefix}-{area}")
        f.PatientIdentifierFactory(patient=patient, full_name=f"{SECRET} {prefix}")
        lp = f.LumbarPunctureFactory(patient=patient)
        csf = f.CsfResultFactory(lumbar_puncture=lp)
        objects.setdefault("patient", []).append(patient)
        objects.setdefault("lp", []).append((patient, lp))
        objects.setdefault("csf", []).append((patient, lp, csf))
        objects.setdefault("pathogen_test", []).append(
            (patient, lp, csf, f.PathogenTestFactory(csf_result=csf))
        )
        objects.setdefault("dose", []).append((patient, lp, f.IntrathecalDoseFactory(lumbar_puncture=lp)))
        children = {
            "identifiers": patient.identifier,
            "systemic-therapies": f.SystemicTherapyFactory(patient=patient),
            "adverse-events": f.AdverseEventFactory(patient=patient),
            "discharge": f.DischargeOutcomeFactory(patient=patient),
            "response-assessments": f.ResponseAssessmentFactory(patient=patient),
            "follow-up-events": f.FollowUpEventFactory(patient=patient),
            "lumbar-punctures": lp,
        }
        if area == DiseaseArea.NPSLE:
            manifestation = f.NpsleManifestationFactory(diagnosis=f.NpsleDiagnosisFactory(patient=patient))
            children |= {
                "npsle-diagnosis": manifestation.diagnosis,
                "sledai-assessments": f.SledaiFactory(patient=patient),
            }
            objects["manifestation"] = (patient, manifestation.diagnosis, manifestation)
        elif area == DiseaseArea.LM:
            mutation = f.MutationFindingFactory(diagnosis=f.LmDiagnosisFactory(patient=patient))
            children |= {"lm-diagnosis": mutation.diagnosis}
            objects["mutation"] = (patient, mutation.diagnosis, mutation)
        else:
            children |= {
                "car-t-infusions": f.CarTInfusionFactory(patient=patient),
                "icans-assessments": f.IcansAssessmentFactory(patient=patient),
                "crs-assessments": f.CrsAssessmentFactory(patient=patient),
            }
        protocol = ensure_seed_protocols()[SEED_PROTOCOL[area]]
        children["courses"] = course_start(
            patient=patient,
            protocol=protocol,
            start_date=patient.index_admission_date,
            actor=None,
            reason="matrix",
        )
        for prefix_name, child in children.items():
            objects.setdefault(("child", prefix_name), []).append((patient, child))
    objects["screening"] = [
        f.ScreeningLogEntryFactory(study=studies[DiseaseArea.NPSLE], site=site, note=f"{prefix} screening")
    ]
    return objects


def urls_for(name: str, params: list[str], objects) -> list[str]:
    """Concrete URLs of one API route for one site's objects."""

    def url(**kwargs):
        return reverse(name, kwargs=kwargs)

    base = name.removeprefix("api:")
    if base.startswith("patient-") and "patient_pk" in params:
        prefix = base.removeprefix("patient-").removesuffix("-list").removesuffix("-detail")
        if ("child", prefix) not in objects and "-" in prefix:
            prefix = prefix.rsplit("-", 1)[0]  # a detail action, e.g. patient-courses-stop
        pairs = objects[("child", prefix)]
        if base.endswith("-list"):
            return [url(patient_pk=p.pk) for p, _ in pairs]
        return [url(patient_pk=p.pk, pk=c.pk) for p, c in pairs]
    if base.startswith("lp-"):
        rows = [(p, lp, c) for p, lp, c in objects["csf"]] if base.startswith("lp-csf") else objects["dose"]
        if base.endswith("-list"):
            return [url(patient_pk=r[0].pk, lp_pk=r[1].pk) for r in rows]
        return [url(patient_pk=r[0].pk, lp_pk=r[1].pk, pk=r[2].pk) for r in rows]
    if base.startswith("csf-pathogen-test"):
        rows = objects["pathogen_test"]
        if base.endswith("-list"):
            return [url(patient_pk=p.pk, lp_pk=lp.pk, csf_pk=c.pk) for p, lp, c, _ in rows]
        return [url(patient_pk=p.pk, lp_pk=lp.pk, csf_pk=c.pk, pk=t.pk) for p, lp, c, t in rows]
    for key in ("npsle-manifestation", "lm-mutation"):
        if base.startswith(key):
            patient, diagnosis, child = objects["manifestation" if key.startswith("npsle") else "mutation"]
            if base.endswith("-list"):
                return [url(patient_pk=patient.pk, diagnosis_pk=diagnosis.pk)]
            return [url(patient_pk=patient.pk, diagnosis_pk=diagnosis.pk, pk=child.pk)]
    if base.startswith("patient-") and params == ["pk"]:  # patient-detail, patient-death
        return [url(pk=p.pk) for p in objects["patient"]]
    if base.startswith("screening-log") and params == ["pk"]:
        return [url(pk=entry.pk) for entry in objects["screening"]]
    if base in ("site-detail", "study-detail"):
        return []  # sites and studies are not site-owned records; their lists are checked below
    if not params:
        return [url()]
    return []


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    from django.db import transaction

    with django_db_blocker.unblock(), transaction.atomic():
        own, other = f.SiteFactory(code="own"), f.SiteFactory(code="zzother")
        studies = {
            area: f.StudyFactory(code=f"a-{area}", disease_area=area, sites=[own, other])
            for area in DiseaseArea.values
        }
        data = {"own": records(own, studies, "OWN"), "other": records(other, studies, OTHER), "users": {}}
        for role in ROLES[1:]:
            user = f.UserFactory(username=f"api-{role}")
            if role in Role.values:
                f.MembershipFactory(user=user, site=own, role=role)
            data["users"][role] = user
        yield data
        transaction.set_rollback(True)


def writes_nowhere(role: str, name: str) -> bool:
    """Whether a signed-in role lacks, at every site, the capability this route's writes need."""
    needed = WRITE_CAPABILITY.get(name)
    return (
        role != "anonymous" and needed is not None and needed not in ROLE_CAPABILITIES.get(role, frozenset())
    )


def api_routes():
    return [
        (name, params) for name, params, _ in walk(get_resolver().url_patterns) if name.startswith("api:")
    ]


def test_every_api_route_is_covered():
    unknown = sorted(
        {
            (name, p)
            for name, params in api_routes()
            for p in params
            if p not in FILLABLE and not name.startswith("api:token")  # tokens: tests/security
        }
    )
    assert not unknown, f"API routes with parameters this matrix cannot fill: {unknown}"


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_no_api_leaks(role, world):
    client = APIClient()
    if role != "anonymous":
        client.force_authenticate(world["users"][role])
    leaks, checked = [], 0
    for name, params in api_routes():
        if name in ("api:schema", "api:docs") or name.startswith("api:token"):
            continue  # not site-owned: the schema is public, tokens are their owner's (tests/security)
        for site, expect_hidden in (("own", False), ("other", True)):
            if expect_hidden and not params:
                continue  # a list has no other site's object; its content is checked with the own pass
            for url in urls_for(name, params, world[site]):
                checked += 1
                methods = ["get"] + (["post", "patch", "delete"] if expect_hidden else [])
                for method in methods:
                    response = (
                        getattr(client, method)(url, {}, format="json")
                        if method != "get"
                        else client.get(url)
                    )
                    body = response.content.decode(errors="replace")
                    allowed = (401, 403) if role == "anonymous" else (404, 405)
                    if method != "get" and (role in WRITE_NOWHERE or writes_nowhere(role, name)):
                        allowed = (403, 404, 405)  # refused before any lookup: says nothing about the record
                    if expect_hidden and response.status_code not in allowed:
                        leaks.append(
                            f"{method.upper()} {url}: another site's record answered {response.status_code}"
                        )
                    if OTHER in body:
                        leaks.append(f"{method.upper()} {url}: shows another site's record")
                    if SECRET in body and role not in SEES_IDENTIFIERS:
                        leaks.append(f"{method.upper()} {url}: shows an identifier to {role}")
    assert checked > 50, "the matrix must actually reach the API's records"
    assert not leaks, f"{len(leaks)} leak(s) for {role}:\n" + "\n".join(leaks[:40])
