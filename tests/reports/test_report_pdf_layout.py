"""Every table of every study's PDF fits its page: no column is cut at the right margin.

The PDF is laid out by WeasyPrint; each table box's right edge is checked against the right edge of
its page's content area (portrait or landscape, whichever page it landed on). The page counts of
landscape pages show the wide tables were moved there rather than shrunk out of sight.
"""

from __future__ import annotations

import pytest
from weasyprint import HTML
from weasyprint.formatting_structure.boxes import TableBox

from analytics.exports import report_html
from analytics.reports.runner import report_run

pytestmark = pytest.mark.django_db

TOLERANCE_PX = 0.5


def _tables(box):
    if isinstance(box, TableBox):
        yield box
    for child in getattr(box, "children", ()):
        yield from _tables(child)


def overflowing_tables(document) -> list[str]:
    """'page N: table … px past the margin' for every table wider than its page's content box."""
    problems = []
    for number, page in enumerate(document.pages, start=1):
        root = page._page_box
        right = root.content_box_x() + root.width
        for table in _tables(root):
            edge = table.position_x + table.margin_width()
            if edge > right + TOLERANCE_PX:
                caption = table.element.get("id") if table.element is not None else "?"
                problems.append(f"page {number}: {caption} {edge - right:.0f}px past the margin")
    return problems


@pytest.mark.parametrize("code", ["npsle", "lm", "icans"])
def test_no_table_is_wider_than_its_page(demo, code):
    run, _ = report_run(study=demo[code], filters={}, options={})
    document = HTML(string=report_html(run, name="layout test", images=True)).render()
    assert not overflowing_tables(document)
    assert any(page.width > page.height for page in document.pages) or code == "icans"


def test_the_check_catches_a_table_wider_than_the_page():
    html = "<table id='too-wide' style='width: 400mm'><tr><td>x</td></tr></table>"
    assert overflowing_tables(HTML(string=html).render())
