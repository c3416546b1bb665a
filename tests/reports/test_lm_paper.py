"""The LM report gives back the LM paper's numbers from its own 41 patients, computed the paper's way.

The demo holds the paper's Table 3 as case records; the report runs on them with its default options
(SPSS's median interval, Breslow ties, months to one decimal, the paper's gene-mutation grouping and
multivariable procedure). Every expected value below is copied from the paper
(../shared/papers/lm_nsclc_intrathecal_41.txt), not from the code; where the paper disagrees with its
own Table 3 the test says so and asserts the note the report prints.
"""

from __future__ import annotations

import csv

import pytest

from analytics.reports.runner import report_run
from demo.lm import CSV_PATH, MRI, NEURO, RESPONSE, parse_agents, parse_mutations
from registry.choices import ClinicalResponse, MriChange, NeurologicalChange
from registry.models import Study
from tests.analytics.reference import load_lm_nsclc
from tests.reports.conftest import section, table

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def run_lm(demo, django_db_blocker):
    """The LM report's numbers for some options (each computed once for the module)."""
    computed: dict[tuple, dict] = {}

    def run(**options: str) -> dict:
        key = tuple(sorted(options.items()))
        if key not in computed:
            with django_db_blocker.unblock():
                study = Study.objects.get(code="lm")
                computed[key] = report_run(study=study, filters={}, options=options)[0].numbers
        return computed[key]

    return run


@pytest.fixture(scope="module")
def numbers(run_lm) -> dict:
    return run_lm()


def row(numbers: dict, table_key: str, **match) -> dict:
    """The one row of a table whose columns have the given values."""
    rows = table(numbers, table_key)["rows"]
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (table_key, match, len(found))
    return found[0]


def rounded(value: float, digits: int) -> float:
    return round(value + 0.0, digits)


def notes(numbers: dict, key: str) -> str:
    return " ".join(table(numbers, key)["notes"])


def test_every_section_computes_and_the_options_are_the_papers(numbers):
    assert [s["key"] for s in numbers["sections"] if s["status"] != "ok"] == []
    assert numbers["report"]["options"] == {
        "ties": "breslow",
        "median_ci": "spss",
        "times": "table",
        "mutation_grouping": "as_treated",
        "cox_selection": "p05",
    }


# --- Fig. 1 and the Treatment and Outcomes paragraphs ----------------------------------------------


def test_consort_flow_counts_are_the_papers(numbers):
    """41 patients (IP 34, IM 7), all analysed; 27 died; 11 had not reached iPFS."""
    treated = row(numbers, "consort.flow", label="Treated with intrathecal chemotherapy")
    assert (treated["count_pemetrexed"], treated["count_methotrexate"], treated["count_all"]) == (34, 7, 41)
    assert row(numbers, "consort.flow", label="Two or more intrathecal injections")["count_all"] == 41
    assert row(numbers, "consort.flow", label="\u2003Died")["count_all"] == 27
    assert (
        row(numbers, "consort.flow", label="\u2003Free of LM progression at the last follow-up")["count_all"]
        == 11
    )


def test_injections_ommaya_and_doses_are_the_papers(numbers):
    """325 injections, median 7 (range 2–22); IM 38 (median 5), IP 287 (median 8); Ommaya in 3;
    highest doses methotrexate 12 mg and pemetrexed 50 mg."""
    total = row(numbers, "consort.treatment", label="Intrathecal injections")
    assert (total["value_all"], total["value_methotrexate"], total["value_pemetrexed"]) == (325, 38, 287)
    per_patient = row(numbers, "consort.treatment", label="Injections per patient, median (range)")
    assert (per_patient["value_all"], per_patient["min_all"], per_patient["max_all"]) == (7, 2, 22)
    assert (per_patient["value_methotrexate"], per_patient["value_pemetrexed"]) == (5, 8)
    assert per_patient["summary_all"] == "7 (2–22)"
    assert (
        row(numbers, "consort.treatment", label="Patients treated through an Ommaya reservoir")["value_all"]
        == 3
    )
    dose = row(numbers, "consort.treatment", label="Highest single dose")
    assert (dose["value_methotrexate"], dose["value_pemetrexed"]) == (12, 50)


