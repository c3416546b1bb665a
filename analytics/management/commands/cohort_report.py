"""``python manage.py cohort_report STUDY [--filter key=value ...] [--format ...] [--output PATH]``.

Runs a study's built-in report as the system (every site) and writes it as HTML, PDF, XLSX or
JSON. Filters use the report page's syntax: ``site=north,south``, ``index_from=2019-01-01``,
``syndromes=psychosis``, ``it_drug=pemetrexed``, ``age>=18``, ``sex_male=1``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from accounts.services import system_user
from analytics import exports
from analytics.datasets import data_dictionary
from analytics.errors import AnalysisError
from analytics.reports.base import OptionError
from analytics.reports.filters import FilterError, parse_conditions
from analytics.reports.runner import report_run
from registry.models import Study

FORMATS = ("html", "pdf", "xlsx", "json")


class Command(BaseCommand):
    help = "Run a study's cohort report (all sites) and write it as HTML, PDF, XLSX or JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="Study code, e.g. npsle, lm or icans.")
        parser.add_argument(
            "--filter",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="A cohort filter (repeatable): site=north, index_from=2019-01-01, age>=18, it_drug=pemetrexed.",
        )
        parser.add_argument("--format", choices=FORMATS, default="json", help="Output format (default json).")
        parser.add_argument(
            "--output",
            help="File to write; default: standard output for html and json, <study>-report.<format> otherwise.",
        )
        parser.add_argument(
            "--ties", choices=("efron", "breslow"), help="Cox ties (reports with Cox models)."
        )
        parser.add_argument(
            "--option",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="A report option (repeatable), e.g. median_ci=survfit for the LM report.",
        )

    def handle(
        self, *args, study: str, filter: list[str], format: str, output: str | None, ties, option, **options
    ):
        try:
            study_obj = Study.objects.get(code=study)
        except Study.DoesNotExist:
            raise CommandError(f"no study with the code {study!r}") from None
        try:
            filters = parse_conditions(filter, data_dictionary(study_obj))
        except FilterError as exc:
            raise CommandError(str(exc)) from None
        chosen = dict(pair.split("=", 1) for pair in option if "=" in pair)
        if len(chosen) != len(option):
            raise CommandError("--option takes NAME=VALUE, e.g. --option median_ci=survfit")
        if ties:
            chosen["ties"] = ties
        with tqdm(desc=study, unit="section", disable=not sys.stderr.isatty(), leave=False) as bar:

            def progress(done: int, total: int, title: str) -> None:
                bar.total = total
                bar.set_postfix_str(title[:40])
                bar.update(done - bar.n)

            try:
                run, cached = report_run(
                    study=study_obj,
                    filters=filters,
                    options=chosen,
                    requested_by=system_user(),
                    progress=progress,
                )
            except (AnalysisError, OptionError) as exc:
                raise CommandError(str(exc)) from None
        name = f"{study_obj.code} · command line"
        makers: dict[str, Callable[[], str | bytes]] = {
            "html": lambda: exports.report_html(run, name=name),
            "pdf": lambda: exports.report_pdf(run, name=name),
            "xlsx": lambda: exports.report_xlsx(run, name=name),
            "json": lambda: exports.report_json(run),
        }
        content = makers[format]()
        if output is None and format in ("html", "json"):
            self.stdout.write(cast(str, content), ending="")  # HTML and JSON are text
            return
        path = Path(output or f"{study_obj.code}-report.{format}")
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        source = "cache" if cached else f"computed in {run.duration_ms / 1000:.1f} s"
        self.stderr.write(f"{path}: {run.n_records} patients ({source})")
