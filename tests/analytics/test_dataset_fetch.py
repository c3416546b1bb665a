"""The dataset's columnar fetch (PostgreSQL's COPY) gives the frame the rows give, value for value,
dtype for dtype and Python type for Python type (``analytics.datasets.fetch``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pandas as pd
import pytest
from django.db import connection, transaction
from django.utils import timezone

from analytics.datasets import build_dataset, fetch
from registry.choices import DiseaseArea
from registry.models import LumbarPuncture, Patient, Study
from tests import factories as f
from tests.replay import demo_studies_replayed

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's"),
]

#: Text a spreadsheet, a CSV or COPY's own format could trip on.
TRICKY = [
    "",
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "back\\slash",
    "\\N",
    "\\\\N",
    "\\",
    'quote " ,;',
    "é ü 中",
    "=1+1",
]


def assert_identical(copied: pd.DataFrame, rows: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(copied, rows, check_exact=True)
    assert copied.attrs == rows.attrs
    for column in copied.columns:
        assert str(copied[column].dtype) == str(rows[column].dtype), column
        if copied[column].dtype == object:
            assert [type(v) for v in copied[column]] == [type(v) for v in rows[column]], column
            assert [v is None for v in copied[column]] == [v is None for v in rows[column]], column


def both_ways(monkeypatch, read):
    """``read()`` with the columnar fetch (which must have copied something), then with the rows."""
    copies = []
    copy_out = fetch._copy_out

    def counted(compiler) -> bytes:
        copies.append(compiler)
        return copy_out(compiler)

    monkeypatch.setattr(fetch, "_copy_out", counted)
    copied = read()
    assert copies, "nothing was read by COPY"
    monkeypatch.setattr(fetch, "COPY_FETCH", False)
    rows = read()
    monkeypatch.setattr(fetch, "COPY_FETCH", True)
    return copied, rows


def npsle_study(code: str) -> Study:
    study = f.StudyFactory(code=code, disease_area=DiseaseArea.NPSLE)
    assert isinstance(study, Study)
    return study


@pytest.fixture(scope="module")
def demo_studies(django_db_setup, django_db_blocker) -> Iterator[dict[str, Study]]:
    """The three demo studies (NPSLE at 150 patients, as the report tests have them: the load is
    replayed, ``tests.replay``), rolled back after the module."""
    with django_db_blocker.unblock(), transaction.atomic():
        demo_studies_replayed(npsle_patients=150)
        yield {study.code: study for study in Study.objects.all()}
        transaction.set_rollback(True)


@pytest.mark.parametrize("code", ["npsle", "lm", "icans"])
def test_every_study_dataset_is_the_same_either_way(demo_studies, monkeypatch, code):
    study = demo_studies[code]
    copied, rows = both_ways(monkeypatch, lambda: build_dataset(study))
    assert len(copied) == study.patients.count()
    assert_identical(copied, rows)


def test_site_scope_and_filters_stay_the_same(demo_studies, monkeypatch):
    study = demo_studies["npsle"]
    site = study.sites.order_by("code").first()
    seen = Patient.objects.filter(site=site)

    def read():
        return build_dataset(study, patients=seen, filters={"sex_male": 1})

    copied, rows = both_ways(monkeypatch, read)
    assert 0 < len(copied) < study.patients.count()
    assert set(copied["site"]) == {site.code}
    assert_identical(copied, rows)


def test_patients_without_records_and_an_empty_scope(monkeypatch):
    study = npsle_study("npsle-empty")
    f.PatientFactory(study=study)
    f.PatientFactory(study=study)
    assert_identical(*both_ways(monkeypatch, lambda: build_dataset(study)))
    nobody = Patient.objects.none()
    assert_identical(*both_ways(monkeypatch, lambda: build_dataset(study, patients=nobody)))


def test_text_nulls_and_left_joins_read_back_exactly(monkeypatch):
    """Tabs, newlines, backslashes, a literal \\N, empty text and NULLs from a LEFT JOIN."""
    study = npsle_study("npsle-text")
    patient = f.PatientFactory(study=study)
    f.NpsleDiagnosisFactory(patient=f.PatientFactory(study=study))
    start = timezone.make_aware(dt.datetime(2021, 3, 1, 9, 30, 15, 123456))
    for number, text in enumerate(TRICKY):
        lp = f.LumbarPunctureFactory(
            patient=patient, performed_at=start + dt.timedelta(days=number), other_complication=text
        )
        if number % 2:
            f.CsfResultFactory(lumbar_puncture=lp, ngs_findings=text, protein_g_per_l=Decimal("0.45"))
    columns = [
        "other_complication",
        "csf__ngs_findings",
        "csf__cytology",
        "csf__protein_g_per_l",
        "performed_at",
        "low_icp",
        "patient__npsle_diagnosis__fever",
        "patient__discharge__discharge_date",
        "patient__birth_date",
    ]
    queryset = LumbarPuncture.objects.filter(patient__study=study).order_by("performed_at")

    def read():
        return fetch.values_frame(queryset.values_list(*columns), columns)

    copied, rows = both_ways(monkeypatch, read)
    assert list(copied["other_complication"]) == TRICKY
    assert copied["csf__ngs_findings"].tolist()[1::2] == TRICKY[1::2]
    assert copied["csf__ngs_findings"].tolist()[0::2] == [None] * len(TRICKY[0::2])
    assert str(copied["performed_at"].dtype) == "datetime64[ns, UTC]"
    assert copied["performed_at"].iloc[0] == pd.Timestamp(start)
    assert_identical(copied, rows)
