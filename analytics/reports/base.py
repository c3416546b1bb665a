"""What every cohort report is made of: sections of tables and figures, each built on its own.

A report is a list of sections. Each section runs its analyses inside a guard: when the statistics
layer refuses the data (``AnalysisError``: an empty or too-small cohort, no events, a constant
covariate, separation) the section keeps a readable message and the rest of the report still
renders. Tables carry the raw numbers of the analytics API (the JSON, the workbook and the tests
read them); formatting for people happens later, in ``analytics.reports.display``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd
from django.db.models import QuerySet

from analytics.errors import AnalysisError
from analytics.plots import Pending
from analytics.reports.filters import describe
from analytics.results import to_jsonable

logger = logging.getLogger(__name__)

#: Version of the JSON structure documented in the README ("Cohort reports"); bump it when the structure changes.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Column:
    """A table column: its key in the rows, a label, and how to show its values.

    ``kind`` is one of text, count, number, percent, p, lower, upper (a lower/upper pair is
    shown as one "95% CI" cell). ``missing`` is what to print for None (e.g. "NR", not reached);
    ``scale`` multiplies the value for display only (100 shows a survival fraction in percent).
    Hidden columns stay in the JSON and the workbook but are left off the page.
    """

    key: str
    label: str
    kind: str = "number"
    digits: int = 2
    missing: str = "—"
    shown: bool = True
    scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "kind": self.kind,
            "digits": self.digits,
            "missing": self.missing,
            "shown": self.shown,
            "scale": self.scale,
        }


@dataclass
class Table:
    key: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        keys = [column.key for column in self.columns]
        return {
            "key": self.key,
            "title": self.title,
            "columns": [column.to_dict() for column in self.columns],
            "rows": [to_jsonable({key: row.get(key) for key in keys}) for row in self.rows],
            "notes": list(self.notes),
        }


@dataclass
class Figure:
    """A plot: its SVG, or the call that draws it (``plots.deferred``), stored beside the numbers."""

    key: str
    title: str
    svg: str | Pending
    caption: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "caption": self.caption}


@dataclass
class Section:
    key: str
    title: str
    status: str = "ok"  # ok | unavailable (the data cannot be analysed) | error (a bug, logged)
    message: str | None = None
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    analysed: int | None = None
    excluded: int | None = None
    exclusions: str = ""
    layout: list[str] = field(default_factory=list)  # table and figure keys in reading order

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "status": self.status,
            "message": self.message,
            "analysed": self.analysed,
            "excluded": self.excluded,
            "exclusions": self.exclusions,
            "notes": list(self.notes),
            "tables": [table.to_dict() for table in self.tables],
            "figures": [figure.to_dict() for figure in self.figures],
            "layout": list(self.layout),
        }


class SectionBuilder:
    """Collects a section's tables, figures and notes while its analyses run."""

    def __init__(
        self, key: str, title: str, missing_reasons: Mapping[str, Mapping[int, str]] | None = None
    ) -> None:
        self.section = Section(key, title)
        #: {column: {patient id: missing-data code}}: why values are missing, for the cohort flow.
        self.missing_reasons = missing_reasons or {}

    def table(
        self,
        key: str,
        title: str,
        columns: Sequence[Column],
        rows: pd.DataFrame | Sequence[Mapping[str, Any]],
        notes: Sequence[str] = (),
    ) -> Table:
        records = (
            rows.to_dict(orient="records") if isinstance(rows, pd.DataFrame) else [dict(r) for r in rows]
        )
        table = Table(self._key(key), title, list(columns), records, list(notes))
        self.section.tables.append(table)
        self.section.layout.append(table.key)
        return table

    def figure(self, key: str, title: str, svg: str | Pending, caption: str = "") -> None:
        figure = Figure(self._key(key), title, svg, caption)
        self.section.figures.append(figure)
        self.section.layout.append(figure.key)

    def key_for(self, key: str) -> str:
        """``<section>.<key>``: the key of a table or figure (its URL, its sheet, its SVG ids)."""
        return f"{self.section.key}.{key}"

    def _key(self, key: str) -> str:
        full = self.key_for(key)
        if full in self.section.layout:
            raise ValueError(f"{full} is used twice in one section")
        return full

    def note(self, text: str) -> None:
        self.section.notes.append(text)

    def analysed(self, frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
        """Keep the rows with every column present; record who was left out and why.

        The counts feed the STROBE flow (analysed, excluded for missing data, by variable).
        """
        columns = list(dict.fromkeys(columns))
        missing = frame[columns].isna()
        complete = frame[~missing.any(axis=1)]
        counts = {name: int(count) for name, count in missing.sum().items() if count}
        self.section.analysed = len(complete)
        self.section.excluded = len(frame) - len(complete)
        self.section.exclusions = ", ".join(
            f"{name} missing ({count}{_by_reason(frame, missing[name], self.missing_reasons.get(name))})"
            for name, count in counts.items()
        )
        if frame.empty:
            raise AnalysisError("no patient is in this cohort")
        if complete.empty:
            raise AnalysisError(f"no patient in this cohort has all of {', '.join(columns)}")
        return complete

    @contextmanager
    def attempt(self, what: str) -> Iterator[None]:
        """Run one part of a section; if the data cannot be analysed, note why and carry on."""
        try:
            yield
        except AnalysisError as exc:
            self.note(f"{what}: not available for this cohort ({exc}).")


def _by_reason(frame: pd.DataFrame, missing: pd.Series, coded: Mapping[int, str] | None) -> str:
    """The gaps of a column by missing-data code (e.g. ': UNK 3, ND 2, not entered 7'); '' without codes."""
    if not coded or "patient_id" not in frame:
        return ""
    reasons = frame.loc[missing, "patient_id"].map(coded).fillna("not entered")
    counts = reasons.value_counts()
    order = sorted(counts.index, key=lambda code: (code == "not entered", -counts[code], code))
    return ": " + ", ".join(f"{code} {counts[code]}" for code in order)


def build_section(
    key: str,
    title: str,
    build: Callable[[SectionBuilder], None],
    missing_reasons: Mapping[str, Mapping[int, str]] | None = None,
) -> Section:
    """Run one section's analyses; a refusal becomes its message, never an error page."""
    builder = SectionBuilder(key, title, missing_reasons)
    try:
        build(builder)
    except AnalysisError as exc:
        builder.section.status = "unavailable"
        builder.section.message = f"Not available for this cohort: {exc}."
    except Exception:
        # A bug, not the data: log it for the registry team and keep the rest of the report.
        logger.exception("report section %s failed", key)
        builder.section.status = "error"
        builder.section.message = (
            "This analysis could not be computed because of an unexpected error; it has been logged."
        )
    return builder.section


@dataclass(frozen=True)
class Option:
    """A report option a researcher may choose (e.g. how the Cox model handles tied times)."""

    name: str
    label: str
    choices: tuple[tuple[str, str], ...]
    default: str


TIES_CHOICES = (("efron", "Efron (R's default)"), ("breslow", "Breslow (SPSS; the LM paper)"))


@dataclass
class FlowStep:
    """One box of the STROBE-style flow: how many patients, and who was left out and why."""

    key: str
    label: str
    n: int
    excluded: int | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "n": self.n,
            "excluded": self.excluded,
            "detail": self.detail,
        }


