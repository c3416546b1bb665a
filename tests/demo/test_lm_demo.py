"""The LM demo: the 41 published patients as registry records, and their endpoints rebuilt.

Months are 30.4375 days (registry.timeline); dates are whole days, so a rebuilt figure lies within
0.016 months of the table and rounds back to it exactly at one decimal.
"""

import csv
from collections import Counter
from decimal import Decimal

import pytest

from accounts.services import system_user
from analytics.datasets import build_dataset
from demo.lm import CSV_PATH, injection_days, parse_agents, parse_mutations
from registry.choices import (
    CtcaeTerm,
    DoseTiming,
    DriverMutation,
    IntrathecalDrug,
    LpRoute,
    NsclcHistology,
    Specimen,
)
from registry.models import (
    AdverseEvent,
    IntrathecalDose,
    LmDiagnosis,
    LumbarPuncture,
    MutationFinding,
    Patient,
    SystemicTherapy,
)
from registry.services import record_save

pytestmark = pytest.mark.django_db


def published():
    with CSV_PATH.open(encoding="utf-8") as handle:
        return {f"LM{int(row['patient']):03d}": row for row in csv.DictReader(handle)}


def months(text):
    return float(text.rstrip("+")), 0 if text.endswith("+") else 1


def test_fixture_is_the_shared_table(shared_dir):
    assert CSV_PATH.read_bytes() == (shared_dir / "data" / "lm_nsclc_41.csv").read_bytes()


def test_ipfs_and_os_rebuilt_from_records_give_back_the_table(lm_demo):
    dataset = build_dataset("lm").set_index("study_code")
    table = published()
    assert len(dataset) == len(table) == 41
    for code, row in table.items():
        for endpoint in ("ipfs", "os"):
            value, event = months(row[endpoint])
            rebuilt = dataset.loc[code, f"{endpoint}_months"]
            assert round(rebuilt, 1) == value, (code, endpoint, rebuilt)
            assert abs(rebuilt - value) < 0.0165
            assert dataset.loc[code, f"{endpoint}_event"] == event, (code, endpoint)


def test_regimen_mutations_and_response_follow_the_table(lm_demo):
    dataset = build_dataset("lm").set_index("study_code")
    for code, row in published().items():
        regimen = row["systemic_during_ic"]
        expected_drug = "pemetrexed" if "IP" in regimen.split(" + ") else "methotrexate"
        assert dataset.loc[code, "it_drug"] == expected_drug
        assert dataset.loc[code, "bevacizumab"] == int("BEV" in regimen)
        response = {"Response": "response", "Stable": "stable", "PD": "progression"}[row["response"]]
        assert dataset.loc[code, "clinical_response"] == response
    assert Counter(dataset["it_drug"]) == {"pemetrexed": 34, "methotrexate": 7}
    assert dataset["bevacizumab"].sum() == 26


def test_mutations_are_recorded_per_specimen(lm_demo):
    patient = Patient.objects.get(study__code="lm", study_code="LM018")
    found = set(
        MutationFinding.objects.filter(diagnosis__patient=patient).values_list("specimen", "mutation")
    )
    assert found == {
        (Specimen.TISSUE, DriverMutation.EGFR_19DEL),
        (Specimen.CSF, DriverMutation.EGFR_19DEL),
        (Specimen.CSF, DriverMutation.MET_AMPLIFICATION),
    }


def test_doses_follow_the_protocol(lm_demo):
    for patient in Patient.objects.filter(study__code="lm"):
        main = IntrathecalDose.objects.filter(lumbar_puncture__patient=patient, timing=DoseTiming.WITH)
        doses = [d.dose_mg for d in main.order_by("lumbar_puncture__performed_at")]
        assert doses, patient
        drug = main.first().drug
        if drug == IntrathecalDrug.METHOTREXATE:
            assert set(doses) == {Decimal("12")}
            continue
        assert doses[0] == 10 and max(doses) <= 50
        for previous, current in zip(doses, doses[1:], strict=False):
            assert current - previous in (5, 0, -5), (patient, doses)
        dex = IntrathecalDose.objects.filter(
            lumbar_puncture__patient=patient, drug=IntrathecalDrug.DEXAMETHASONE
        )
        assert dex.count() == 2 * len(doses)
        assert set(dex.values_list("dose_mg", flat=True)) == {Decimal("2.5")}


def test_schedule_days():
    assert injection_days(60) == [0, 3, 7, 10, 14, 17, 21, 24, 28, 35, 42, 49]
    assert injection_days(120)[-2:] == [77, 105]


def test_table_text_is_parsed_faithfully():
    assert parse_mutations("EGFR 19Del/T790M") == (DriverMutation.EGFR_19DEL, DriverMutation.EGFR_T790M)
    agents = parse_agents("Osimertinib(160 mg/day) + IP + BEV")
    assert [(a.agent, a.dose_description) for a in agents] == [
        ("osimertinib", "160 mg/day"),
        ("bevacizumab", ""),
    ]
    assert [a.agent for a in parse_agents("PC Sintilimab")] == ["pemetrexed + carboplatin (PC)", "sintilimab"]
    with pytest.raises(ValueError, match="unknown agent"):
        parse_agents("Unobtainium")


def test_prior_therapy_classes_follow_the_table(lm_demo):
    dataset = build_dataset("lm").set_index("study_code")
    # LM002: "Surgery, Icotinib, Almonertinib"; LM011: "PC + Pembrolizumab"; LM037: "No"
    prior = [c for c in dataset.columns if c.startswith("prior_")]
    assert {c for c in prior if dataset.loc["LM002", c]} == {"prior_egfr_tki_1", "prior_egfr_tki_3"}
    assert {c for c in prior if dataset.loc["LM011", c]} == {"prior_chemotherapy", "prior_immunotherapy"}
    assert not any(dataset.loc["LM037", c] for c in prior)


