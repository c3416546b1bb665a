"""Load the demo cohorts: ``python manage.py load_demo [--if-empty] [--patients N] [--only lm]``."""

from __future__ import annotations

import sys

from django.core import checks
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from tqdm import tqdm

from accounts.models import User
from accounts.services import system_user
from demo.common import ensure_sites_and_studies
from demo.icans import load_icans_cohort
from demo.lm import load_lm_cohort
from demo.npsle import DEFAULT_SEED, generate_npsle_cohort
from registry.models import Patient

COHORTS = ("lm", "npsle", "icans")


class Command(BaseCommand):
    help = (
        "Load the demo studies (LM: the 41 published patients; NPSLE: a seeded cohort; ICANS: 13 patients)."
    )
    # The model checks (registry.checks among them) guard what the loader writes. The URL checks
    # would import every view and with them pandas, SciPy, matplotlib and lifelines: 100 MiB of
    # peak memory (a third of the load at 10,000 patients) for a command that serves no page.
    requires_system_checks = [checks.Tags.models]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if any patient exists.")
        parser.add_argument("--patients", type=int, default=386, help="NPSLE cohort size (default 386).")
        parser.add_argument(
            "--seed", type=int, default=DEFAULT_SEED, help=f"NPSLE generator seed (default {DEFAULT_SEED})."
        )
        parser.add_argument(
            "--only", choices=COHORTS, action="append", help="Load only this cohort (repeatable)."
        )

    def handle(
        self, *args, if_empty: bool, patients: int, seed: int, only: list[str] | None, **options
    ) -> None:
        if if_empty and Patient.objects.exists():
            self.stdout.write("Demo data: the database already holds patients; nothing loaded.")
            return
        if patients < 1:
            self.stderr.write("--patients must be at least 1")
            sys.exit(2)
        wanted = only or list(COHORTS)
        with transaction.atomic():
            actor = system_user()
            studies = ensure_sites_and_studies(actor=actor)
            for code in wanted:
                if studies[code].patients.exists():
                    self.stdout.write(
                        f"{code}: already loaded ({studies[code].patients.count()} patients); skipped."
                    )
                    continue
                created = self._load(code, studies[code], actor=actor, patients=patients, seed=seed)
                self.stdout.write(self.style.SUCCESS(f"{code}: {created} patients loaded."))

    def _load(self, code: str, study, *, actor: User, patients: int, seed: int) -> int:
        total = {"lm": 41, "npsle": patients, "icans": 13}[code]
        with tqdm(
            total=total, desc=code, unit="patient", disable=not sys.stderr.isatty(), leave=False
        ) as bar:

            def progress(done: int) -> None:
                bar.update(done - bar.n)
                # With DEBUG on (make run's .env) Django keeps the last 9,000 statements, and a
                # chunk's bulk INSERTs run to megabytes each: 792 MiB at 100,000 patients, against
                # ~310 MiB with DEBUG off. Nothing reads the log of a load.
                connection.queries_log.clear()

            if code == "lm":
                return load_lm_cohort(study=study, actor=actor, progress=progress)
            if code == "npsle":
                return generate_npsle_cohort(
                    study=study, actor=actor, patients=patients, seed=seed, progress=progress
                )
            return load_icans_cohort(study=study, actor=actor)
