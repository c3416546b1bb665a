"""How numbers are shown to people: as entered, without the database's trailing zeros."""

from decimal import Decimal


def plain(value: Decimal | int | float | None) -> str:
    """0.620 → '0.62', 10.00 → '10', 1E+1 → '10'; None → '—'."""
    if value is None:
        return "—"
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    text = format(value.normalize(), "f")
    return text
