"""Rules and lists that several apps use are declared once and read from there."""

from __future__ import annotations

from django.db import models

from analytics.datasets import DICTIONARIES
from casebook.forms import NpsleDiagnosisForm
from registry.choices import DiseaseArea
from registry.formatting import spreadsheet_safe, spreadsheet_unsafe
from registry.models import NpsleDiagnosis


def test_the_sle_organs_are_the_diagnosis_flags_and_every_user_of_them_reads_the_one_list():
    for name in NpsleDiagnosis.SLE_ORGANS:
        assert isinstance(NpsleDiagnosis._meta.get_field(name), models.BooleanField)
    form_fields = list(NpsleDiagnosisForm.base_fields)
    start = form_fields.index(NpsleDiagnosis.SLE_ORGANS[0])
    assert tuple(form_fields[start : start + len(NpsleDiagnosis.SLE_ORGANS)]) == NpsleDiagnosis.SLE_ORGANS
    columns = [variable.name for variable in DICTIONARIES[DiseaseArea.NPSLE]]
    assert set(NpsleDiagnosis.SLE_ORGANS) <= set(columns)


def test_spreadsheet_escaping_round_trips():
    for text in ("=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "\rx", "ok", "'quoted"):
        assert spreadsheet_unsafe(spreadsheet_safe(text)) == text
    assert spreadsheet_safe(-2) == -2
