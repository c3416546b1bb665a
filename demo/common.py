"""The demo sites and studies, created once and reused by every demo cohort."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from accounts.models import Site, User
from registry.choices import DiseaseArea
from registry.models import Study
from registry.services import record_save


@dataclass(frozen=True)
class DemoSite:
    code: str
    name: str
    city: str


@dataclass(frozen=True)
class DemoStudy:
    code: str
    disease_area: DiseaseArea
    title: str
    protocol_summary: str
    site_codes: tuple[str, ...]


DEMO_SITES = (
    DemoSite("north", "North Teaching Hospital (demo)", "Beijing"),
    DemoSite("south", "South University Hospital (demo)", "Guangzhou"),
    DemoSite("chest", "Chest Cancer Centre (demo)", "Changchun"),
    DemoSite("haem", "Haematology Centre (demo)", "Tianjin"),
)

DEMO_STUDIES = (
    DemoStudy(
        "npsle",
        DiseaseArea.NPSLE,
        "Intrathecal methotrexate and dexamethasone in neuropsychiatric lupus",
        "Retrospective cohort of NPSLE admissions. Intrathecal MTX 10 mg + DEX 10 mg weekly, 1 to 6 "
        "injections, versus standard care; outcome at discharge and relapse or death in follow-up; "
        "propensity-score-matched survival analysis.",
        ("north", "south"),
    ),
    DemoStudy(
        "lm",
        DiseaseArea.LM,
        "Intrathecal chemotherapy for leptomeningeal metastasis of lung cancer",
        "Intrathecal pemetrexed (10 mg rising by 5 mg to 50 mg; stepped back after grade ≥3 "
        "myelosuppression) or methotrexate 12 mg, twice weekly in month 1, weekly in month 2, then "
        "every 4 weeks. Endpoints: iPFS and OS from the first intrathecal dose.",
        ("chest",),
    ),
    DemoStudy(
        "icans",
        DiseaseArea.ICANS,
        "Early intrathecal dexamethasone and methotrexate for ICANS after CAR-T cells",
        "Intrathecal DEX + MTX as early as possible after ICANS onset, repeated 1–3 times by response. "
        "Endpoints: ICANS remission and time to remission; CSF CAR-T cells, protein and IL-6.",
        ("haem",),
    ),
)


@transaction.atomic
def ensure_sites_and_studies(*, actor: User) -> dict[str, Study]:
    """Create the demo sites and studies if missing; return the studies by code."""
    sites: dict[str, Site] = {}
    for spec in DEMO_SITES:
        site = Site.objects.filter(code=spec.code).first()
        if site is None:
            site = record_save(
                Site(code=spec.code, name=spec.name, city=spec.city, country="China"),
                actor=actor,
                reason="Demo data",
            )
        sites[spec.code] = site
    studies: dict[str, Study] = {}
    for study_spec in DEMO_STUDIES:
        study = Study.objects.filter(code=study_spec.code).first()
        if study is None:
            study = record_save(
                Study(
                    code=study_spec.code,
                    disease_area=study_spec.disease_area,
                    title=study_spec.title,
                    protocol_summary=study_spec.protocol_summary,
                ),
                actor=actor,
                reason="Demo data",
            )
            study.sites.set([sites[code] for code in study_spec.site_codes])
        studies[study_spec.code] = study
    return studies
