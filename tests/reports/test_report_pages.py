"""The report pages as a permission story: who may open them, whose patients they count, and when
they recompute; plus filters, empty and too-small cohorts, saved definitions and figure downloads."""

from __future__ import annotations

import html
import io
import re
import xml.etree.ElementTree as ET
import zipfile

import pandas as pd
import pytest
from django.urls import reverse

from accounts.models import Role, Site
from accounts.services import system_user
from analytics.datasets import build_dataset
from analytics.models import ReportDefinition, ReportRun
from analytics.reports import display
from analytics.reports.definitions import default_definition
from analytics.reports.lm import LmReport
from registry.models import CsfResult, Patient, PatientIdentifier
from registry.services.records import record_delete, record_save
from tests import factories as f
from tests.reports.conftest import researcher

pytestmark = pytest.mark.django_db


def detail_url(study) -> str:
    return reverse("reports:detail", args=[default_definition(study).pk])


# --- who may open the reports ---------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(client, demo):
    response = client.get(reverse("reports:index"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_data_entry_user_gets_403_and_finds_no_report(client, demo):
    nurse = f.UserFactory(username="nurse")
    f.MembershipFactory(user=nurse, site=Site.objects.get(code="north"), role=Role.DATA_ENTRY)
    client.force_login(nurse)
    assert client.get(reverse("reports:index")).status_code == 403
    assert client.get(detail_url(demo["npsle"])).status_code == 404, "a report is a record: not found"


def test_the_index_lists_only_the_studies_at_the_researchers_sites(client, demo):
    client.force_login(researcher("haem-researcher", "haem"))
    response = client.get(reverse("reports:index"))
    assert response.status_code == 200
    page = response.content.decode()
    assert demo["icans"].title in page and demo["lm"].title not in page
    assert client.get(detail_url(demo["lm"])).status_code == 404


def test_a_researcher_granted_one_site_counts_only_that_sites_patients(client, demo):
    client.force_login(researcher("north-researcher", "north"))
    response = client.get(detail_url(demo["npsle"]))
    assert response.status_code == 200
    north = Patient.objects.filter(study=demo["npsle"], site__code="north")
    run = ReportRun.objects.get(study=demo["npsle"], site_ids=[Site.objects.get(code="north").pk])
    assert (
        run.n_records == run.n_screened == north.count() < Patient.objects.filter(study=demo["npsle"]).count()
    )
    assert f'<strong data-testid="n-records">{north.count()}</strong>' in response.content.decode()

    download = client.get(reverse("reports:dataset", args=[default_definition(demo["npsle"]).pk]))
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    dataset = pd.read_csv(archive.open("dataset.csv"))
    assert set(dataset["site"]) == {"north"} and len(dataset) == north.count()
    assert "full_name" not in dataset.columns and "medical_record_number" not in dataset.columns


def test_reports_and_datasets_never_show_names_or_record_numbers(client, demo):
    code = "icans"
    identifiers = PatientIdentifier.objects.filter(patient__study=demo[code])
    secrets = [
        value for pair in identifiers.values_list("full_name", "medical_record_number") for value in pair
    ]
    assert secrets, "the demo records identifiers, so this test can see a leak"
    client.force_login(f.UserFactory(username="chief", is_superuser=True))
    definition = default_definition(demo[code])
    page = client.get(detail_url(demo[code])).content.decode()
    numbers = client.get(reverse("reports:json", args=[definition.pk])).content.decode()
    dataset = zipfile.ZipFile(
        io.BytesIO(client.get(reverse("reports:dataset", args=[definition.pk])).content)
    )
    everything = page + numbers + dataset.read("dataset.csv").decode()
    assert not [secret for secret in secrets if secret in everything]


# --- the cache ---------------------------------------------------------------------------------------


def test_a_second_view_is_a_cache_hit_and_an_edit_or_delete_recomputes(client, demo):
    client.force_login(researcher("icans-researcher", "haem"))
    url = detail_url(demo["icans"])
    first = client.get(url)
    assert first.status_code == 200 and not first.context["cached"]
    second = client.get(url)
    assert second.context["cached"]
    assert ReportRun.objects.filter(study=demo["icans"]).count() == 1
    computed = ReportRun.objects.get(study=demo["icans"])

    csf = CsfResult.objects.filter(
        lumbar_puncture__patient__study=demo["icans"], il6_pg_per_ml__isnull=False
    ).first()
    csf.il6_pg_per_ml *= 2
    record_save(csf, actor=system_user(), reason="test: corrected IL-6")
    third = client.get(url)
    assert not third.context["cached"], "an edited record makes the next view recompute"
    run = ReportRun.objects.get(study=demo["icans"])
    assert run.pk != computed.pk and run.computed_at >= computed.computed_at, "the new run replaced the old"

    event = demo["icans"].patients.first().follow_up_events.first()
    record_delete(event, actor=system_user(), reason="test: entered in error")
    assert not client.get(url).context["cached"], "a deletion adds a history row too"


# --- filters, empty and small cohorts ----------------------------------------------------------------


def test_a_filter_narrows_the_cohort_and_the_flow_says_so(client, demo):
    client.force_login(researcher("lm-researcher", "chest"))
    response = client.get(
        detail_url(demo["lm"]), {"apply": "1", "it_drug": ["pemetrexed"], "ties": "breslow"}
    )
    assert response.status_code == 200
    report = response.context["report"]
    assert report.n_records == 34 and report.n_screened == 41
    included = next(step for step in report.cohort_flow if step["key"] == "included")
    assert included["excluded"] == 7 and "Intrathecal drug: pemetrexed" in included["detail"]
    page = response.content.decode()
    assert "34</strong> of 41 screened" in page


def test_an_unknown_column_is_a_form_error_not_an_error_page(client, demo):
    client.force_login(researcher("lm-researcher", "chest"))
    response = client.get(detail_url(demo["lm"]), {"apply": "1", "conditions": "weight_kg>=60"})
    assert response.status_code == 200
    assert response.context["report"] is None
    # The text a browser shows: the apostrophes' entity is the form renderer's (config/forms.py).
    assert "no column 'weight_kg'" in html.unescape(response.content.decode())


@pytest.mark.parametrize("code", ["npsle", "lm", "icans"])
def test_an_empty_cohort_gives_a_readable_message_in_every_section(client, demo, code):
    client.force_login(f.UserFactory(username="chief", is_superuser=True))
    response = client.get(detail_url(demo[code]), {"apply": "1", "index_from": "2099-01-01"})
    assert response.status_code == 200
    report = response.context["report"]
    assert report.n_records == 0
    assert {section.status for section in report.sections} == {"unavailable"}
    assert response.content.decode().count(
        "Not available for this cohort: no patient is in this cohort."
    ) == len(report.sections)


@pytest.mark.parametrize(("code", "size"), [("npsle", 6), ("lm", 3), ("icans", 1)])
def test_a_too_small_cohort_still_renders_with_messages_where_needed(client, demo, code, size):
    client.force_login(f.UserFactory(username="chief", is_superuser=True))
    codes = list(demo[code].patients.order_by("study_code").values_list("study_code", flat=True)[:size])
    response = client.get(
        detail_url(demo[code]), {"apply": "1", "conditions": f"study_code={','.join(codes)}"}
    )
    assert response.status_code == 200
    report = response.context["report"]
    assert report.n_records == size
    statuses = {section.key: section.status for section in report.sections}
    assert "error" not in statuses.values(), statuses
    assert "unavailable" in statuses.values()
    for section in report.sections:
        if section.status == "unavailable":
            assert section.message.startswith("Not available for this cohort: ")


# --- saved definitions and figure downloads --------------------------------------------------------------


def test_a_researcher_saves_a_filtered_view_as_a_new_report(client, demo):
    user = researcher("lm-researcher", "chest")
    client.force_login(user)
    query = "apply=1&it_drug=methotrexate&ties=efron&conditions=sex_male%3D1"
    save_url = reverse("reports:save", args=[default_definition(demo["lm"]).pk]) + "?" + query
    response = client.post(save_url, {"name": "Methotrexate, men"})
    saved = ReportDefinition.objects.get(study=demo["lm"], name="Methotrexate, men")
    assert response.status_code == 302 and response["Location"] == saved.get_absolute_url()
    assert saved.filters == {"it_drug": ["methotrexate"], "sex_male": 1}
    assert saved.options == LmReport.resolve_options({"ties": "efron"})  # the others at their defaults
    assert saved.created_by == user and not saved.is_default

    dataset = build_dataset(demo["lm"])
    men_on_methotrexate = ((dataset["it_drug"] == "methotrexate") & (dataset["sex_male"] == 1)).sum()
    assert client.get(saved.get_absolute_url()).context["report"].n_records == men_on_methotrexate
    assert "Methotrexate, men" in client.get(reverse("reports:index")).content.decode()

    again = client.post(save_url, {"name": "Methotrexate, men"}, follow=True)
    assert "already has a report called" in again.content.decode()
    assert ReportDefinition.objects.filter(study=demo["lm"], name="Methotrexate, men").count() == 1


def test_each_plot_downloads_as_an_svg_file(client, demo):
    client.force_login(researcher("icans-researcher", "haem"))
    definition = default_definition(demo["icans"])
    response = client.get(reverse("reports:figure", args=[definition.pk, "csf.slopes"]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response["Content-Disposition"] == 'attachment; filename="icans-csfslopes.svg"'
    root = ET.fromstring(response.content)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert client.get(reverse("reports:figure", args=[definition.pk, "nothing.here"])).status_code == 404


def test_a_long_table_is_shown_a_page_of_rows_at_a_time_keeping_the_filters(client, demo, monkeypatch):
    monkeypatch.setattr(display, "TABLE_PAGE_ROWS", 15)
    client.force_login(researcher("lm-researcher", "chest"))
    filters = {"apply": "1", "ties": "breslow"}
    response = client.get(detail_url(demo["lm"]), filters)
    courses = next(
        item for s in response.context["report"].sections for item in s.items if item.key == "swimmer.courses"
    )
    assert courses.page.total == 41 and courses.page.count == 3
    assert len(courses.rows) == 15 and courses.page.first == 1
    page = response.content.decode()
    assert "Rows 1–15 of 41" in page
    next_link = re.search(
        r'href="(\?[^"]*rows-swimmer\.courses=2[^"]*)#table-swimmer\.courses">Next', page
    ).group(1)
    assert "ties=breslow" in next_link, "the filters and options stay"

    second = client.get(detail_url(demo["lm"]) + next_link.replace("&amp;", "&"))
    courses_2 = next(
        i for s in second.context["report"].sections for i in s.items if i.key == "swimmer.courses"
    )
    assert courses_2.page.first == 16 and courses_2.page.last == 30
    assert [row[0].text for row in courses_2.rows] != [row[0].text for row in courses.rows]
    assert second.context["cached"], "paging reads the same stored run"

    last = client.get(detail_url(demo["lm"]), {**filters, "rows-swimmer.courses": "999"})
    courses_last = next(
        i for s in last.context["report"].sections for i in s.items if i.key == "swimmer.courses"
    )
    assert (courses_last.page.first, courses_last.page.last, len(courses_last.rows)) == (31, 41, 11)
    for bad in ("-1", "x", "²", "9" * 50):
        assert client.get(detail_url(demo["lm"]), {**filters, "rows-swimmer.courses": bad}).status_code == 200


def test_the_downloads_keep_every_row_of_a_long_table(client, demo, monkeypatch):
    monkeypatch.setattr(display, "TABLE_PAGE_ROWS", 15)
    client.force_login(researcher("lm-researcher", "chest"))
    definition = default_definition(demo["lm"])
    html = client.get(reverse("reports:html", args=[definition.pk])).content.decode()
    table_html = html[html.index('id="table-swimmer.courses"') :]
    table_html = table_html[: table_html.index("</table>")]
    assert table_html.count("<tr>") == 42, "the header and all 41 patients"
    assert "Rows 1–15" not in html
