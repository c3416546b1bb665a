"""Cohort filters: one syntax for the page and the command line, one JSON form for definitions."""

from __future__ import annotations

import datetime as dt

import pytest

from accounts.models import Site
from analytics.datasets import DICTIONARIES
from analytics.forms import ReportFilterForm
from analytics.reports.filters import (
    FilterError,
    as_line,
    canonical,
    describe,
    for_dataset,
    parse_condition,
)
from analytics.reports.lm import LmReport
from analytics.reports.npsle import NpsleReport
from registry.choices import DiseaseArea
from registry.models import Study

LM = DICTIONARIES[DiseaseArea.LM]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("age>=18", ("age", {"op": ">=", "value": 18})),
        ("age < 65.5", ("age", {"op": "<", "value": 65.5})),
        ("sex_male=1", ("sex_male", 1)),
        ("mutation_class=EGFR,ALK", ("mutation_class", ["EGFR", "ALK"])),
        ("site=north", ("site", ["north"])),
        ("it_drug==pemetrexed", ("it_drug", ["pemetrexed"])),
        ("index_from=2020-01-31", ("index_from", "2020-01-31")),
        ("ecog!=0", ("ecog", {"op": "!=", "value": 0})),
    ],
)
def test_conditions_parse_into_the_stored_form(text, parsed):
    assert parse_condition(text, LM) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("age", "not a condition"),
        ("weight>=3", "no column 'weight'"),
        ("age>=old", "age is a number"),
        ("histology>=3", "needs one number"),
        ("index_to<2020-01-01", "takes a date"),
        ("index_from=31/01/2020", "YYYY-MM-DD"),
        ("site>north", "one or more values"),
    ],
)
def test_bad_conditions_say_what_to_write(text, message):
    with pytest.raises(FilterError, match=message):
        parse_condition(text, LM)


def test_the_stored_form_round_trips_and_feeds_apply_filters():
    filters = canonical(
        {"site": ["south", "north"], "age": {"op": ">=", "value": 18}, "syndromes": [], "x": None}
    )
    assert filters == {"age": {"op": ">=", "value": 18}, "site": ["north", "south"]}
    assert for_dataset(filters) == {"age": (">=", 18), "site": ["north", "south"]}
    assert [parse_condition(as_line(k, v), LM) for k, v in filters.items()] == list(filters.items())
    assert describe(filters, {"age": "Age at index", "site": "Site"}) == [
        "Age at index ≥ 18",
        "Site: north, south",
    ]


def form(data=None, *, area=DiseaseArea.NPSLE, **kwargs):
    study = Study(code=area, disease_area=area, title="Study")
    report = NpsleReport if area == DiseaseArea.NPSLE else LmReport
    sites = [Site(code="north", name="North"), Site(code="south", name="South")]
    return ReportFilterForm(data, study=study, sites=sites, report=report, **kwargs)


def test_the_form_offers_what_the_study_has():
    assert "syndromes" in form().fields and "it_drug" not in form().fields
    assert (
        "it_drug" in form(area=DiseaseArea.LM).fields and "syndromes" not in form(area=DiseaseArea.LM).fields
    )
    assert (
        form().fields["ties"].initial == "efron"
        and form(area=DiseaseArea.LM).fields["ties"].initial == "breslow"
    )


def test_the_form_builds_filters_and_options():
    bound = form(
        {
            "site": ["north"],
            "index_from": "2019-01-01",
            "syndromes": ["psychosis", "seizure"],
            "conditions": "age>=18\nsex_male=0",
            "ties": "breslow",
        }
    )
    assert bound.is_valid(), bound.errors
    assert bound.filters == {
        "age": {"op": ">=", "value": 18},
        "index_from": "2019-01-01",
        "sex_male": 0,
        "site": ["north"],
        "syndromes": ["psychosis", "seizure"],
    }
    assert bound.options == {"ties": "breslow"}
    assert ReportFilterForm.initial_for(bound.filters, bound.options)["conditions"] == "age>=18\nsex_male=0"


def test_the_form_refuses_a_backwards_date_range_and_a_bad_condition():
    bound = form(
        {"index_from": dt.date(2022, 1, 1), "index_to": dt.date(2021, 1, 1), "conditions": "weight=3"}
    )
    assert not bound.is_valid()
    assert "before its start" in bound.errors["index_to"][0]
    assert "no column 'weight'" in bound.errors["conditions"][0]
