"""Running a report for someone: their scoped dataset, the cache, and the stored run.

Cache rule: a run is reused while the study, the filters, the options, the sites the person may
report on, the report code version and the fingerprint of the data it reads are all unchanged. The
fingerprint is the data-version tokens of that study and those sites (``invalidation``): every
write through the registry (saves, deletes, bulk inserts, admin edits, imports) replaces the tokens
of the study and site it touches, so the next view of that study's report recomputes and every
other study's report stays cached. A new run replaces the older runs of the same scope.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from django.db import transaction
from django.db.models import QuerySet

from accounts.access import Capability, scope, site_ids_with
from analytics import plots
from analytics.datasets import build_dataset
from analytics.models import ReportFigure, ReportRun
from analytics.reports.base import Cohort, StudyReport
from analytics.reports.figures import figure_rows
from analytics.reports.filters import canonical, for_dataset
from analytics.reports.icans import IcansReport
from analytics.reports.invalidation import report_fingerprint
from analytics.reports.lm import LmReport
from analytics.reports.npsle import NpsleReport
from registry.choices import DiseaseArea
from registry.models import Patient, Study

#: Bump when a report's analyses or layout change, so runs cached by older code are recomputed.
REPORT_VERSION = 8  # 2: schedule adherence, dose intensity, dose timelines; 3: de-identified listings;
# 4: the ICANS report follows the ICANS paper (remission rule, time from the first IDM, OS and PFS);
# 5: the LM report computed the paper's way; 6-8: the NPSLE paper in full, Table 1 numbers kept,
# protocol names, the paper's order

REPORTS: dict[str, type[StudyReport]] = {
    DiseaseArea.NPSLE: NpsleReport,
    DiseaseArea.LM: LmReport,
    DiseaseArea.ICANS: IcansReport,
}


def report_class(study: Study) -> type[StudyReport]:
    return REPORTS[study.disease_area]


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


@dataclass(frozen=True)
class RunPlan:
    """What a run is for, and the cache key it is stored under (see the module docstring)."""

    study: Study
    filters: dict[str, Any]
    options: dict[str, str]
    site_ids: list[int] | None
    scope_key: str
    fingerprint: str

    @property
    def cache_key(self) -> str:
        return _digest({"scope": self.scope_key, "fingerprint": self.fingerprint})


def report_plan(
    *, study: Study, filters: Mapping[str, Any], options: Mapping[str, str], viewer=None
) -> RunPlan:
    """The run this viewer's request asks for. Raises ``OptionError`` for an option the report lacks."""
    resolved = report_class(study).resolve_options(options)
    canonical_filters = canonical(filters)
    sites = visible_site_ids(viewer)
    scope_key = _digest(
        {
            "version": REPORT_VERSION,
            "study": study.pk,
            "filters": canonical_filters,
            "options": resolved,
            "sites": sites,
        }
    )
    return RunPlan(study, canonical_filters, resolved, sites, scope_key, report_fingerprint(study.pk, sites))


def cached_run(plan: RunPlan) -> ReportRun | None:
    return ReportRun.objects.filter(cache_key=plan.cache_key).first()


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
    plan = report_plan(study=study, filters=filters, options=options, viewer=viewer)
    cached = cached_run(plan)
    if cached is not None:
        return cached, True

    started = time.perf_counter()
    patients = _patients_for(viewer)
    frame = build_dataset(study, filters=for_dataset(plan.filters), patients=patients)
    cohort = Cohort.from_dataset(frame, patients=patients.filter(study=study), filters=plan.filters)
    with plots.deferred():  # the figures are drawn when first shown (analytics.reports.figures)
        result = report_class(study)(cohort, plan.options).run(progress)
    with transaction.atomic():
        run, created = ReportRun.objects.get_or_create(
            cache_key=plan.cache_key,
            defaults={
                "scope_key": plan.scope_key,
                "study": study,
                "filters": plan.filters,
                "options": plan.options,
                "site_ids": plan.site_ids,
                "fingerprint": plan.fingerprint,
                "numbers": result.numbers(),
                "n_screened": result.n_screened,
                "n_records": result.n_records,
                "duration_ms": round(1000 * (time.perf_counter() - started)),
                "requested_by": requested_by or viewer,
            },
        )
        if created:
            ReportFigure.objects.bulk_create(figure_rows(run, result.figures()))
        ReportRun.objects.filter(scope_key=plan.scope_key).exclude(pk=run.pk).delete()
    return run, False