@dataclass
class ReportResult:
    """A computed report: the numbers (JSON-ready) and the figures (SVG by figure key)."""

    title: str
    study: str
    filters: dict[str, Any]
    options: dict[str, str]
    flow: list[FlowStep]
    sections: list[Section]
    n_screened: int
    n_records: int

    def numbers(self) -> dict[str, Any]:
        """The stable, timestamp-free part of the report (the README documents every field)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "report": {
                "title": self.title,
                "study": self.study,
                "filters": self.filters,
                "options": self.options,
                "n_screened": self.n_screened,
                "n_records": self.n_records,
            },
            "flow": [step.to_dict() for step in self.flow],
            "sections": [section.to_dict() for section in self.sections],
        }

    def figures(self) -> dict[str, str | Pending]:
        return {figure.key: figure.svg for section in self.sections for figure in section.figures}


class OptionError(ValueError):
    """An option value the report does not offer."""


@dataclass(frozen=True)
class Cohort:
    """A report's analysis dataset, and the scoped patients it was built from (for record selectors)."""

    frame: pd.DataFrame
    patients: QuerySet
    filters: dict[str, Any]
    study: str
    screened: int
    dictionary: list[dict[str, str]]
    missing_reasons: dict[str, dict[int, str]] = field(default_factory=dict)

    @classmethod
    def from_dataset(cls, frame: pd.DataFrame, *, patients: QuerySet, filters: dict[str, Any]) -> Cohort:
        """Take the dataset's ``attrs`` out of the frame: pandas deep-copies them on every operation,
        which made a report several times slower."""
        attrs, frame.attrs = frame.attrs, {}
        return cls(
            frame,
            patients,
            filters,
            attrs["study"],
            int(attrs["screened"]),
            attrs["dictionary"],
            attrs.get("missing_reasons", {}),
        )