# --- what the paper publishes per group (Table 1, Treatment, Table 5) ---------------------------------


def test_sex_and_age_groups_per_drug_are_the_papers(lm_demo):
    """Table 1: male IP 14 / IM 3; aged ≥ 60 IP 11 / IM 3. Results: median age 56, range 37–73."""
    dataset = build_dataset("lm")
    by_drug = dataset.groupby("it_drug")
    assert by_drug["sex_male"].sum().to_dict() == {"pemetrexed": 14, "methotrexate": 3}
    assert (dataset["age"] >= 60).groupby(dataset["it_drug"]).sum().to_dict() == {
        "pemetrexed": 11,
        "methotrexate": 3,
    }
    assert (dataset["age"].median(), dataset["age"].min(), dataset["age"].max()) == (56, 37, 73)


def test_injections_per_patient_and_per_drug_are_the_papers(lm_demo):
    """325 injections; IP 287 (median 8), IM 38 (median 5); per patient median 7, range 2–22."""
    dataset = build_dataset("lm")
    counts = dataset["it_dose_count"]
    assert (counts.sum(), counts.median(), counts.min(), counts.max()) == (325, 7, 2, 22)
    by_drug = counts.groupby(dataset["it_drug"])
    assert by_drug.sum().to_dict() == {"pemetrexed": 287, "methotrexate": 38}
    assert by_drug.median().to_dict() == {"pemetrexed": 8, "methotrexate": 5}
    assert (dataset["planned_injections"] == dataset["given_injections"]).all(), "no planned injection missed"


def test_ommaya_histology_mri_and_cytology_are_the_papers(lm_demo):
    """Ommaya in 3 patients; adenocarcinoma in all; MRI negative in 9 IP patients; CSF cytology never
    examined in one IM patient (Table 1's p = 0.376 is the Yates χ² of that)."""
    ommaya = LumbarPuncture.objects.filter(patient__study__code="lm", route=LpRoute.OMMAYA)
    assert ommaya.values("patient").distinct().count() == 3
    assert set(LmDiagnosis.objects.values_list("histology", flat=True)) == {NsclcHistology.ADENOCARCINOMA}
    dataset = build_dataset("lm")
    assert (dataset["mri_positive"] == 0).groupby(dataset["it_drug"]).sum().to_dict() == {
        "pemetrexed": 9,
        "methotrexate": 0,
    }
    unknown = dataset[dataset["csf_cytology_positive"].isna()]
    assert unknown["it_drug"].tolist() == ["methotrexate"]
    assert (dataset["csf_cytology_positive"] == 1).sum() == 40
    assert dataset["ecog"].isna().all() and dataset["brain_metastases"].isna().all()


def test_adverse_events_are_the_papers(lm_demo):
    """15 leukopenia, 9 thrombocytopenia (6 patients both, 3 of them at once), 11 patients grade ≥ 3
    (7 leukopenia, 4 thrombocytopenia), raised ALT in 1; nothing else."""
    events = AdverseEvent.objects.filter(patient__study__code="lm")
    assert Counter(events.values_list("ctcae_term", flat=True)) == {
        CtcaeTerm.WBC_DECREASED: 15,
        CtcaeTerm.PLATELET_DECREASED: 9,
        CtcaeTerm.ALT_INCREASED: 1,
    }
    severe = events.filter(grade__gte=3)
    assert severe.values("patient").distinct().count() == 11
    assert Counter(severe.values_list("ctcae_term", flat=True)) == {
        CtcaeTerm.WBC_DECREASED: 7,
        CtcaeTerm.PLATELET_DECREASED: 4,
    }
    blood = events.exclude(ctcae_term=CtcaeTerm.ALT_INCREASED)
    assert blood.values("patient").distinct().count() == 18
    onsets = Counter(blood.values_list("patient_id", "onset_date"))
    assert sum(1 for n in onsets.values() if n == 2) == 3
    for event in events:
        assert event.suggested_grade == event.grade, event  # each grade follows from its lab value


def test_grade_3_myelosuppression_steps_the_next_pemetrexed_dose_back(lm_demo):
    severe = AdverseEvent.objects.filter(
        patient__study__code="lm", grade__gte=3, lumbar_puncture__isnull=False
    )
    stepped = 0
    for event in severe:
        doses = list(
            IntrathecalDose.objects.filter(
                lumbar_puncture__patient=event.patient,
                drug=IntrathecalDrug.PEMETREXED,
                timing=DoseTiming.WITH,
            )
            .order_by("lumbar_puncture__performed_at")
            .values_list("lumbar_puncture__performed_at", "dose_mg")
        )
        before = [mg for when, mg in doses if when <= event.lumbar_puncture.performed_at]
        after = [mg for when, mg in doses if when.date() > event.onset_date]
        if before and after:
            assert after[0] < before[-1] or before[-1] == 10, (event.patient, before[-1], after[0])
            stepped += 1
    assert stepped, "some pemetrexed patient had a further injection after grade 3 myelosuppression"


def test_typed_agent_names_outside_table_3s_vocabulary_never_reach_the_dataset(lm_demo):
    therapy = SystemicTherapy.objects.get(patient__study_code="LM002", agent="icotinib")
    therapy.agent = "Dr Example's trial drug"
    record_save(therapy, actor=system_user(), reason="test: a typed agent name")
    row = build_dataset("lm").set_index("study_code").loc["LM002"]
    assert row["systemic_before_ic"] == "Surgery, EGFR-TKI, 1st generation, Almonertinib"
    assert "Example" not in " ".join(str(value) for value in row.to_numpy())
