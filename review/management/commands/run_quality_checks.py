"""``python manage.py run_quality_checks [--study CODE]``: the nightly data-quality pass."""

import sys

from django.core.management.base import BaseCommand
from tqdm import tqdm

from registry.models import Patient
from review.rules import check_patient


class Command(BaseCommand):
    help = "Run the data-quality rules for every patient (or one study): open new rule queries, close resolved ones."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--study", help="Only this study's patients (its code).")

    def handle(self, *args, study: str | None, **options) -> None:
        patients = Patient.objects.select_related("study").order_by("pk")
        if study:
            patients = patients.filter(study__code=study)
        opened = closed = 0
        for patient in tqdm(
            patients.iterator(), total=patients.count(), disable=not sys.stderr.isatty(), unit="patient"
        ):
            new, resolved = check_patient(patient)
            opened, closed = opened + new, closed + resolved
        self.stdout.write(
            f"Data-quality checks: {opened} new queries opened, {closed} resolved queries closed."
        )
