"""Getting the LM report out: from the page, a PDF that opens, a workbook with a sheet per table,
self-contained HTML, JSON numbers and the dataset with its data dictionary (spreadsheet cells never
run as formulas); from ``manage.py cohort_report``, the same report as JSON (stable across runs),
XLSX or HTML, with filters and the Cox ties option."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import zipfile
from html.parser import HTMLParser

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from analytics.datasets import build_dataset
from analytics.exports import dataset_zip, report_xlsx
from analytics.models import ReportRun
from analytics.reports.definitions import default_definition
from analytics.reports.runner import report_run
from registry.formatting import spreadsheet_safe
from registry.models import Study
from tests import factories as f
from tests.reports.conftest import researcher, rows_by, table

pytestmark = pytest.mark.django_db

TITLE = "Leptomeningeal metastasis: intrathecal chemotherapy"


@pytest.fixture(scope="module")
def lm_researcher(demo, django_db_blocker):
    """A researcher at the Chest Cancer Centre, whose LM report is computed once for the module."""
    with django_db_blocker.unblock():
        user = researcher("lm-researcher", "chest")
        report_run(study=Study.objects.get(code="lm"), filters={}, options={}, viewer=user)
    return user


@pytest.fixture
def lm_client(client, lm_researcher):
    client.force_login(lm_researcher)
    return client


def download(client, name: str, query: dict | None = None):
    study = Study.objects.get(code="lm")
    response = client.get(reverse(f"reports:{name}", args=[default_definition(study).pk]), query or {})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="lm-')
    return response


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) is not installed")
def test_the_pdf_opens_with_the_title_and_the_published_hazard_ratio(lm_client, tmp_path):
    response = download(lm_client, "pdf")
    assert response["Content-Type"] == "application/pdf"
    pdf = tmp_path / "lm.pdf"
    pdf.write_bytes(response.content)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    text = " ".join(text.split())  # lines wrap where the page does
    assert TITLE in text
    assert "0.404" in text and "0.186–0.877" in text


def test_the_workbook_has_a_contents_sheet_and_one_sheet_per_table(lm_client, lm_researcher):
    response = download(lm_client, "xlsx")
    workbook = load_workbook(io.BytesIO(response.content))
    numbers = ReportRun.objects.get(study__code="lm", requested_by=lm_researcher).numbers
    tables = [table for section in numbers["sections"] for table in section["tables"]]
    assert workbook.sheetnames[0] == "Contents"
    assert len(workbook.sheetnames) == 1 + len(tables)
    contents = list(workbook["Contents"].iter_rows(min_row=6, values_only=True))
    assert [row[3] for row in contents] == [table["key"] for table in tables]
    cox_sheet = workbook[next(row[0] for row in contents if row[3] == "cox_os.univariable")]
    header = [cell.value for cell in cox_sheet[1]]
    bevacizumab = next(
        row for row in cox_sheet.iter_rows(min_row=2, values_only=True) if row[1] == "bevacizumab"
    )
    assert round(bevacizumab[header.index("HR")], 3) == 0.404


def test_the_html_report_is_self_contained(lm_client, lm_researcher):
    html = download(lm_client, "html").content.decode()
    assert TITLE in html and "<style>" in html

    class References(HTMLParser):
        found: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.found += [value for name, value in attrs if name in ("src", "href") and value]
            if tag in ("link", "script", "img", "iframe"):
                self.found.append(f"<{tag}>")

    parser = References()
    parser.feed(html)
    external = [ref for ref in parser.found if not ref.startswith("#")]
    assert not external, f"the export must not load anything: {external}"
    assert not re.search(r"url\((?!#)", html), "no CSS url() other than in-document references"
    numbers = ReportRun.objects.get(study__code="lm", requested_by=lm_researcher).numbers
    figures = sum(len(section["figures"]) for section in numbers["sections"])
    assert html.count("<svg") == figures


def test_json_numbers_are_sorted_versioned_and_free_of_timestamps(lm_client):
    text = download(lm_client, "json").content.decode()
    document = json.loads(text)
    assert document["schema_version"] == 1
    assert text == json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    run = document.pop("run")
    assert set(run) == {"computed_at", "duration_ms", "fingerprint"}
    assert "NaN" not in text
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", json.dumps(document)), "timestamps only under run"


def test_the_dataset_comes_with_its_data_dictionary(lm_client):
    response = download(lm_client, "dataset", {"apply": "1", "it_drug": ["methotrexate"]})
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == ["data_dictionary.csv", "dataset.csv"]
    dataset = pd.read_csv(archive.open("dataset.csv"))
    dictionary = pd.read_csv(archive.open("data_dictionary.csv"))
    assert len(dataset) == 7 and set(dataset["it_drug"]) == {"methotrexate"}
    assert list(dataset.columns) == dictionary["name"].tolist()


def test_spreadsheet_text_that_looks_like_a_formula_is_escaped():
    assert [spreadsheet_safe(v) for v in ("=1+1", "+cmd", "-2", "@SUM(A1)", "ok", -2, 1.5)] == [
        "'=1+1",
        "'+cmd",
        "'-2",
        "'@SUM(A1)",
        "ok",
        -2,
        1.5,
    ]
    frame = pd.DataFrame({"study_code": ['=HYPERLINK("http://x")', "P2"], "age": [-1.5, 40.0]})
    archive = zipfile.ZipFile(io.BytesIO(dataset_zip(frame, [])))
    lines = archive.read("dataset.csv").decode().splitlines()
    assert lines[1].startswith("\"'=HYPERLINK") and lines[1].endswith(",-1.5")

    run = ReportRun(
        numbers={
            "report": {"title": "=cmd|' /C calc'!A0"},
            "sections": [
                {
                    "title": "S",
                    "tables": [
                        {
                            "key": "s.t",
                            "title": "T",
                            "columns": [
                                {"key": "a", "label": "A", "kind": "text", "scale": 1},
                                {"key": "b", "label": "B", "kind": "number", "scale": 1},
                            ],
                            "rows": [{"a": "@evil", "b": -3.0}],
                            "notes": ["-not a formula"],
                        }
                    ],
                }
            ],
        },
        computed_at=timezone.now(),
        n_records=1,
    )
    workbook = load_workbook(io.BytesIO(report_xlsx(run, name="+name")))
    assert workbook["Contents"]["A1"].value == "'=cmd|' /C calc'!A0"
    sheet = workbook.worksheets[1]
    assert [cell.value for cell in sheet[2]] == ["'@evil", -3.0]
    assert sheet.cell(row=4, column=1).value == "'-not a formula"
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_a_user_without_reports_cannot_download(client, demo):
    client.force_login(f.UserFactory(username="nobody"))
    study = Study.objects.get(code="lm")
    for name in ("pdf", "xlsx", "html", "json", "dataset"):
        assert client.get(reverse(f"reports:{name}", args=[default_definition(study).pk])).status_code == 404


@pytest.fixture(scope="module")
def lm_cached(demo, django_db_blocker):
    """The default LM report computed once as the system, so commands without options hit the cache."""
    with django_db_blocker.unblock():
        report_run(study=Study.objects.get(code="lm"), filters={}, options={})


# --- manage.py cohort_report -----------------------------------------------------------------------


def cohort_report(*args: str) -> str:
    out = io.StringIO()
    call_command("cohort_report", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_json_has_a_schema_version_sorted_keys_and_every_section(lm_cached):
    text = cohort_report("lm")
    document = json.loads(text)
    assert text == json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert document["schema_version"] == 1
    assert document["report"]["study"] == "lm" and document["report"]["n_records"] == 41
    assert [s["key"] for s in document["sections"]] == [
        "consort",
        "baseline",
        "patients",
        "survival",
        "survival_by_drug",
        "survival_by_mutation",
        "survival_by_bevacizumab",
        "response",
        "cox_os",
        "cox_ipfs",
        "safety",
        "swimmer",
    ]
    for section in document["sections"]:
        for table_ in section["tables"]:
            keys = {column["key"] for column in table_["columns"]}
            assert all(set(row) == keys for row in table_["rows"]), table_["key"]


def test_json_numbers_are_identical_when_recomputed(lm_cached):
    first = json.loads(cohort_report("lm"))
    ReportRun.objects.all().delete()
    second = json.loads(cohort_report("lm"))
    assert first.pop("run") != second.pop("run")
    assert first == second


def test_filters_and_ties_change_the_report(lm_cached):
    document = json.loads(
        cohort_report("lm", "--filter", "it_drug=pemetrexed", "--filter", "age>=50", "--ties", "efron")
    )
    dataset = build_dataset("lm")
    expected = ((dataset["it_drug"] == "pemetrexed") & (dataset["age"] >= 50)).sum()
    assert document["report"]["n_records"] == expected
    assert document["report"]["filters"] == {"age": {"op": ">=", "value": 50}, "it_drug": ["pemetrexed"]}
    assert document["report"]["options"] == {
        "ties": "efron",
        "median_ci": "spss",
        "times": "table",
        "mutation_grouping": "as_treated",
        "cox_selection": "p05",
    }

    everyone = json.loads(cohort_report("lm", "--ties", "efron"))
    bevacizumab = rows_by(table(everyone, "cox_os.univariable"), "term")["bevacizumab"]
    assert round(bevacizumab["hr"], 3) == 0.401, "R's default (Efron) gives 0.401"


def test_any_report_option_is_given_by_name(lm_cached):
    document = json.loads(
        cohort_report("lm", "--option", "median_ci=survfit", "--option", "cox_selection=all")
    )
    assert document["report"]["options"]["median_ci"] == "survfit"
    assert document["report"]["options"]["cox_selection"] == "all"
    methotrexate = next(
        row
        for row in table(document, "survival_by_drug.medians")["rows"]
        if (row["endpoint"], row["group"]) == ("OS", "it_drug=methotrexate")
    )
    assert (round(methotrexate["median_lower"], 1), methotrexate["median_upper"]) == (6.8, None)  # R: 6.8–NA


def test_xlsx_and_html_are_written_to_files(lm_cached, tmp_path):
    workbook_path = tmp_path / "lm.xlsx"
    cohort_report("lm", "--format", "xlsx", "--output", str(workbook_path))
    assert load_workbook(workbook_path).sheetnames[0] == "Contents"
    html = cohort_report("lm", "--format", "html")
    assert html.startswith("<!DOCTYPE html>") and "Leptomeningeal metastasis" in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuchstudy"], "no study with the code 'nosuchstudy'"),
        (["lm", "--filter", "weight>=3"], "no column 'weight'"),
        (["lm", "--filter", "age>=old"], "age is a number"),
        (["lm", "--filter", "index_from=yesterday"], "YYYY-MM-DD"),
        (["lm", "--option", "median_ci=median"], "median_ci must be one of spss, survfit"),
        (["lm", "--option", "median_ci"], "--option takes NAME=VALUE"),
        (["lm", "--option", "colour=blue"], "this report has no option colour"),
    ],
)
def test_mistakes_are_errors_that_say_what_to_fix(lm_cached, args, message):
    with pytest.raises(CommandError, match=message):
        cohort_report(*args)


def test_every_download_is_recorded_as_a_security_event(lm_client, lm_researcher):
    from audit.models import SecurityEvent, SecurityEventKind

    download(lm_client, "json")
    download(lm_client, "dataset")
    events = SecurityEvent.objects.filter(kind=SecurityEventKind.EXPORT, user=lm_researcher).order_by("pk")
    assert [e.detail["what"] for e in events] == [
        "report (json)",
        "analysis dataset (de-identified, dates shift)",
    ]
    assert all(e.detail["study"] == "lm" and e.detail["rows"] == 41 for e in events)
