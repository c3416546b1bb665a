"""``python manage.py export_study STUDY --format csv|xlsx|sav|dta --output PATH [--identified] ...``."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts.services import system_user
from analytics.deidentify import DateHandling
from exchange.export import ExportOptions, export_record, export_tables
from exchange.jobs import write_export_to
from registry.models import Study

FORMATS = ("csv", "dta", "sav", "xlsx")


class Command(BaseCommand):
    help = "Export a study: the exchange tables, the analysis dataset and the data dictionary (de-identified by default)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("study")
        parser.add_argument("--format", choices=FORMATS, default="csv")
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
        # The operator: every site. The file is written as it is made (streamed, flat memory).
        tables = export_tables(study_obj, user=None, options=export_options, stream=True)
        with Path(output).open("wb") as out:
            write_export_to(study_obj, tables, export_options, format, out)
        export_record(study_obj, tables, export_options, fmt=format, user=system_user())
        patients = len(tables[0].patients or ())
        size = Path(output).stat().st_size
        self.stdout.write(self.style.SUCCESS(f"Wrote {output} ({size:,} bytes, {patients} patients)."))