def test_median_follow_up_is_the_reverse_kaplan_meier_and_the_papers_7_5_is_noted(numbers, run_lm):
    follow_up = row(numbers, "consort.follow_up", label="Median follow-up (reverse Kaplan–Meier)")
    assert rounded(follow_up["median"], 1) == 14.7  # R: survfit(Surv(os, 1 - event) ~ 1): 14.7 (11.9–NA)
    r_way = row(
        run_lm(median_ci="survfit"), "consort.follow_up", label="Median follow-up (reverse Kaplan–Meier)"
    )
    assert (rounded(r_way["median"], 1), rounded(r_way["median_lower"], 1)) == (14.7, 11.9)
    assert r_way["median_upper"] is None
    assert "7.5 months" in notes(numbers, "consort.follow_up")


# --- Table 1 -------------------------------------------------------------------------------------------


def counts(numbers: dict, variable: str, level: str) -> tuple:
    found = row(numbers, "baseline.table_one", variable=variable, level=level)
    return (
        found["count_pemetrexed"],
        found["count_methotrexate"],
        found["count_all"],
        rounded(found["percent_all"], 1),
    )


def p_of(numbers: dict, variable: str) -> float:
    return rounded(row(numbers, "baseline.table_one", variable=variable, level=None)["p"], 3)


def test_table_one_counts_are_the_papers(numbers):
    assert counts(numbers, "age_under_60", "1") == (23, 4, 27, 65.9)
    assert counts(numbers, "age_under_60", "0") == (11, 3, 14, 34.1)
    assert counts(numbers, "sex_male", "1") == (14, 3, 17, 41.5)
    assert counts(numbers, "sex_male", "0") == (20, 4, 24, 58.5)
    assert counts(numbers, "csf_cytology_positive", "negative") == (0, 0, 0, 0.0)
    assert counts(numbers, "csf_cytology_positive", "positive")[2:] == (40, 97.6)
    assert counts(numbers, "csf_cytology_positive", "unknown") == (0, 1, 1, 2.4)
    assert counts(numbers, "mri_positive", "0") == (9, 0, 9, 22.0)
    assert counts(numbers, "mri_positive", "1") == (25, 7, 32, 78.0)
    assert counts(numbers, "prior_egfr_tki_1_2", "1") == (22, 2, 24, 58.5)
    assert counts(numbers, "prior_egfr_tki_3", "1") == (18, 3, 21, 51.2)
    assert counts(numbers, "prior_chemotherapy", "1")[2:] == (
        11,
        26.8,
    )  # the paper splits it 6 / 5, Table 3 7 / 4
    assert counts(numbers, "prior_bevacizumab", "1") == (6, 3, 9, 22.0)
    assert counts(numbers, "prior_bevacizumab", "0") == (28, 4, 32, 78.0)
    assert counts(numbers, "egfr", "1") == (27, 4, 31, 75.6)
    assert counts(numbers, "met_amplification", "1") == (1, 0, 1, 2.4)
    assert counts(numbers, "driver_mutation", "0") == (7, 3, 10, 24.4)
    assert counts(numbers, "histology", "adenocarcinoma") == (34, 7, 41, 100.0)
    age = row(numbers, "baseline.table_one", variable="age", level=None)
    assert (age["value_all"], age["min_all"], age["max_all"]) == (56, 37, 73)


def test_table_one_p_values_are_those_spss_printed(numbers):
    """Age 0.923 and MRI 0.299 are the continuity-corrected χ², sex 1.000; CSF 0.376 is the Yates χ² of
    6 IM positive + 1 unknown; the paper's bevacizumab 0.958 and gene mutation 0.334 belong to the rows
    of bevacizumab during IC and of the grouping by targeted therapy received."""
    assert p_of(numbers, "age_under_60") == 0.923
    assert p_of(numbers, "sex_male") == 1.000
    assert p_of(numbers, "csf_cytology_positive") == 0.376
    assert p_of(numbers, "mri_positive") == 0.299
    assert p_of(numbers, "bevacizumab") == 0.958
    assert p_of(numbers, "mutation_as_treated") == 0.334
    heading = row(numbers, "baseline.table_one", variable="age_under_60", level=None)
    assert heading["test"] == "Yates χ²"
    text = notes(numbers, "baseline.table_one")
    assert "0.958" in text and "0.334" in text and "0.372" in text and "0.376" in text


def test_ecog_and_brain_metastases_are_shown_as_not_recorded(numbers):
    for variable in ("ecog_ge2", "brain_metastases"):
        heading = row(numbers, "baseline.table_one", variable=variable, level=None)
        assert heading["p"] is None
        assert counts(numbers, variable, "not recorded") == (34, 7, 41, 100.0)
    text = notes(numbers, "baseline.table_one")
    assert "ECOG PS: not recorded for any patient" in text
    assert "Brain metastasis: not recorded for any patient" in text


