"""Install the seed protocols: ``python manage.py load_protocols [--fixture PATH]``."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from protocols.seed import SEED_FIXTURE, ensure_seed_protocols


class Command(BaseCommand):
    help = "Install the seed protocols (NPSLE, LM pemetrexed and methotrexate, ICANS) and formulations."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fixture", type=Path, default=SEED_FIXTURE, help="A protocol fixture file.")

    def handle(self, *args, fixture: Path, **options) -> None:
        if not fixture.exists():
            raise CommandError(f"No fixture at {fixture}.")
        try:
            installed = ensure_seed_protocols(path=fixture)
        except ValidationError as exc:
            raise CommandError(f"The fixture does not validate: {exc.message_dict}") from exc
        for code, protocol in installed.items():
            self.stdout.write(f"{code}: {protocol or 'no active version'}")
