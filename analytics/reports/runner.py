"""Running a report for someone: their scoped dataset, the cache, and the stored run.

Cache rule: a run is reused while the study, the filters, the options, the sites the person may
report on, the report code version and the registry fingerprint are all unchanged. The fingerprint
is the newest ``history_id`` of every registry model's history table; every write through the
registry (saves, deletes, bulk inserts, admin edits) adds a history row, so the next view after any
change recomputes. A new run replaces the older runs of the same scope.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from django.apps import apps
from django.db import connection, transaction
from django.db.models import QuerySet

from accounts.access import Capability, scope, site_ids_with
from analytics.datasets import build_dataset
from analytics.models import ReportRun
from analytics.reports.base import Cohort, StudyReport
from analytics.reports.filters import canonical, for_dataset
from analytics.reports.icans import IcansReport
from analytics.reports.lm import LmReport
from analytics.reports.npsle import NpsleReport
from registry.choices import DiseaseArea
from registry.models import Patient, Study

#: Bump when a report's analyses or layout change, so runs cached by older code are recomputed.
REPORT_VERSION = 7  # 2: schedule adherence, dose intensity, dose timelines; 3: de-identified listings; 4-5: the NPSLE paper in full; 6: Table 1 numbers kept, protocol names; 7: the paper's order

REPORTS: dict[str, type[StudyReport]] = {
    DiseaseArea.NPSLE: NpsleReport,
    DiseaseArea.LM: LmReport,
    DiseaseArea.ICANS: IcansReport,
}


def report_class(study: Study) -> type[StudyReport]:
    return REPORTS[study.disease_area]


def registry_fingerprint() -> str:
    """The newest history id of each registry model, in one query ("0" for an empty table).

    The protocols app's models count too: courses and planned injections feed the dataset.
    """
    quote = connection.ops.quote_name
    tables = sorted(
        model._meta.db_table
        for app in ("registry", "protocols")
        for model in apps.get_app_config(app).get_models()
        if model.__name__.startswith("Historical")
    )
    columns = ", ".join(f"(SELECT MAX({quote('history_id')}) FROM {quote(table)})" for table in tables)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns}")
        return ".".join(str(value or 0) for value in cursor.fetchone())


def visible_site_ids(viewer) -> list[int] | None:
    """Sites whose patients the viewer's reports include; None means every site (system, superuser)."""
    if viewer is None:
        return None
    ids = site_ids_with(viewer, Capability.RUN_REPORTS)
    return None if ids is None else sorted(ids)


def _patients_for(viewer) -> QuerySet[Patient]:
    patients = Patient.objects.all()
    return patients if viewer is None else scope(patients, viewer, Capability.RUN_REPORTS)


def report_dataset(*, study: Study, filters: Mapping[str, Any], viewer=None) -> pd.DataFrame:
    """The report cohort's analysis dataset, of the patients the viewer may report on."""
    return build_dataset(study, filters=for_dataset(canonical(filters)), patients=_patients_for(viewer))


def _digest(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def report_run(
    *,
    study: Study,
    filters: Mapping[str, Any],
    options: Mapping[str, str],
    viewer=None,
    requested_by=None,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[ReportRun, bool]:
    """The run of this report for the viewer (None: the system, every site), and whether it was cached.

    The dataset only ever holds patients of the sites where the viewer may run reports. A new run
    records ``requested_by`` (default: the viewer).
    Raises ``AnalysisError`` for a filter the dataset cannot apply and ``OptionError`` for an
    option the report does not offer.
    """
    report = report_class(study)
    options = report.resolve_options(options)
    filters = canonical(filters)
    sites = visible_site_ids(viewer)
    scope_key = _digest(
        {"version": REPORT_VERSION, "study": study.pk, "filters": filters, "options": options, "sites": sites}
    )
    fingerprint = registry_fingerprint()
    cache_key = _digest({"scope": scope_key, "fingerprint": fingerprint})
    cached = ReportRun.objects.filter(cache_key=cache_key).first()
    if cached is not None:
        return cached, True

    started = time.perf_counter()
    patients = _patients_for(viewer)
    frame = build_dataset(study, filters=for_dataset(filters), patients=patients)
    cohort = Cohort.from_dataset(frame, patients=patients.filter(study=study), filters=filters)
    result = report(cohort, options).run(progress)
    with transaction.atomic():
        run, _ = ReportRun.objects.get_or_create(
            cache_key=cache_key,
            defaults={
                "scope_key": scope_key,
                "study": study,
                "filters": filters,
                "options": options,
                "site_ids": sites,
                "fingerprint": fingerprint,
                "numbers": result.numbers(),
                "figures": result.figures(),
                "n_screened": result.n_screened,
                "n_records": result.n_records,
                "duration_ms": round(1000 * (time.perf_counter() - started)),
                "requested_by": requested_by or viewer,
            },
        )
        ReportRun.objects.filter(scope_key=scope_key).exclude(pk=run.pk).delete()
    return run, False
