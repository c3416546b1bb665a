"""The LM paper's numbers as a reader meets them: on the report page, in the PDF and in the workbook.

Each entry of ``PUBLISHED`` names a table, its row and a cell with the text the paper prints (copied
from ../shared/papers/lm_nsclc_intrathecal_41.txt). The page must show that text in that cell of that
row; the PDF must contain the row's cells in order; the workbook must hold the number in the cell of
that row under the column's header (both limits for an interval).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from analytics.reports.definitions import default_definition
from registry.models import Study
from tests import factories as f

pytestmark = pytest.mark.django_db

OS_ALL = {"endpoint": "OS", "group": "all"}
IM, IP = "it_drug=methotrexate", "it_drug=pemetrexed"
WILD_TYPE, MUTATED = "mutation_as_treated=0", "mutation_as_treated=1"

#: (table, the row's identifying values, {column key: the text the paper prints}).
PUBLISHED: list[tuple[str, dict, dict[str, str]]] = [
    ("survival.medians", OS_ALL, {"median": "10.1", "median_lower": "6.8–13.4"}),
    (
        "survival_by_drug.medians",
        {"endpoint": "OS", "group": IM},
        {"median": "10.1", "median_lower": "2.9–17.3"},
    ),
    (
        "survival_by_drug.medians",
        {"endpoint": "OS", "group": IP},
        {"median": "9.6", "median_lower": "6.1–13.1"},
    ),
    (
        "survival_by_drug.medians",
        {"endpoint": "iPFS", "group": IM},
        {"median": "7.3", "median_lower": "6.0–8.6"},
    ),
    ("survival_by_drug.medians", {"endpoint": "iPFS", "group": IP}, {"median": "8.0"}),
    (
        "survival_by_mutation.medians",
        {"endpoint": "iPFS", "group": WILD_TYPE},
        {"n": "9", "median": "6.8", "median_lower": "5.1–8.5"},
    ),
    (
        "survival_by_mutation.medians",
        {"endpoint": "OS", "group": WILD_TYPE},
        {"median": "10.7", "median_lower": "4.5–16.9"},
    ),
    (
        "survival_by_mutation.medians",
        {"endpoint": "OS", "group": MUTATED},
        {"median": "9.6", "median_lower": "5.5–13.7"},
    ),
    ("cox_os.univariable", {"term": "gene_mutation"}, {"hr": "1.100", "lower": "0.437–2.765", "p": "0.840"}),
    ("cox_os.univariable", {"term": "bevacizumab"}, {"hr": "0.404", "lower": "0.186–0.877", "p": "0.022"}),
    ("baseline.table_one", {"variable": "age_under_60", "level": None}, {"p": "0.923"}),
    (
        "baseline.table_one",
        {"variable": "age_under_60", "level": "1"},
        {"summary_pemetrexed": "23", "summary_methotrexate": "4", "summary_all": "27 (65.9%)"},
    ),
    (
        "baseline.table_one",
        {"variable": "age_under_60", "level": "0"},
        {"summary_pemetrexed": "11", "summary_methotrexate": "3", "summary_all": "14 (34.1%)"},
    ),
    ("baseline.table_one", {"variable": "sex_male", "level": None}, {"p": "1.000"}),
    (
        "baseline.table_one",
        {"variable": "sex_male", "level": "1"},
        {"summary_pemetrexed": "14", "summary_methotrexate": "3", "summary_all": "17 (41.5%)"},
    ),
    (
        "baseline.table_one",
        {"variable": "sex_male", "level": "0"},
        {"summary_pemetrexed": "20", "summary_methotrexate": "4", "summary_all": "24 (58.5%)"},
    ),
    ("baseline.table_one", {"variable": "csf_cytology_positive", "level": None}, {"p": "0.376"}),
    (
        "baseline.table_one",
        {"variable": "csf_cytology_positive", "level": "positive"},
        {"summary_all": "40 (97.6%)"},
    ),
    (
        "baseline.table_one",
        {"variable": "csf_cytology_positive", "level": "unknown"},
        {"summary_all": "1 (2.4%)"},
    ),
    ("baseline.table_one", {"variable": "mri_positive", "level": None}, {"p": "0.299"}),
    (
        "baseline.table_one",
        {"variable": "mri_positive", "level": "0"},
        {"summary_pemetrexed": "9", "summary_methotrexate": "0", "summary_all": "9 (22.0%)"},
    ),
    (
        "baseline.table_one",
        {"variable": "mri_positive", "level": "1"},
        {"summary_pemetrexed": "25", "summary_methotrexate": "7", "summary_all": "32 (78.0%)"},
    ),
    (
        "baseline.table_one",
        {"variable": "prior_egfr_tki_1_2", "level": "1"},
        {"summary_pemetrexed": "22", "summary_methotrexate": "2", "summary_all": "24 (58.5%)"},
    ),
    (
        "baseline.table_one",
        {"variable": "prior_egfr_tki_3", "level": "1"},
        {"summary_pemetrexed": "18", "summary_methotrexate": "3", "summary_all": "21 (51.2%)"},
    ),
    ("baseline.table_one", {"variable": "prior_chemotherapy", "level": "1"}, {"summary_all": "11 (26.8%)"}),
    (
        "baseline.table_one",
        {"variable": "prior_bevacizumab", "level": "1"},
        {"summary_pemetrexed": "6", "summary_methotrexate": "3", "summary_all": "9 (22.0%)"},
    ),
    ("baseline.table_one", {"variable": "bevacizumab", "level": None}, {"p": "0.958"}),
    (
        "baseline.table_one",
        {"variable": "egfr", "level": "1"},
        {"summary_pemetrexed": "27", "summary_methotrexate": "4", "summary_all": "31 (75.6%)"},
    ),
    ("baseline.table_one", {"variable": "met_amplification", "level": "1"}, {"summary_all": "1 (2.4%)"}),
    (
        "baseline.table_one",
        {"variable": "driver_mutation", "level": "0"},
        {"summary_pemetrexed": "7", "summary_methotrexate": "3", "summary_all": "10 (24.4%)"},
    ),
    ("baseline.table_one", {"variable": "mutation_as_treated", "level": None}, {"p": "0.334"}),
    (
        "baseline.table_one",
        {"variable": "histology", "level": "adenocarcinoma"},
        {"summary_all": "41 (100.0%)"},
    ),
    ("baseline.table_one", {"variable": "age", "level": None}, {"summary_all": "56 (37–73)"}),
    ("consort.flow", {"label": "\u2003Died"}, {"summary_all": "27 (65.9%)"}),
    (
        "consort.flow",
        {"label": "\u2003Free of LM progression at the last follow-up"},
        {"summary_all": "11 (26.8%)"},
    ),
    (
        "consort.treatment",
        {"label": "Intrathecal injections"},
        {"summary_pemetrexed": "287", "summary_methotrexate": "38", "summary_all": "325"},
    ),
    ("consort.treatment", {"label": "Injections per patient, median (range)"}, {"summary_all": "7 (2–22)"}),
    ("consort.treatment", {"label": "Patients treated through an Ommaya reservoir"}, {"summary_all": "3"}),
    (
        "consort.treatment",
        {"label": "Highest single dose"},
        {"summary_pemetrexed": "50 mg", "summary_methotrexate": "12 mg"},
    ),
    ("response.neurological", {"level": "improved"}, {"summary_all": "28 (68.3%)"}),
    ("response.neurological", {"level": "stable"}, {"summary_all": "9 (22.0%)"}),
    (
        "response.neurological",
        {"level": "worse"},
        {"summary_all": "4 (9.8%)"},
    ),  # the paper: 9.7% (4/41 = 9.76%)
    *(
        (
            "safety.by_regimen",
            {"key": key, "regimen": regimen},
            dict(zip(("g1", "g2", "g3", "g4"), cells, strict=True)),
        )
        for key, regimen, cells in (
            ("haematologic", "chemotherapy", "4333"),
            ("leukopenia", "chemotherapy", "3231"),
            ("thrombocytopenia", "chemotherapy", "1102"),
            ("eha", "chemotherapy", "1000"),
            ("haematologic", "targeted", "3332"),
            ("leukopenia", "targeted", "1221"),
            ("thrombocytopenia", "targeted", "2111"),
        )
    ),
    ("safety.myelosuppression", {"key": "any"}, {"n_all": "18"}),
    ("safety.myelosuppression", {"key": "leukopenia"}, {"n_all": "15"}),
    ("safety.myelosuppression", {"key": "thrombocytopenia"}, {"n_all": "9"}),
    ("safety.myelosuppression", {"key": "together"}, {"n_all": "3"}),
    ("safety.myelosuppression", {"key": "grade3"}, {"n_chemotherapy": "6", "n_targeted": "5", "n_all": "11"}),
    ("safety.myelosuppression", {"key": "grade3_leukopenia"}, {"n_all": "7"}),
    ("safety.myelosuppression", {"key": "grade3_thrombocytopenia"}, {"n_all": "4"}),
    ("safety.myelosuppression", {"key": "liver"}, {"n_all": "1"}),
]


@pytest.fixture(scope="module")
def downloads(demo, django_db_blocker) -> dict:
    """The page, PDF and workbook of the default LM report, and its JSON, fetched once."""
    from django.test import Client

    with django_db_blocker.unblock():
        client = Client()
        client.force_login(f.UserFactory(username="lm-chief", is_superuser=True))
        pk = default_definition(Study.objects.get(code="lm")).pk
        got = {
            name: client.get(reverse(f"reports:{name}", args=[pk]))
            for name in ("detail", "json", "pdf", "xlsx")
        }
    assert all(response.status_code == 200 for response in got.values())
    return {
        "page": got["detail"].content.decode(),
        "numbers": got["json"].json(),
        "pdf": got["pdf"].content,
        "xlsx": load_workbook(io.BytesIO(got["xlsx"].content)),
    }


def json_table(numbers: dict, key: str) -> dict:
    return next(t for s in numbers["sections"] for t in s["tables"] if t["key"] == key)


def row_index(table: dict, match: dict) -> int:
    found = [i for i, r in enumerate(table["rows"]) if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (table["key"], match)
    return found[0]


def page_column(table: dict, key: str) -> int:
    """Where a column's cell is on the page: shown columns, an interval's upper limit merged into its lower."""
    position, previous = -1, None
    for column in table["columns"]:
        if not column["shown"]:
            continue
        if not (column["kind"] == "upper" and previous == "lower"):
            position += 1
        if column["key"] == key:
            return position
        previous = column["kind"]
    raise AssertionError(f"{key} is not shown in {table['key']}")


class PageTables(HTMLParser):
    """The text of every cell of every report table, by table id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: str | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table" and (attributes.get("id") or "").startswith("table-"):
            self.current = attributes["id"].removeprefix("table-")
            self.tables[self.current] = []
        elif self.current and tag == "tr":
            self.tables[self.current].append([])
        elif self.current and tag in ("td", "th"):
            self.cell = []

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None and self.current:
            self.tables[self.current][-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "table":
            self.current = None


@pytest.mark.parametrize(("key", "match", "cells"), PUBLISHED)
def test_the_page_shows_the_papers_number_in_its_cell(downloads, key, match, cells):
    table = json_table(downloads["numbers"], key)
    parser = PageTables()
    parser.feed(downloads["page"])
    body = parser.tables[key][1:]  # the header row first
    shown = body[row_index(table, match)]
    for column, text in cells.items():
        assert shown[page_column(table, column)] == text, (key, match, column)


def number(text: str) -> float:
    return float(text.split(" ")[0].rstrip("%"))


@pytest.mark.parametrize(("key", "match", "cells"), PUBLISHED)
def test_the_workbook_holds_the_papers_number_in_its_cell(downloads, key, match, cells):
    table = json_table(downloads["numbers"], key)
    workbook = downloads["xlsx"]
    contents = list(workbook["Contents"].iter_rows(min_row=6, values_only=True))
    sheet = workbook[next(r[0] for r in contents if r[3] == key)]
    keys = [column["key"] for column in table["columns"]]
    assert len([cell.value for cell in sheet[1]]) == len(keys)  # one sheet column per column, hidden ones too
    values = dict(
        zip(keys, list(sheet.iter_rows(min_row=2, values_only=True))[row_index(table, match)], strict=True)
    )
    for column, text in cells.items():
        if "–" in text and column in ("median_lower", "lower"):
            upper = column.replace("lower", "upper")
            for name, expected in zip((column, upper), text.split("–"), strict=True):
                assert round(values[name], len(expected.split(".")[1])) == pytest.approx(float(expected))
        elif column.startswith("summary_"):
            assert values[column] == text  # the text cell as printed
        else:
            digits = len(text.split(".")[1]) if "." in text else 0
            assert round(values[column], digits) == pytest.approx(number(text))


def pdf_text(pdf: bytes, tmp_path, *options: str) -> str:
    path = tmp_path / "lm.pdf"
    path.write_bytes(pdf)
    result = subprocess.run(
        ["pdftotext", *options, str(path), "-"], capture_output=True, text=True, check=True
    )
    return result.stdout.replace("\u2003", " ")


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) is not installed")
def test_the_pdf_prints_each_published_number_in_its_row(downloads, tmp_path):
    """Every published text is printed (a cell may wrap onto a second line), and on one printed line
    the row's first word is followed by the first word of each published cell, in order."""
    flowing = " ".join(pdf_text(downloads["pdf"], tmp_path).split())
    lines = pdf_text(downloads["pdf"], tmp_path, "-layout").splitlines()
    parser = PageTables()
    parser.feed(downloads["page"])
    missing = []
    for key, match, cells in PUBLISHED:
        table = json_table(downloads["numbers"], key)
        shown = parser.tables[key][1:][row_index(table, match)]
        first_word = shown[0].split()[0]
        texts = [cells[column] for column in sorted(cells, key=lambda c: page_column(table, c))]
        words = [re.escape(text.split()[0]) for text in texts]
        pattern = re.compile(
            rf"(?<!\S){re.escape(first_word)}(?!\S).*" + ".*".join(rf"(?<!\S){w}(?!\S)" for w in words)
        )
        if not any(pattern.search(line) for line in lines) or not all(text in flowing for text in texts):
            missing.append((key, match, texts))
    assert not missing
