"""Each fact declared once: every audited model appears in a patient's history and in the audit CSV.

The audit views once listed models by hand and missed every protocols model (a course, a planned
injection, a safety override, a dose's product). They now read the models' own declarations
(registry.catalogue); this test writes one record of every patient-owned audited model and finds
each write in both places. A new model without a builder here fails the test, on purpose.
"""

from __future__ import annotations

import datetime as dt

import pytest

from accounts.models import Site
from audit.export import audit_rows
from audit.timeline import patient_timeline
from protocols.models import DoseFormulation, Formulation, PlannedInjection, SafetyOverride
from protocols.seed import seed_protocol
from protocols.services import course_start
from registry.catalogue import patient_record_models
from registry.checks import check_case_record_declarations
from registry.choices import DiseaseArea, IntrathecalDrug
from registry.models import CsfResult, PathogenTest, Study
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient_with_everything():
    """One LM patient with a record of every kind (NPSLE and ICANS records too: the models allow it)."""
    study = f.StudyFactory(code="audit-all", disease_area=DiseaseArea.LM)
    patient = f.PatientFactory(
        study=study, site=study.sites.first(), index_admission_date=dt.date(2021, 2, 1)
    )
    f.PatientIdentifierFactory(patient=patient)
    npsle = f.NpsleDiagnosisFactory(patient=patient)
    f.NpsleManifestationFactory(diagnosis=npsle)
    f.SledaiFactory(patient=patient)
    f.MutationFindingFactory(diagnosis=f.LmDiagnosisFactory(patient=patient))
    f.CarTInfusionFactory(patient=patient)
    f.IcansAssessmentFactory(patient=patient)
    f.CrsAssessmentFactory(patient=patient)
    lumbar_puncture = f.LumbarPunctureFactory(patient=patient)
    f.PathogenTestFactory(csf_result=f.CsfResultFactory(lumbar_puncture=lumbar_puncture))
    dose = f.IntrathecalDoseFactory(lumbar_puncture=lumbar_puncture, drug=IntrathecalDrug.METHOTREXATE)
    f.SystemicTherapyFactory(patient=patient)
    f.AdverseEventFactory(patient=patient)
    f.DischargeOutcomeFactory(patient=patient)
    f.ResponseAssessmentFactory(patient=patient)
    f.FollowUpEventFactory(patient=patient)
    actor = f.UserFactory()
    course_start(
        patient=patient,
        protocol=seed_protocol("lm-pemetrexed"),
        start_date=dt.date(2021, 2, 2),
        actor=actor,
        reason="Test course",
    )
    SafetyOverride.objects.create(
        lumbar_puncture=lumbar_puncture,
        check_code="protocol_cap",
        finding="above cap",
        reason="test",
        overridden_by=actor,
    )
    DoseFormulation.objects.create(dose=dose, formulation=Formulation.objects.filter(drug=dose.drug).first())
    assert PlannedInjection.objects.filter(course__patient=patient).exists()
    assert CsfResult.objects.exists() and PathogenTest.objects.exists()
    return patient


def test_every_audited_model_shows_in_the_timeline_and_the_audit_export(patient_with_everything):
    patient = patient_with_everything
    expected = {model._meta.model_name for model in patient_record_models(include_identifiers=True)}
    assert {"course", "plannedinjection", "safetyoverride", "doseformulation", "pathogentest"} <= expected

    in_timeline = {c.model for c in patient_timeline(patient.pk, include_identifiers=True)}
    assert in_timeline == expected

    rows = list(audit_rows(Study.objects.get(pk=patient.study_id), include_identifiers=True))
    assert {row["model"] for row in rows} == expected
    assert {row["patient"] for row in rows if row["model"] != "study"} == {patient.study_code}
    # Each row names the section its model declares.
    sections = {row["model"]: row["section"] for row in rows}
    assert sections["course"] == sections["doseformulation"] == "procedures"


def test_without_identifiers_the_identifier_records_stay_out(patient_with_everything):
    patient = patient_with_everything
    assert "patientidentifier" not in {
        c.model for c in patient_timeline(patient.pk, include_identifiers=False)
    }
    rows = audit_rows(Study.objects.get(pk=patient.study_id), include_identifiers=False)
    assert "patientidentifier" not in {row["model"] for row in rows}


@pytest.mark.parametrize(
    ("model", "attribute", "value", "error"),
    [
        (CsfResult, "review_section", None, "registry.E004"),
        (PlannedInjection, "patient_lookup", None, "registry.E002"),
        (PathogenTest, "patient_lookup", "csf_result__patient", "registry.E003"),
        (PathogenTest, "patient_lookup", "csf_result__lumbar_puncture", "registry.E003"),
        (Site, "history", None, "registry.E001"),
    ],
)
def test_the_system_check_refuses_a_model_that_forgets_a_declaration(
    monkeypatch, model, attribute, value, error
):
    assert check_case_record_declarations() == []
    monkeypatch.setattr(model, attribute, value)
    found = check_case_record_declarations()
    assert [e.id for e in found] == [error], found
    assert found[0].obj is model
