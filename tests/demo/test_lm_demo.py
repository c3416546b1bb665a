"""The LM demo: the 41 published patients as registry records, and their endpoints rebuilt.

Months are 30.4375 days (registry.timeline); dates are whole days, so a rebuilt figure lies within
0.016 months of the table and rounds back to it exactly at one decimal.
"""

import csv
from collections import Counter
from decimal import Decimal

import pytest

from analytics.datasets import build_dataset
from demo.lm import CSV_PATH, injection_days, parse_agents, parse_mutations
from registry.choices import DoseTiming, DriverMutation, IntrathecalDrug, Specimen
from registry.models import IntrathecalDose, MutationFinding, Patient

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
