"""How a report's numbers read on the page and in the HTML/PDF exports.

The JSON keeps raw numbers; this module turns them into text once (p < 0.001, 95% intervals as
"0.186–0.877", "not reached" for a median R reports as NA), so templates only loop and print.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analytics.datasets import data_dictionary
from analytics.reports.figures import run_figures
from analytics.reports.filters import describe

if TYPE_CHECKING:
    from analytics.models import ReportRun
    from analytics.reports.base import StudyReport

NUMERIC_KINDS = {"count", "number", "percent", "p", "lower", "upper"}


def p_text(p: float | None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number_text(value: Any, column: Mapping[str, Any]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return column.get("missing", "—")
    kind = column["kind"]
    if kind == "text":
        return str(value)
    if kind == "count":
        return f"{int(value)}"
    if kind == "p":
        return p_text(value)
    shown = f"{value * column.get('scale', 1.0):.{column['digits']}f}"
    return f"{shown}%" if kind == "percent" else shown


@dataclass(frozen=True)
class Cell:
    text: str
    numeric: bool


#: A table whose rows need more characters than this (the longest cell of each column, header words
#: included) goes on a landscape page of its own in the PDF; above LANDSCAPE_FIT_CHARS it is also
#: printed smaller. About 150 characters of 8-point text fit across a portrait A4 page.
PORTRAIT_CHARS = 120
LANDSCAPE_FIT_CHARS = 190
#: Text cells wrap between words in print, so a text column needs at most this many characters (or
#: its longest word); numbers never wrap and count in full.
TEXT_WRAP_CHARS = 32
#: Tables of at most this many rows are not split across pages in the PDF.
KEEP_TOGETHER_ROWS = 12
#: On the report page a table shares the width with the cohort filter (827 px at 1366 px): measured
#: with the demo reports, tables up to 114 characters fit (the ICANS CSF comparison), the schedule
#: and dose-intensity table (167) needed 1,240 px and its last five columns were off the card.
SCREEN_CHARS = 150
#: A table wider than ``SCREEN_CHARS`` with at most this many rows (a few groups compared on many
#: measures) is shown turned on the page: its columns as rows. Longer tables keep their shape.
TURN_MAX_ROWS = 4


def _needed_chars(cell: Cell) -> int:
    if cell.numeric:
        return len(cell.text)
    longest_word = max((len(word) for word in cell.text.split()), default=0)
    return max(min(len(cell.text), TEXT_WRAP_CHARS), longest_word)


#: A report page shows a longer table a page of rows at a time (the downloads keep every row).
TABLE_PAGE_ROWS = 50


@dataclass(frozen=True)
class TablePage:
    """Which rows of a long table a page shows (1-based, inclusive), and its query parameter."""

    param: str
    number: int
    count: int
    first: int
    last: int
    total: int

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.count else None


#: The query parameter of a table's page is this prefix and the table's key.
PAGE_PREFIX = "rows-"


def page_param(table_key: str) -> str:
    return f"{PAGE_PREFIX}{table_key}"


def table_page(key: str, total: int, asked: int) -> TablePage | None:
    """The page ``asked`` (clamped to the table) of a table longer than a page; None for a short one."""
    if total <= TABLE_PAGE_ROWS:
        return None
    count = -(-total // TABLE_PAGE_ROWS)
    number = min(max(asked, 1), count)
    first = (number - 1) * TABLE_PAGE_ROWS + 1
    return TablePage(page_param(key), number, count, first, min(first + TABLE_PAGE_ROWS - 1, total), total)


@dataclass(frozen=True)
class DisplayTable:
    is_figure = False

    key: str
    title: str
    headers: list[Cell]
    rows: list[list[Cell]]
    notes: list[str]
    page: TablePage | None = None

    @property
    def width_chars(self) -> int:
        """The characters a row needs: per column, its longest cell (a text cell up to
        ``TEXT_WRAP_CHARS`` or its longest word) or its longest header word."""
        total = 0
        for index, header in enumerate(self.headers):
            longest_word = max((len(word) for word in header.text.split()), default=0)
            cells = [_needed_chars(row[index]) for row in self.rows if index < len(row)]
            total += max([longest_word, *cells]) + 2
        return total

    @property
    def keep_together(self) -> bool:
        """A short table prints on one page (a long one breaks between rows, its header repeated)."""
        return len(self.rows) <= KEEP_TOGETHER_ROWS

    @property
    def layout(self) -> str:
        """How the PDF prints it: "" (portrait), "wide" (landscape) or "wide fit" (landscape, smaller)."""
        width = self.width_chars
        if width <= PORTRAIT_CHARS:
            return ""
        return "wide" if width <= LANDSCAPE_FIT_CHARS else "wide fit"

    @property
    def on_screen(self) -> DisplayTable:
        """The table as the report page shows it: turned (each column a row, each row a column headed
        by its first cell) when it is too wide for the page and has few rows; otherwise as it is.
        The PDF and the HTML download print it as it is (a wide table gets a landscape page)."""
        if self.width_chars <= SCREEN_CHARS or not 0 < len(self.rows) <= TURN_MAX_ROWS:
            return self
        headers = [Cell("", False), *(Cell(row[0].text, True) for row in self.rows)]
        rows = [
            [Cell(header.text, False), *(row[index] for row in self.rows)]
            for index, header in enumerate(self.headers)
            if index > 0
        ]
        return DisplayTable(self.key, self.title, headers, rows, self.notes)


def display_table(table: Mapping[str, Any], page: int | None = None) -> DisplayTable:
    """The shown columns of a JSON table as text cells; a lower/upper pair becomes one CI cell.

    ``page``: only that page of a table longer than ``TABLE_PAGE_ROWS`` (None: every row, for the
    downloads); only the rows shown are formatted.
    """
    columns = [column for column in table["columns"] if column["shown"]]
    plan: list[tuple[Mapping[str, Any], Mapping[str, Any] | None]] = []
    for column in columns:
        if column["kind"] == "upper" and plan and plan[-1][0]["kind"] == "lower":
            plan[-1] = (plan[-1][0], column)
        else:
            plan.append((column, None))
    headers = [Cell(first["label"], first["kind"] in NUMERIC_KINDS) for first, _ in plan]
    shown = table_page(table["key"], len(table["rows"]), page) if page is not None else None
    records = table["rows"][shown.first - 1 : shown.last] if shown else table["rows"]
    rows = []
    for record in records:
        cells = []
        for first, upper in plan:
            if upper is None:
                text = number_text(record.get(first["key"]), first)
            elif _missing(record.get(first["key"])) and _missing(record.get(upper["key"])):
                text = first.get("missing", "—")  # no interval at all: one mark, not "—–—"
            else:
                text = f"{number_text(record.get(first['key']), first)}–{number_text(record.get(upper['key']), upper)}"
            cells.append(Cell(text, first["kind"] in NUMERIC_KINDS))
        rows.append(cells)
    return DisplayTable(table["key"], table["title"], headers, rows, list(table["notes"]), shown)


#: A report page inlines a figure's SVG up to this size; a larger one is an image the browser fetches
#: by URL (``reports:run_figure``), so the page stays small while the figures load beside it.
INLINE_SVG_MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class DisplayFigure:
    is_figure = True

    key: str
    title: str
    caption: str
    svg: str  # '' while not drawn
    problem: str = ""  # why it is not shown (drawing failed, logged): a note in its place

    FAILED = "This figure could not be drawn; the error is logged for the administrators."
    #: A run whose stored figure this code cannot draw (``figures.FigureLost``): the run is deleted.
    LOST = "This report was stored by an earlier version of the registry; opening its page again computes it anew."

    @property
    def inline(self) -> bool:
        """Drawn, and small enough to be part of the page ('' : not drawn yet, fetched by URL)."""
        return 0 < len(self.svg) <= INLINE_SVG_MAX_BYTES

    @property
    def data_uri(self) -> str:
        """The SVG as an image URI: the PDF renderer draws these without parsing them as HTML."""
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg.encode()).decode()


@dataclass(frozen=True)
class DisplaySection:
    key: str
    title: str
    status: str
    message: str | None
    notes: list[str]
    analysed: int | None
    excluded: int | None
    exclusions: str
    items: list[DisplayTable | DisplayFigure]  # in the order the analysis produced them

    @property
    def starts_wide(self) -> bool:
        """Its first item is a wide table: the PDF starts the whole section on the landscape page, so
        the heading is not left alone at the foot of a portrait one."""
        first = self.items[0] if self.items else None
        return isinstance(first, DisplayTable) and bool(first.layout)


def display_sections(
    numbers: Mapping[str, Any], figures: Mapping[str, str | None], pages: Mapping[str, int] | None = None
) -> list[DisplaySection]:
    """``pages``: the page of each long table to show, by table key (None: every row of every table)."""
    sections = []
    for section in numbers["sections"]:
        items: dict[str, DisplayTable | DisplayFigure] = {
            table["key"]: display_table(table, None if pages is None else pages.get(table["key"], 1))
            for table in section["tables"]
        }
        for f in section["figures"]:
            svg = figures.get(f["key"], "")  # None: drawing it failed
            problem = DisplayFigure.FAILED if svg is None else ""
            items[f["key"]] = DisplayFigure(f["key"], f["title"], f["caption"], svg or "", problem=problem)
        sections.append(
            DisplaySection(
                key=section["key"],
                title=section["title"],
                status=section["status"],
                message=section["message"],
                notes=section["notes"],
                analysed=section["analysed"],
                excluded=section["excluded"],
                exclusions=section["exclusions"],
                items=[items[key] for key in section["layout"]],
            )
        )
    return sections


def describe_flow(
    flow: Sequence[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The cohort steps (screened, included) and the per-analysis steps of the flow."""
    cohort = [step for step in flow if not step["key"].startswith("analysed.")]
    analyses = [step for step in flow if step["key"].startswith("analysed.")]
    return cohort, analyses