SectionPlan = tuple[str, str, Callable[[SectionBuilder], None]]


class StudyReport:
    """Base of the study reports: a title, options, labels for groups, and a plan of sections."""

    title: ClassVar[str]
    option_specs: ClassVar[tuple[Option, ...]] = ()
    group_labels: ClassVar[dict[str, str]] = {}
    #: Labels that replace the data dictionary's where it is too long for a table row or a plot axis.
    short_labels: ClassVar[dict[str, str]] = {}
    #: What the codes of categorical variables mean, for the rows of tables (variable → code → text).
    level_labels: ClassVar[dict[str, dict[str, str]]] = {}

    def __init__(self, cohort: Cohort, options: Mapping[str, str]) -> None:
        self.cohort = cohort
        self.frame = cohort.frame
        self.options = self.resolve_options(options)
        self.labels = {v["name"]: v["label"] for v in cohort.dictionary} | self.short_labels

    @classmethod
    def resolve_options(cls, given: Mapping[str, str]) -> dict[str, str]:
        """Every option of this report, defaulted; an unknown option or value is refused."""
        specs = {spec.name: spec for spec in cls.option_specs}
        unknown = sorted(set(given) - set(specs))
        if unknown:
            raise OptionError(f"this report has no option {', '.join(unknown)}")
        resolved = {}
        for name, spec in specs.items():
            value = given.get(name) or spec.default
            if value not in dict(spec.choices):
                allowed = ", ".join(dict(spec.choices))
                raise OptionError(f"{name} must be one of {allowed}, not {value!r}")
            resolved[name] = value
        return resolved

    def sections(self) -> list[SectionPlan]:
        """(key, title, build) for each section, in reading order."""
        raise NotImplementedError

    def run(self, progress: Callable[[int, int, str], None] | None = None) -> ReportResult:
        """Build every section; ``progress(done, total, title)`` is called after each."""
        plan = self.sections()
        sections = []
        for done, (key, title, build) in enumerate(plan, start=1):
            sections.append(build_section(key, title, build, self.cohort.missing_reasons))
            if progress:
                progress(done, len(plan), title)
        screened, included = self.cohort.screened, len(self.frame)
        flow = [
            FlowStep("screened", "Patients of the study at the sites you report on", screened),
            FlowStep(
                "included",
                "Included by the cohort filter",
                included,
                excluded=screened - included,
                detail="; ".join(describe(self.cohort.filters, self.labels)) or "no filter",
            ),
        ]
        flow += [
            FlowStep(
                f"analysed.{section.key}",
                section.title,
                section.analysed,
                excluded=section.excluded,
                detail=section.exclusions or "no missing data",
            )
            for section in sections
            if section.analysed is not None
        ]
        return ReportResult(
            title=self.title,
            study=self.cohort.study,
            filters=self.cohort.filters,
            options=self.options,
            flow=flow,
            sections=sections,
            n_screened=screened,
            n_records=included,
        )
