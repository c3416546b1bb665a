"""Missing-data codes leave the registry as user-missing values: SPSS declares them missing (a range
of labelled numbers), Stata as labelled extended missing values (.a NA, .b UNK, .c NASK, .d ND); CSV
and the workbook carry them as the labelled JSON column ``missing_codes``. Values are untouched."""

import csv
import datetime as dt
import io
import json
import math
import zipfile
from decimal import Decimal

import pandas as pd
import pyreadstat
import pytest

from analytics.deidentify import DateHandling
from exchange.export import ExportOptions, _user_missing, export_tables, stream_csv_zip, to_statistics_zip
from tests import factories as f

pytestmark = pytest.mark.django_db

OPTIONS = ExportOptions()  # de-identified, dates shifted: what a researcher takes
DAYS = ExportOptions(dates=DateHandling.DAYS)


@pytest.fixture
def study():
    """Two patients: one whose optional fields carry codes (a number, a coded choice, a date), one
    with ordinary values in the same fields."""
    study = f.StudyFactory(code="codes", sites=[f.SiteFactory(code="north")])
    site = study.sites.get()
    coded = f.PatientFactory(study=study, site=site, study_code="P-01")
    plain = f.PatientFactory(study=study, site=site, study_code="P-02")
    lp = f.LumbarPunctureFactory(
        patient=coded, opening_pressure_mmh2o=None, missing_codes={"opening_pressure_mmh2o": "UNK"}
    )
    f.LumbarPunctureFactory(patient=plain, opening_pressure_mmh2o=210)
    f.IntrathecalDoseFactory(
        lumbar_puncture=lp, volume_ml=None, diluent="", missing_codes={"volume_ml": "NA", "diluent": "NASK"}
    )
    f.IntrathecalDoseFactory(
        lumbar_puncture=plain.lumbar_punctures.get(), volume_ml=Decimal("5"), diluent="saline_pf"
    )
    f.SystemicTherapyFactory(patient=coded, end_date=None, missing_codes={"end_date": "ND"})
    f.SystemicTherapyFactory(patient=plain)
    return study


