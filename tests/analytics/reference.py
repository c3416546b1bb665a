"""The shared reference data sets with R's results, and a comparison that knows R's NA."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

ESTIMATE_RTOL = 1e-4
P_VALUE_RTOL = 1e-3


@dataclass(frozen=True)
class Reference:
    name: str
    data: pd.DataFrame
    r: dict[str, Any]


def r_missing(value: Any) -> bool:
    return value is None or value == "NA"


def assert_r_value(actual: Any, expected: Any, *, rtol: float = ESTIMATE_RTOL) -> None:
    """Equal within a relative tolerance; where R gave NA the result must be missing too."""
    if r_missing(expected):
        assert actual is None or math.isnan(actual), f"R gives NA, got {actual}"
    else:
        assert actual == pytest.approx(expected, rel=rtol)


def load_cohort(shared_dir: Path, number: int) -> Reference:
    data = pd.read_csv(shared_dir / "reference" / f"cohort_{number}.csv")
    data["inc_protein"] = (data["protein_baseline"] > 0.5).astype(int)
    data["inc_icp"] = (data["icp_baseline"] > 180).astype(int)
    results = json.loads((shared_dir / "reference" / f"cohort_{number}.r.json").read_text())
    return Reference(f"cohort_{number}", data, results)


def load_lm_nsclc(shared_dir: Path) -> Reference:
    """The published 41-patient table: "+" marks censoring; IP/IM/BEV tokens name the drugs."""
    raw = pd.read_csv(shared_dir / "data" / "lm_nsclc_41.csv", dtype=str)
    data = pd.DataFrame(index=raw.index)
    for column in ("os", "ipfs"):
        text = raw[column].str.strip()
        data[column] = text.str.rstrip("+").astype(float)
        data[f"{column}_event"] = (~text.str.endswith("+")).astype(int)
    regimen = raw["systemic_during_ic"].str.split("+").apply(lambda parts: {p.strip() for p in parts})
    data["it_drug"] = regimen.apply(lambda parts: "pemetrexed" if "IP" in parts else "methotrexate")
    assert regimen.apply(lambda parts: ("IP" in parts) != ("IM" in parts)).all()
    data["bevacizumab"] = regimen.apply(lambda parts: int("BEV" in parts))
    results = json.loads((shared_dir / "reference" / "lm_nsclc_41.r.json").read_text())
    return Reference("lm_nsclc_41", data, results)