# --- Table 3 -------------------------------------------------------------------------------------------


def agents(text: str) -> list[set]:
    """A treatment cell as lines of agents: the order inside a combination is not recorded."""
    if text == "No":
        return []
    return [{(a.agent, a.dose_description) for a in parse_agents(line)} for line in text.split(", ")]


def test_table_3_is_the_published_table_row_by_row(numbers):
    """Two tables of the same rows (Table 3 is too wide for a page): mutations and treatment, then
    response and survival."""
    treatment, outcome = (
        table(numbers, "patients.treatment")["rows"],
        table(numbers, "patients.outcome")["rows"],
    )
    assert [r["study_code"] for r in treatment] == [r["study_code"] for r in outcome]
    shown = {first["study_code"]: first | second for first, second in zip(treatment, outcome, strict=True)}
    with CSV_PATH.open(encoding="utf-8") as handle:
        published = list(csv.DictReader(handle))
    assert len(shown) == len(published) == 41
    for paper in published:
        report = shown[f"LM{int(paper['patient']):03d}"]
        assert report["tissue_mutations"] == paper["gene_mutation"]
        assert parse_mutations(report["csf_mutations"]) == parse_mutations(paper["csf_gene_mutation"])
        assert agents(report["systemic_before_ic"]) == agents(paper["prior_systemic"]), paper["patient"]
        assert agents(report["systemic_during_ic"]) == agents(paper["systemic_during_ic"]), paper["patient"]
        it_code = "IP" if "IP" in paper["systemic_during_ic"].split(" + ") else "IM"
        assert it_code in report["systemic_during_ic"].split(" + ")
        assert report["neurological"] == NeurologicalChange(NEURO[paper["neuro_assessment"]]).label
        assert report["mri"] == MriChange(MRI[paper["mri"]]).label
        assert report["response"] == ClinicalResponse(RESPONSE[paper["response"]]).label
        assert (report["ipfs"], report["os"]) == (paper["ipfs"], paper["os"])


# --- Fig. 2: Kaplan–Meier medians ----------------------------------------------------------------------


def median(numbers: dict, key: str, endpoint: str, group: str) -> tuple:
    found = row(numbers, key, endpoint=endpoint, group=group)
    return tuple(rounded(found[name], 1) for name in ("median", "median_lower", "median_upper"))


def test_medians_with_spss_intervals_are_the_papers(numbers):
    assert median(numbers, "survival.medians", "OS", "all") == (10.1, 6.8, 13.4)
    assert median(numbers, "survival_by_drug.medians", "OS", "it_drug=methotrexate") == (10.1, 2.9, 17.3)
    assert median(numbers, "survival_by_drug.medians", "OS", "it_drug=pemetrexed") == (9.6, 6.1, 13.1)
    assert median(numbers, "survival_by_drug.medians", "iPFS", "it_drug=methotrexate") == (7.3, 6.0, 8.6)
    assert median(numbers, "survival_by_drug.medians", "iPFS", "it_drug=pemetrexed")[0] == 8.0
    assert median(numbers, "survival_by_mutation.medians", "iPFS", "mutation_as_treated=0") == (6.8, 5.1, 8.5)
    assert median(numbers, "survival_by_mutation.medians", "OS", "mutation_as_treated=0") == (10.7, 4.5, 16.9)
    assert median(numbers, "survival_by_mutation.medians", "OS", "mutation_as_treated=1") == (9.6, 5.5, 13.7)
    assert "SPSS" in notes(numbers, "survival.medians")


def test_the_papers_overall_ipfs_of_8_months_is_noted_as_disagreeing_with_its_table(numbers):
    assert median(numbers, "survival.medians", "iPFS", "all")[0] == 7.3
    text = notes(numbers, "survival.medians")
    assert "8 months (95% CI 6.4–9.7)" in text and "7.3" in text