@dataclass(frozen=True)
class DisplayReport:
    """Everything a report page or export prints, as text and SVG."""

    title: str
    study_code: str
    study_title: str
    filters: list[str]
    options: list[str]
    computed_at: dt.datetime
    duration_ms: int
    n_screened: int
    n_records: int
    cohort_flow: list[Mapping[str, Any]]
    analysis_flow: list[Mapping[str, Any]]
    sections: list[DisplaySection]


def display_report(
    run: ReportRun, report: type[StudyReport], *, pages: Mapping[str, int] | None = None, draw: bool = True
) -> DisplayReport:
    """The run as text and SVG; ``pages`` pages its long tables (the page), None keeps every row (downloads).

    ``draw`` draws the figures not drawn yet (downloads); the page leaves them to their own URL
    (``reports:run_figure_inline``), which draws each when the browser asks for it. Raises
    ``figures.FigureLost`` when a stored figure cannot be drawn by this code (its run is deleted).
    """
    numbers = run.numbers
    labels = {v.name: v.label for v in data_dictionary(run.study)}
    choices = {spec.name: (spec.label, dict(spec.choices)) for spec in report.option_specs}
    options = [
        f"{choices[name][0]}: {choices[name][1].get(value, value)}"
        for name, value in numbers["report"]["options"].items()
        if name in choices
    ]
    cohort_flow, analysis_flow = describe_flow(numbers["flow"])
    return DisplayReport(
        title=numbers["report"]["title"],
        study_code=run.study.code,
        study_title=run.study.title,
        filters=describe(numbers["report"]["filters"], labels),
        options=options,
        computed_at=run.computed_at,
        duration_ms=run.duration_ms,
        n_screened=run.n_screened,
        n_records=run.n_records,
        cohort_flow=cohort_flow,
        analysis_flow=analysis_flow,
        sections=display_sections(numbers, run_figures(run, draw=draw), pages),
    )
