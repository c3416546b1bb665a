"""A guard shared by the disease-specific records."""

from django.core.exceptions import ValidationError

from ..choices import DiseaseArea


def require_disease_area(patient, area: DiseaseArea, record: str) -> None:
    """Disease-specific records belong only to patients of a study in that disease area."""
    if patient.study.disease_area != area:
        raise ValidationError(
            {
                "patient": f"{record} can only be recorded for patients of a {area.label} study; "
                f"{patient} is in {patient.study.get_disease_area_display()}."
            }
        )
