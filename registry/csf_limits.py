"""Every CSF and opening-pressure limit, in one place, named for what it decides.

Three kinds of limit, deliberately different, each used by everything that asks its question:

- **Entry limits**: outside them a value is impossible or a unit slip and is refused (field
  validators, with the database constraint as the backstop for the same range).
- **Review outliers**: accepted on entry, but an automatic query asks for a second look (review rules).
- **Study definitions**: the cut-offs the registry's studies publish ("raised" and "low"), used by
  the analysis datasets, the reports and the safety checks. The NPSLE study (Tables 1 and 3
  footnotes) defines raised ICP as > 180 mmH2O and raised CSF protein as > 0.5 g/L, and low ICP
  after a lumbar puncture as < 80 mmH2O. These are fixed study definitions, not the reporting
  laboratory's reference range (which ``CsfResult`` stores per report).
"""

from __future__ import annotations

from decimal import Decimal

# --- entry limits -----------------------------------------------------------------------------
#: Below this an opening or closing pressure was almost surely typed in cmH2O or kPa.
OPENING_PRESSURE_MIN_MMH2O = 30
#: Above this a manometer cannot read: refused by the validator and by the database constraint.
OPENING_PRESSURE_MAX_MMH2O = 800
#: Above this a CSF protein is mg/dL or mg/L typed as g/L.
PROTEIN_MAX_G_PER_L = Decimal("10")
#: Above this a CSF glucose is mg/dL typed as mmol/L.
GLUCOSE_MAX_MMOL_PER_L = Decimal("30")
#: Outside this a CSF chloride is not a chloride in mmol/L.
CHLORIDE_RANGE_MMOL_PER_L = (Decimal("70"), Decimal("180"))

# --- review outliers (a query, not a refusal) -------------------------------------------------
OPENING_PRESSURE_REVIEW_ABOVE_MMH2O = 400
PROTEIN_REVIEW_ABOVE_G_PER_L = Decimal("3")
WBC_REVIEW_ABOVE_1E6_PER_L = Decimal("500")
GLUCOSE_REVIEW_BELOW_MMOL_PER_L = Decimal("1.0")

# --- study definitions ------------------------------------------------------------------------
#: Raised intracranial pressure: opening pressure above this (NPSLE study).
RAISED_ICP_MMH2O = 180
#: Low intracranial pressure after a lumbar puncture: opening pressure below this (NPSLE study's
#: safety definition; also the safety check before an intrathecal injection).
LOW_ICP_MMH2O = 80
#: Raised CSF protein: above this (NPSLE study).
RAISED_PROTEIN_G_PER_L = Decimal("0.5")
