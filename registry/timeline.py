"""Time conventions shared by the demo loaders and the analysis datasets.

A month is 365.25 / 12 = 30.4375 days, the convention of R's and SPSS users converting days to
months; a year is 365.25 days. Dates are whole days, so a month figure rebuilt from dates is within
0.5 / 30.4375 ≈ 0.016 months of the original.
"""

from __future__ import annotations

DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = DAYS_PER_YEAR / 12  # 30.4375


def months_to_days(months: float) -> int:
    return round(months * DAYS_PER_MONTH)
