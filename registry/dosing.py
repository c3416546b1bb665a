"""Intrathecal dose limits: the one table that validation, forms and protocols share.

Caps are per injection, in mg. A dose above the cap is refused with a message that names the likely
mistake (a systemic dose, or a µg/mg or decimal-point slip).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .choices import IntrathecalDrug
from .formatting import plain


@dataclass(frozen=True)
class IntrathecalDoseLimit:
    drug: IntrathecalDrug
    max_mg: Decimal
    note: str


#: Absolute per-injection caps (clinical_reference §7 and the seed protocols).
INTRATHECAL_DOSE_LIMITS: dict[str, IntrathecalDoseLimit] = {
    limit.drug: limit
    for limit in (
        IntrathecalDoseLimit(
            IntrathecalDrug.METHOTREXATE, Decimal("15"), "preservative-free only; 12 mg in LM"
        ),
        IntrathecalDoseLimit(IntrathecalDrug.DEXAMETHASONE, Decimal("20"), "10 mg with MTX in NPSLE"),
        IntrathecalDoseLimit(IntrathecalDrug.PEMETREXED, Decimal("50"), "10 mg rising by 5 mg to 50 mg"),
        IntrathecalDoseLimit(IntrathecalDrug.CYTARABINE, Decimal("100"), "30–50 mg usual adult dose"),
        IntrathecalDoseLimit(IntrathecalDrug.LIPOSOMAL_CYTARABINE, Decimal("50"), "50 mg every 14 days"),
    )
}


def dose_cap_mg(drug: str) -> Decimal | None:
    """The absolute intrathecal cap for a drug, or None for drugs without a registry cap (other)."""
    limit = INTRATHECAL_DOSE_LIMITS.get(drug)
    return limit.max_mg if limit else None


def dose_cap_message(drug: str, dose_mg: Decimal) -> str | None:
    """A plain-language refusal when a dose exceeds its drug's cap, else None."""
    cap = dose_cap_mg(drug)
    if cap is None or dose_mg <= cap:
        return None
    label = IntrathecalDrug(drug).label
    hint = "Is this a systemic dose, or was it entered in the wrong unit (µg instead of mg)?"
    for factor in (10, 100, 1000):
        if dose_mg / factor <= cap and dose_mg % factor == 0:
            hint = f"Did you mean {plain(dose_mg / factor)} mg? (The value looks {factor}× too large.)"
            break
    return (
        f"{label} {plain(dose_mg)} mg is above the intrathecal limit of {plain(cap)} mg per injection. {hint}"
    )


@dataclass(frozen=True)
class EscalationRule:
    """Start at ``start_mg`` and add ``step_mg`` per injection up to ``cap_mg``.

    After a severe toxicity (grade ≥3 myelosuppression for intrathecal pemetrexed) the dose returns
    to the previous level and does not rise above it again.
    """

    start_mg: Decimal
    step_mg: Decimal
    cap_mg: Decimal

    def next_dose(
        self, previous_mg: Decimal | None, *, ceiling_mg: Decimal | None, step_back: bool
    ) -> tuple[Decimal, Decimal | None]:
        """The next dose and the (possibly lowered) ceiling, given the last dose actually given."""
        if previous_mg is None:
            return self.start_mg, ceiling_mg
        if step_back:
            lowered = max(self.start_mg, previous_mg - self.step_mg)
            return lowered, lowered
        limit = min(self.cap_mg, ceiling_mg) if ceiling_mg is not None else self.cap_mg
        return min(limit, previous_mg + self.step_mg), ceiling_mg
