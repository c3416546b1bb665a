"""``python manage.py data_dictionary [AREA]``: the analysis variables as a Markdown table."""

from django.core.management.base import BaseCommand, CommandParser

from analytics.datasets import DICTIONARIES
from registry.choices import DiseaseArea


def markdown_table(area: str) -> str:
    lines = ["| name | label | unit | derivation |", "|---|---|---|---|"]
    for variable in DICTIONARIES[area]:
        cells = (variable.name, variable.label, variable.unit, variable.derivation)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Print the data dictionary of a disease area's analysis dataset as Markdown."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("area", nargs="?", choices=DiseaseArea.values, help="Default: all three.")

    def handle(self, *args, area: str | None, **options) -> None:
        for code in [area] if area else DiseaseArea.values:
            self.stdout.write(f"#### {DiseaseArea(code).label} (`{code}`)\n\n{markdown_table(code)}\n")
