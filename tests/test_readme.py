"""The README documents what exists: the data dictionary is the one the code builds."""

from io import StringIO
from pathlib import Path

from django.core.management import call_command

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_data_dictionary_is_current():
    text = README.read_text(encoding="utf-8")
    start, end = "<!-- data-dictionary:start -->", "<!-- data-dictionary:end -->"
    documented = text[text.index(start) + len(start) : text.index(end)].strip()
    out = StringIO()
    call_command("data_dictionary", stdout=out)
    assert documented == out.getvalue().strip(), "refresh the README with: python manage.py data_dictionary"


def test_readme_names_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert "make run" in text and "make test" in text