def test_r_log_intervals_on_request_are_rs(run_lm, shared_dir):
    """With median_ci=survfit the medians and limits are R's (lm_nsclc_41.r.json)."""
    numbers = run_lm(median_ci="survfit")
    expected = load_lm_nsclc(shared_dir).r
    for key, endpoint, section_key in (
        ("km_os", "OS", "survival"),
        ("km_ipfs", "iPFS", "survival"),
        ("km_os_by_drug", "OS", "survival_by_drug"),
        ("km_ipfs_by_drug", "iPFS", "survival_by_drug"),
        ("km_os_by_bev", "OS", "survival_by_bevacizumab"),
    ):
        for reference in expected[key]:
            found = row(numbers, f"{section_key}.medians", endpoint=endpoint, group=reference["stratum"])
            assert (found["n"], found["events"]) == (reference["n"], reference["events"])
            for name, r_name in (("median", "median"), ("median_lower", "lower"), ("median_upper", "upper")):
                if reference[r_name] is None:
                    assert found[name] is None
                else:
                    assert found[name] == pytest.approx(reference[r_name], abs=1e-9)
    assert "R's survfit" in notes(numbers, "survival.medians")


def test_exact_times_are_an_option_and_move_the_overall_os_interval(run_lm):
    """Whole days / 30.4375 instead of Table 3's months: the median stays 10.1, the lower limit is 6.7."""
    numbers = run_lm(times="exact")
    found = row(numbers, "survival.medians", endpoint="OS", group="all")
    assert found["median"] == pytest.approx(307 / 30.4375)
    assert rounded(found["median_lower"], 1) == 6.7


# --- gene-mutation groupings -----------------------------------------------------------------------


def test_both_gene_mutation_groupings_are_shown_and_the_one_used_is_named(numbers, run_lm):
    medians = table(numbers, "survival_by_mutation.medians")
    by_group = {(r["group"], r["endpoint"]): r["n"] for r in medians["rows"]}
    assert by_group[("mutation_as_treated=0", "OS")] == 9 and by_group[("mutation_as_treated=1", "OS")] == 32
    assert by_group[("driver_mutation=0", "OS")] == 10 and by_group[("driver_mutation=1", "OS")] == 31
    assert "uses the grouping by targeted therapy received" in notes(numbers, "survival_by_mutation.medians")
    tissue = run_lm(mutation_grouping="tissue")
    assert "uses the grouping by tissue genotype" in notes(tissue, "survival_by_mutation.medians")
    used = {r["term"]: r for r in table(tissue, "cox_os.univariable")["rows"]}
    default = {r["term"]: r for r in table(numbers, "cox_os.univariable")["rows"]}
    assert rounded(used["mutation_as_treated"]["hr"], 3) == 1.100  # the paper's grouping stays beside it
    assert used["gene_mutation"]["hr"] == default["driver_mutation"]["hr"]
    assert default["gene_mutation"]["hr"] == used["mutation_as_treated"]["hr"]


# --- clinical response -----------------------------------------------------------------------------


def test_clinical_response_is_the_papers(numbers):
    """Neurological symptoms improved in 28 (68.3%), stable in 9 (22%), worse in 4 (9.7% in the paper:
    4 of 41 is 9.76%)."""
    headline = table(numbers, "response.rates")["rows"][0]
    assert (headline["count"], headline["n"], rounded(headline["percent"], 1)) == (28, 41, 68.3)
    neurological = {
        r["label"]: (r["count_all"], rounded(r["percent_all"], 1))
        for r in table(numbers, "response.neurological")["rows"]
    }
    assert neurological == {"Improved": (28, 68.3), "Stable": (9, 22.0), "Worse": (4, 9.8)}
    mri = {r["level"]: r["count_all"] for r in table(numbers, "response.mri")["rows"]}
    assert mri == {"improved": 13, "stable": 24, "not_reviewed": 4}  # Table 3's MRI column
    overall = {r["level"]: r["count_all"] for r in table(numbers, "response.overall")["rows"]}
    assert overall == {"response": 13, "stable": 24, "progression": 4}


# --- Table 4 -------------------------------------------------------------------------------------------


def test_table_4_has_the_papers_eight_factors_and_codings(numbers):
    rows = table(numbers, "cox_os.univariable")["rows"]
    assert [(r["label"], r["coding"]) for r in rows[:8]] == [
        ("Age", "≥ 60 (ref.) vs < 60 years"),
        ("Sex", "female (ref.) vs male"),
        ("ECOG PS", "< 2 (ref.) vs ≥ 2"),
        ("Brain metastasis", "no (ref.) vs yes"),
        ("Gene mutation", "no (ref.) vs yes"),
        ("Combined with bevacizumab", "no (ref.) vs yes"),
        ("CSF protein", "normal (ref.) vs increased"),
        ("Number of IC", "per injection"),
    ]
    by_label = {r["label"]: r for r in rows}
    mutation, bevacizumab = by_label["Gene mutation"], by_label["Combined with bevacizumab"]
    assert [rounded(mutation[k], 3) for k in ("hr", "lower", "upper", "p")] == [1.100, 0.437, 2.765, 0.840]
    assert [rounded(bevacizumab[k], 3) for k in ("hr", "lower", "upper", "p")] == [0.404, 0.186, 0.877, 0.022]
    for missing in ("ECOG PS", "Brain metastasis"):
        assert by_label[missing]["status"] == "not recorded" and by_label[missing]["hr"] is None


