"""Configurable thresholds of the safety checks, in one place (named, with their units).

A protocol may set its own platelet threshold (``Protocol.min_platelets_1e9_per_l``); the others
apply to every intrathecal injection. Change a value here and every check, page and API answer
follows.
"""

from __future__ import annotations

from decimal import Decimal

from registry import csf_limits

#: Platelets (×10⁹/L) below which an injection needs an override. CTCAE v5 grade 3 starts below 50.
PLATELET_THRESHOLD_1E9_PER_L = Decimal("50")

#: Opening pressure (mmH2O) below which the lumbar puncture shows low intracranial pressure: the
#: registry's one definition (registry.csf_limits), which the NPSLE report's safety table also uses.
LOW_ICP_MMH2O = csf_limits.LOW_ICP_MMH2O

#: CTCAE grade from which a cytopenia (white cells, neutrophils, platelets) blocks the next dose.
SEVERE_CYTOPENIA_GRADE = 3

#: For a first injection, how far back "since the last dose" reaches for blood counts and cytopenias.
FIRST_DOSE_LOOKBACK_DAYS = 14

#: Ratios between an entered and a proposed dose that look like a unit or decimal-point slip.
UNIT_SLIP_FACTORS = (10, 100, 1000)
#: How close to an exact factor the ratio must be (a relative tolerance).
UNIT_SLIP_TOLERANCE = Decimal("0.05")

#: How far ahead a course may be planned: its start date at most this many days from today.
PLAN_AHEAD_MAX_DAYS = 365

#: Injections planned ahead in a phase that runs until the course is stopped (the plan rolls on).
OPEN_PHASE_LOOKAHEAD = 3

#: Pemetrexed outside a course still needs folic acid and vitamin B12: vitamin B12 counts as
#: current for this many days after an injection (every 9 weeks in the seed LM protocol).
VITAMIN_B12_REPEAT_DAYS = 63
