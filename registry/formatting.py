"""How values are shown to people: numbers as entered, text safe to open in a spreadsheet."""

from decimal import Decimal
from typing import Any

#: What a spreadsheet reads as the start of a formula (CSV/formula injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def plain(value: Decimal | int | float | None) -> str:
    """0.620 → '0.62', 10.00 → '10', 1E+1 → '10'; None → '—'."""
    if value is None:
        return "—"
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    text = format(value.normalize(), "f")
    return text


def spreadsheet_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading apostrophe; other values pass as they are.

    Every download that can open in a spreadsheet (exports, report CSV/XLSX, the audit CSV) uses it.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def spreadsheet_unsafe(text: str) -> str:
    """Undo ``spreadsheet_safe`` on import, so an exported file imports to the same values."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_PREFIXES) else text


def sentence(text: str) -> str:
    """'SLEDAI-2K assessment' stays, 'adverse event' → 'Adverse event': only the first letter is raised
    (``str.capitalize`` would lower the rest: 'Sledai-2k', 'Opening pressure (mmh2o)')."""
    text = str(text)
    return text[:1].upper() + text[1:]