def test_the_multivariable_model_follows_the_papers_procedure_and_says_why_it_is_not_the_papers(numbers):
    model = table(numbers, "cox_os.multivariable")
    assert [r["term"] for r in model["rows"]] == ["bevacizumab"]  # ECOG PS cannot be tested
    text = " ".join(model["notes"])
    assert "univariable p < 0.05 (the paper's procedure)" in text
    assert "HR 0.240 (0.097–0.595), p = 0.002" in text and "HR 2.560 (1.010–6.484), p = 0.048" in text
    assert "ECOG PS is not recorded here" in text and "cannot be the paper's" in text


def test_the_multivariable_selection_is_an_option(run_lm):
    every = table(run_lm(cox_selection="all"), "cox_os.multivariable")
    assert [r["term"] for r in every["rows"]] == [
        "age_under_60",
        "sex_male",
        "gene_mutation",
        "bevacizumab",
        "inc_protein",
        "it_dose_count",
    ]
    assert "all eight factors that are recorded" in " ".join(every["notes"])


# --- Table 5 -------------------------------------------------------------------------------------------


def grades(numbers: dict, key: str, regimen: str) -> list[int]:
    found = row(numbers, "safety.by_regimen", key=key, regimen=regimen)
    return [found[f"g{grade}"] for grade in (1, 2, 3, 4)]


def test_table_5_adverse_events_by_regimen_and_grade_are_the_papers(numbers):
    assert grades(numbers, "haematologic", "chemotherapy") == [4, 3, 3, 3]
    assert grades(numbers, "leukopenia", "chemotherapy") == [3, 2, 3, 1]
    assert grades(numbers, "thrombocytopenia", "chemotherapy") == [1, 1, 0, 2]
    assert grades(numbers, "eha", "chemotherapy") == [1, 0, 0, 0]
    assert grades(numbers, "haematologic", "targeted") == [3, 3, 3, 2]
    assert grades(numbers, "leukopenia", "targeted") == [1, 2, 2, 1]
    assert grades(numbers, "thrombocytopenia", "targeted") == [2, 1, 1, 1]
    assert grades(numbers, "eha", "targeted") == [0, 0, 0, 0]
    for regimen in ("chemotherapy", "targeted"):
        assert grades(numbers, "meningitis", regimen) == [0, 0, 0, 0]
        assert grades(numbers, "leukoencephalopathy", regimen) == [0, 0, 0, 0]


def test_myelosuppression_patients_are_the_papers(numbers):
    """18 with myelosuppression, 15 leukopenia, 9 thrombocytopenia (3 at once); 11 grade ≥ 3 (7
    leukopenia, 4 thrombocytopenia; 6 on chemotherapy, 5 on targeted therapy); liver enzymes in 1."""
    found = {r["key"]: r for r in table(numbers, "safety.myelosuppression")["rows"]}
    assert {key: found[key]["n_all"] for key in found} == {
        "any": 18,
        "leukopenia": 15,
        "thrombocytopenia": 9,
        "both": 6,
        "together": 3,
        "grade3": 11,
        "grade3_leukopenia": 7,
        "grade3_thrombocytopenia": 4,
        "liver": 1,
        "any_grade3": 11,
    }
    assert (found["grade3"]["n_chemotherapy"], found["grade3"]["n_targeted"]) == (6, 5)


def test_sections_name_the_paper_tables_they_reproduce(numbers):
    titles = {s["key"]: s["title"] for s in numbers["sections"]}
    for key, reference in (
        ("consort", "Fig. 1"),
        ("baseline", "Table 1"),
        ("patients", "Table 3"),
        ("survival", "Fig. 2A, B"),
        ("survival_by_mutation", "Fig. 2C, D"),
        ("survival_by_drug", "Fig. 2E, F"),
        ("cox_os", "Table 4"),
        ("safety", "Table 5"),
    ):
        assert reference in titles[key]
    assert section(numbers, "baseline")["analysed"] == 41
