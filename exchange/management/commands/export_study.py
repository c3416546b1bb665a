"""``python manage.py export_study STUDY --format csv|xlsx|sav|dta --output PATH [--identified] ...``."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts.services import system_user
from analytics.deidentify import DateHandling
from exchange.export import (
    ExportOptions,
    export_record,
    export_tables,
    to_csv_zip,
    to_statistics_zip,
    to_xlsx,
)
from registry.models import Study

WRITERS = {
    "csv": lambda study, tables, options: to_csv_zip(study, tables, options),
    "xlsx": lambda study, tables, options: to_xlsx(study, tables, options),
    "sav": lambda study, tables, options: to_statistics_zip(study, tables, options, "sav"),
    "dta": lambda study, tables, options: to_statistics_zip(study, tables, options, "dta"),
}


class Command(BaseCommand):
    help = "Export a study: the exchange tables, the analysis dataset and the data dictionary (de-identified by default)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("study")
        parser.add_argument("--format", choices=sorted(WRITERS), default="csv")
        parser.add_argument("--output", required=True)
        parser.add_argument(
            "--identified", action="store_true", help="Exact dates, identifiers and free text"
        )
        parser.add_argument(
            "--dates", choices=[d.value for d in DateHandling], help="Default: shift (exact if identified)"
        )
        parser.add_argument(
            "--free-text", action="store_true", help="Include free text in a de-identified export"
        )
        parser.add_argument(
            "--reason", default="", help="Why identified data are exported (required with --identified)"
        )

    def handle(
        self,
        *args,
        study: str,
        format: str,
        output: str,
        identified: bool,
        dates: str | None,
        free_text: bool,
        reason: str,
        **options,
    ) -> None:
        study_obj = Study.objects.filter(code=study).first()
        if study_obj is None:
            raise CommandError(f"No study with the code {study!r}")
        handling = (
            DateHandling(dates) if dates else (DateHandling.EXACT if identified else DateHandling.SHIFT)
        )
        try:
            export_options = ExportOptions(
                identified=identified, free_text=free_text, dates=handling, reason=reason
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        tables = export_tables(study_obj, user=None, options=export_options)  # the operator: every site
        content = WRITERS[format](study_obj, tables, export_options)
        Path(output).write_bytes(content)
        export_record(study_obj, tables, export_options, fmt=format, user=system_user())
        self.stdout.write(
            self.style.SUCCESS(f"Wrote {output} ({len(content):,} bytes, {len(tables[0].rows)} patients).")
        )
