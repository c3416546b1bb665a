"""``python manage.py run_quality_checks [--study CODE]``: the nightly data-quality pass."""

import sys

from django.core.management.base import BaseCommand
from tqdm import tqdm

from registry.models import Patient
from review.sweep import sweep


class Command(BaseCommand):
    help = "Run the data-quality rules for every patient (or one study): open new rule queries, close resolved ones."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--study", help="Only this study's patients (its code).")

    def handle(self, *args, study: str | None, **options) -> None:
        patients = Patient.objects.all()
        if study:
            patients = patients.filter(study__code=study)
        with tqdm(total=patients.count(), disable=not sys.stderr.isatty(), unit="patient") as bar:
            result = sweep(patients, lambda done, total: bar.update(1))
        self.stdout.write(
            f"Data-quality checks: {result.opened} new queries opened, {result.closed} resolved queries closed."
        )
