"""Every registry model, whatever module it lives in."""

from .cart import CarTInfusion, CrsAssessment, IcansAssessment
from .lm import LmDiagnosis, MutationFinding
from .npsle import NpsleDiagnosis, NpsleManifestation, Sledai2kAssessment
from .outcomes import DischargeOutcome, FollowUpEvent, ResponseAssessment
from .patients import Patient, PatientIdentifier
from .procedures import CsfResult, IntrathecalDose, LumbarPuncture, PathogenTest
from .safety import AdverseEvent
from .screening import ScreeningLogEntry
from .studies import Study
from .therapy import SystemicTherapy

__all__ = [
    "AdverseEvent",
    "CarTInfusion",
    "CrsAssessment",
    "CsfResult",
    "DischargeOutcome",
    "FollowUpEvent",
    "IcansAssessment",
    "IntrathecalDose",
    "LmDiagnosis",
    "LumbarPuncture",
    "MutationFinding",
    "NpsleDiagnosis",
    "NpsleManifestation",
    "PathogenTest",
    "Patient",
    "PatientIdentifier",
    "ResponseAssessment",
    "ScreeningLogEntry",
    "Sledai2kAssessment",
    "Study",
    "SystemicTherapy",
]