def _member(archive: bytes, name: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return opened.read(name)


def _read(study, kind, tmp_path, table, options=OPTIONS):
    archive = to_statistics_zip(study, export_tables(study, user=None, options=options), options, kind)
    path = tmp_path / f"{table}.{kind}"
    path.write_bytes(_member(archive, f"{table}.{kind}"))
    reader = pyreadstat.read_sav if kind == "sav" else pyreadstat.read_dta
    with_codes, meta = reader(str(path), user_missing=True)
    as_missing, _ = reader(str(path))
    return with_codes, as_missing, meta, archive


def _row(frame, code):
    return frame[frame["study_code"] == code].iloc[0]


def test_spss_declares_the_codes_user_missing_with_their_labels(study, tmp_path):
    lps, lps_missing, meta, archive = _read(study, "sav", tmp_path, "lumbar_punctures")
    assert _row(lps, "P-01")["opening_pressure_mmh2o"] == -99992
    assert meta.variable_value_labels["opening_pressure_mmh2o"][-99992] == "UNK unknown"
    assert meta.missing_ranges["opening_pressure_mmh2o"] == [{"lo": -99994.0, "hi": -99991.0}]
    assert math.isnan(_row(lps_missing, "P-01")["opening_pressure_mmh2o"])  # missing to SPSS
    assert _row(lps, "P-02")["opening_pressure_mmh2o"] == 210  # ordinary values untouched
    assert _row(lps_missing, "P-02")["opening_pressure_mmh2o"] == 210

    doses, doses_missing, meta, _ = _read(study, "sav", tmp_path, "intrathecal_doses")
    coded, plain = _row(doses, "P-01"), _row(doses, "P-02")
    assert (
        coded["volume_ml"] == -99991
        and meta.variable_value_labels["volume_ml"][-99991] == "NA not applicable"
    )
    # A coded choice keeps its numbered labels beside the code's.
    labels = meta.variable_value_labels["diluent"]
    assert coded["diluent"] == -99993 and labels[-99993] == "NASK not asked"
    assert labels[plain["diluent"]] == "Preservative-free 0.9% saline"
    assert plain["volume_ml"] == 5
    assert math.isnan(_row(doses_missing, "P-01")["diluent"])

    therapies, therapies_missing, meta, _ = _read(study, "sav", tmp_path, "systemic_therapies")
    # A date column's codes are the same numbers of seconds from SPSS's epoch (14 Oct 1582).
    assert meta.missing_ranges["end_date"] == [
        {"lo": dt.datetime(1582, 10, 12, 20, 13, 26), "hi": dt.datetime(1582, 10, 12, 20, 13, 29)}
    ]
    assert list(meta.variable_value_labels["end_date"].items()) == [(-99994.0, "ND not done")]
    assert pd.isna(_row(therapies_missing, "P-01")["end_date"])
    assert pd.Timestamp(_row(therapies, "P-02")["end_date"]).year > 2000  # a real (shifted) date

    about = _member(archive, "ABOUT.txt").decode()
    assert (
        "SPSS user-missing values with value labels (-99991 NA, -99992 UNK, -99993 NASK, -99994 ND" in about
    )


def test_stata_gives_the_codes_as_labelled_extended_missing_values(study, tmp_path):
    lps, lps_missing, meta, archive = _read(study, "dta", tmp_path, "lumbar_punctures")
    assert _row(lps, "P-01")["opening_pressure_mmh2o"] == "b"  # .b: the second code, UNK
    assert meta.missing_user_values["opening_pressure_mmh2o"] == ["b"]
    assert meta.variable_value_labels["opening_pressure_mmh2o"] == {"b": "UNK unknown"}
    assert pd.isna(_row(lps_missing, "P-01")["opening_pressure_mmh2o"])
    assert _row(lps, "P-02")["opening_pressure_mmh2o"] == 210

    doses, _, meta, _ = _read(study, "dta", tmp_path, "intrathecal_doses")
    coded, plain = _row(doses, "P-01"), _row(doses, "P-02")
    assert (coded["volume_ml"], coded["diluent"]) == ("a", "c")
    assert meta.variable_value_labels["volume_ml"] == {"a": "NA not applicable"}
    assert meta.variable_value_labels["diluent"]["c"] == "NASK not asked"
    assert meta.variable_value_labels["diluent"][plain["diluent"]] == "Preservative-free 0.9% saline"
    assert plain["volume_ml"] == 5

    therapies, therapies_missing, meta, _ = _read(study, "dta", tmp_path, "systemic_therapies")
    assert _row(therapies, "P-01")["end_date"] == "d"
    assert meta.variable_value_labels["end_date"] == {"d": "ND not done"}
    assert meta.original_variable_types["end_date"].startswith("%t")  # still a date variable
    assert pd.Timestamp(_row(therapies_missing, "P-02")["end_date"]).year > 2000
    assert ".a NA, .b UNK, .c NASK, .d ND" in _member(archive, "ABOUT.txt").decode()


@pytest.mark.parametrize("kind", ["sav", "dta"])
def test_codes_in_days_from_index_columns_too(study, tmp_path, kind):
    therapies, as_missing, meta, _ = _read(study, kind, tmp_path, "systemic_therapies", options=DAYS)
    assert _row(therapies, "P-01")["end_date"] == (-99994 if kind == "sav" else "d")
    assert pd.isna(_row(as_missing, "P-01")["end_date"])
    assert _row(therapies, "P-02")["end_date"] == 2  # two days after the index admission


def test_csv_carries_the_codes_in_the_labelled_column(study):
    tables = export_tables(study, user=None, options=OPTIONS)
    with zipfile.ZipFile(io.BytesIO(b"".join(stream_csv_zip(study, tables, OPTIONS)))) as archive:
        doses = list(csv.DictReader(io.StringIO(archive.read("intrathecal_doses.csv").decode())))
        dictionary = list(csv.DictReader(io.StringIO(archive.read("data_dictionary.csv").decode())))
    coded = next(row for row in doses if row["study_code"] == "P-01")
    assert coded["volume_ml"] == "" and json.loads(coded["missing_codes"]) == {
        "diluent": "NASK",
        "volume_ml": "NA",
    }
    label = next(
        r["label"] for r in dictionary if (r["table"], r["column"]) == ("intrathecal_doses", "missing_codes")
    )
    assert label.startswith("Missing-data codes: JSON {column: code}") and "ND not done" in label


def test_a_real_value_in_the_range_kept_for_codes_is_refused_not_exported_as_missing():
    frame = pd.DataFrame({"days": [-99992.0, None], "missing_codes": ["{}", json.dumps({"days": "ND"})]})
    with pytest.raises(
        ValueError, match="days: the value -99992.0 is in the range kept for missing-data codes"
    ):
        _user_missing(frame, {}, "sav")
    frame.loc[0, "days"] = -12.0  # an ordinary value: kept as it is
    assert _user_missing(frame, {}, "sav") == {"days": [{"lo": -99994, "hi": -99991}]}
    assert frame["days"].tolist() == [-12.0, -99994.0]
