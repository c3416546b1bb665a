"""Every study's PDF as a reader gets it: no table wider than its page, no word broken inside a
table cell, short tables on one page, protocols named rather than coded.

The PDF is laid out by WeasyPrint once per study. Each table box's right edge is checked against the
right edge of its page's content area (portrait or landscape, whichever page it landed on); the
landscape pages show the wide tables were moved there rather than shrunk out of sight. Each table
cell's lines are checked where they break: between two letters is a word cut in two ("femal|e").
"""

from __future__ import annotations

import pytest
from weasyprint import HTML
from weasyprint.formatting_structure.boxes import LineBox, TableBox, TableCellBox, TextBox

from analytics.exports import report_html
from analytics.reports.display import KEEP_TOGETHER_ROWS
from analytics.reports.runner import report_run

pytestmark = pytest.mark.django_db

TOLERANCE_PX = 0.5
STUDIES = ("npsle", "lm", "icans")


def _boxes(box, kind):
    if isinstance(box, kind):
        yield box
    for child in getattr(box, "children", ()):
        yield from _boxes(child, kind)


def overflowing_tables(document) -> list[str]:
    """'page N: table … px past the margin' for every table wider than its page's content box."""
    problems = []
    for number, page in enumerate(document.pages, start=1):
        root = page._page_box
        right = root.content_box_x() + root.width
        for table in _boxes(root, TableBox):
            edge = table.position_x + table.margin_width()
            if edge > right + TOLERANCE_PX:
                caption = table.element.get("id") if table.element is not None else "?"
                problems.append(f"page {number}: {caption} {edge - right:.0f}px past the margin")
    return problems


def _cell_lines(cell) -> list[str]:
    return ["".join(text.text for text in _boxes(line, TextBox)) for line in _boxes(cell, LineBox)]


def broken_words(document) -> list[str]:
    """Cells whose text wraps between two letters of one word: '"femal|e" on page N'."""
    problems = []
    for number, page in enumerate(document.pages, start=1):
        for cell in _boxes(page._page_box, TableCellBox):
            lines = [line.strip() for line in _cell_lines(cell) if line.strip()]
            text = " ".join("".join(cell.element.itertext()).split()) if cell.element is not None else ""
            end = 0
            for line in lines[:-1]:
                start = text.find(line, end)
                if start < 0:
                    break
                end = start + len(line)
                if end < len(text) and text[end - 1].isalnum() and text[end].isalnum():
                    problems.append(
                        f'"{text[start:end].split()[-1]}|{text[end:].split()[0]}" on page {number}'
                    )
    return problems


def pages_of_each_table(document) -> dict[str, set[int]]:
    pages: dict[str, set[int]] = {}
    for number, page in enumerate(document.pages, start=1):
        for table in _boxes(page._page_box, TableBox):
            if table.element is not None and table.element.get("id"):
                pages.setdefault(table.element.get("id"), set()).add(number)
    return pages


@pytest.fixture(scope="module")
def documents(demo, django_db_blocker):
    """Each study's report, computed once, as JSON numbers and as the laid-out PDF."""
    with django_db_blocker.unblock():
        out = {}
        for code in STUDIES:
            run, _ = report_run(study=demo[code], filters={}, options={})
            out[code] = (run.numbers, HTML(string=report_html(run, name="layout test", images=True)).render())
        return out


@pytest.mark.parametrize("code", STUDIES)
def test_no_table_is_wider_than_its_page(documents, code):
    _, document = documents[code]
    assert not overflowing_tables(document)
    assert any(page.width > page.height for page in document.pages) or code == "icans"


@pytest.mark.parametrize("code", STUDIES)
def test_no_word_is_cut_in_two_inside_a_table(documents, code):
    _, document = documents[code]
    assert not broken_words(document)


@pytest.mark.parametrize("code", STUDIES)
def test_short_tables_stay_on_one_page(documents, code):
    numbers, document = documents[code]
    short = {
        f"table-{table['key']}"
        for section in numbers["sections"]
        for table in section["tables"]
        if len(table["rows"]) <= KEEP_TOGETHER_ROWS
    }
    pages = pages_of_each_table(document)
    assert short <= set(pages)
    assert not {key: found for key, found in pages.items() if key in short and len(found) > 1}


@pytest.mark.parametrize("code", STUDIES)
def test_protocols_are_named_not_coded(documents, code):
    numbers, _ = documents[code]
    intensity = next(
        table
        for section in numbers["sections"]
        for table in section["tables"]
        if table["key"].endswith(".intensity")
    )
    coded = [row for row in intensity["rows"] if row["protocol"]]
    assert coded, "each protocol has a row"
    for row in coded:
        assert row["label"] != row["protocol"] and ", version " in row["label"], row


def test_the_checks_catch_a_wide_table_and_a_cut_word():
    wide = "<table id='too-wide' style='width: 400mm'><tr><td>x</td></tr></table>"
    assert overflowing_tables(HTML(string=wide).render())
    narrow = "<table><tr><td style='width: 4mm; overflow-wrap: anywhere'>female</td></tr></table>"
    assert broken_words(HTML(string=narrow).render())
    whole = "<table><tr><td style='width: 4mm; overflow-wrap: break-word'>two words</td></tr></table>"
    assert not broken_words(HTML(string=whole).render())
