"""``python manage.py import_records FILE --study S [--site X] [--dry-run]`` (and REDCap exports)."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from accounts.models import Site
from accounts.services import system_user
from exchange.importer import Importer, ImportFileError, read_tables, sha256_of
from exchange.redcap import RedcapMappingError, redcap_tables
from registry.models import Study


class Command(BaseCommand):
    help = "Import records in the registry's exchange layout (CSV, XLSX, zip of CSVs) or a REDCap export."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "file", help="CSV (one table), XLSX (a sheet per table), zip of CSVs, or REDCap records CSV"
        )
        parser.add_argument("--study", required=True, help="The study's code")
        parser.add_argument(
            "--site", help="Import only into this site (its code); also the site of new patients"
        )
        parser.add_argument("--table", help="For a single CSV whose file name is not the table's name")
        parser.add_argument("--dry-run", action="store_true", help="Check and report; write nothing")
        parser.add_argument("--redcap-dictionary", help="REDCap data dictionary CSV (with --redcap-mapping)")
        parser.add_argument("--redcap-mapping", help="JSON file mapping REDCap fields to the exchange tables")

    def handle(
        self,
        *args,
        file: str,
        study: str,
        site: str | None,
        table: str | None,
        dry_run: bool,
        redcap_dictionary: str | None,
        redcap_mapping: str | None,
        **options,
    ) -> None:
        path = Path(file)
        if not path.exists():
            raise CommandError(f"No such file: {file}")
        study_obj, site_obj = _study_and_site(study, site)
        content = path.read_bytes()
        tables, notes, source = _read(path, content, table, redcap_dictionary, redcap_mapping)
        total = sum(len(rows) for rows in tables.values())
        with tqdm(total=total, unit="row", disable=not sys.stderr.isatty()) as bar:
            result = Importer(
                study=study_obj, actor=system_user(), site=site_obj, as_operator=True, progress=bar.update
            ).run(
                tables,
                dry_run=dry_run,
                file_name=path.name,
                sha256=sha256_of(content),
                source_format=source,
                notes=notes,
            )
        self._report(result, dry_run=dry_run)

    def _report(self, result, *, dry_run: bool) -> None:
        """What the import did, table by table; its errors (and then a failing exit) if it refused."""
        for note in result.notes:
            self.stdout.write(f"note: {note}")
        for name, counts in result.summary().items():
            self.stdout.write(
                f"{name}: {counts['created']} created, {counts['changed']} changed, "
                f"{counts['unchanged']} unchanged"
            )
        for change in [c for c in result.changes if c.startswith("changed")][:200]:
            self.stdout.write(f"  {change}")
        if result.issues:
            for issue in result.issues:
                self.stderr.write(f"error: {issue}")
            raise CommandError(
                f"{len(result.issues)} error(s): nothing was written (import #{result.batch.pk})."
            )
        verdict = "dry run: nothing was written" if dry_run else "applied"
        self.stdout.write(self.style.SUCCESS(f"Import #{result.batch.pk} {verdict}."))


def _study_and_site(study: str, site: str | None) -> tuple[Study, Site | None]:
    study_obj = Study.objects.filter(code=study).first()
    if study_obj is None:
        raise CommandError(f"No study with the code {study!r}")
    if not site:
        return study_obj, None
    site_obj = Site.objects.filter(code=site).first()
    if site_obj is None:
        raise CommandError(f"No site with the code {site!r}")
    return study_obj, site_obj


def _read(path: Path, content: bytes, table, redcap_dictionary, redcap_mapping) -> tuple[dict, list, str]:
    """The file's tables, notes about them, and its format (a REDCap export, or the exchange layout)."""
    try:
        if redcap_dictionary or redcap_mapping:
            if not (redcap_dictionary and redcap_mapping):
                raise CommandError("A REDCap import needs both --redcap-dictionary and --redcap-mapping.")
            tables, notes = redcap_tables(
                content, Path(redcap_dictionary).read_bytes(), Path(redcap_mapping).read_bytes()
            )
            return tables, notes, "redcap"
        tables, notes = read_tables(path.name, content, table=table)
        return tables, notes, path.suffix.lstrip(".").lower()
    except (ImportFileError, RedcapMappingError) as error:
        raise CommandError(str(error)) from error
