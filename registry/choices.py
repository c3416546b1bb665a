"""Code lists of the registry, as enums (never bare strings in queries).

Labels follow ../shared/domain/clinical_reference.md; stored values are short stable codes.
"""

from django.db import models


class DiseaseArea(models.TextChoices):
    NPSLE = "npsle", "Neuropsychiatric lupus (NPSLE)"
    LM = "lm", "Leptomeningeal metastasis of lung cancer"
    ICANS = "icans", "ICANS after CAR-T cells"


class Sex(models.TextChoices):
    FEMALE = "F", "Female"
    MALE = "M", "Male"


class DeathCause(models.TextChoices):
    SLE_RELATED = "sle_related", "SLE-related"
    INFECTION = "infection", "Infection"
    MALIGNANCY = "malignancy", "Malignancy"
    OTHER = "other", "Other"


class NpsleSyndrome(models.TextChoices):
    """The 19 ACR-1999 NPSLE syndromes (12 central, 7 peripheral)."""

    ASEPTIC_MENINGITIS = "aseptic_meningitis", "Aseptic meningitis"
    CEREBROVASCULAR = "cerebrovascular", "Cerebrovascular disease"
    DEMYELINATING = "demyelinating", "Demyelinating syndrome"
    HEADACHE = "headache", "Headache (incl. migraine and benign intracranial hypertension)"
    MOVEMENT_DISORDER = "movement_disorder", "Movement disorder (chorea)"
    MYELOPATHY = "myelopathy", "Myelopathy"
    SEIZURE = "seizure", "Seizure disorders"
    ACUTE_CONFUSIONAL_STATE = "acute_confusional_state", "Acute confusional state"
    ANXIETY = "anxiety", "Anxiety disorder"
    COGNITIVE_DYSFUNCTION = "cognitive_dysfunction", "Cognitive dysfunction"
    MOOD_DISORDER = "mood_disorder", "Mood disorder"
    PSYCHOSIS = "psychosis", "Psychosis"
    AIDP_GBS = "aidp_gbs", "Acute inflammatory demyelinating polyradiculoneuropathy (Guillain–Barré)"
    AUTONOMIC = "autonomic", "Autonomic disorder"
    MONONEUROPATHY = "mononeuropathy", "Mononeuropathy, single/multiplex"
    MYASTHENIA_GRAVIS = "myasthenia_gravis", "Myasthenia gravis"
    CRANIAL_NEUROPATHY = "cranial_neuropathy", "Neuropathy, cranial"
    PLEXOPATHY = "plexopathy", "Plexopathy"
    POLYNEUROPATHY = "polyneuropathy", "Polyneuropathy"


#: ACR 1999 groups only into central and peripheral; the diffuse/focal split is a later convention.
PERIPHERAL_SYNDROMES = frozenset(
    {
        NpsleSyndrome.AIDP_GBS,
        NpsleSyndrome.AUTONOMIC,
        NpsleSyndrome.MONONEUROPATHY,
        NpsleSyndrome.MYASTHENIA_GRAVIS,
        NpsleSyndrome.CRANIAL_NEUROPATHY,
        NpsleSyndrome.PLEXOPATHY,
        NpsleSyndrome.POLYNEUROPATHY,
    }
)


class TestResult(models.TextChoices):
    """A qualitative laboratory result."""

    __test__ = False  # not a pytest test class despite its name

    NEGATIVE = "negative", "Negative"
    POSITIVE = "positive", "Positive"
    INDETERMINATE = "indeterminate", "Indeterminate"
    NOT_DONE = "not_done", "Not done"


class BilagGrade(models.TextChoices):
    A = "A", "A: severe activity"
    B = "B", "B: moderate activity"
    C = "C", "C: mild, stable activity"
    D = "D", "D: previously involved, inactive"
    E = "E", "E: never involved"


class NsclcHistology(models.TextChoices):
    ADENOCARCINOMA = "adenocarcinoma", "Adenocarcinoma"
    SQUAMOUS = "squamous", "Squamous cell carcinoma"
    LARGE_CELL = "large_cell", "Large cell carcinoma"
    NSCLC_NOS = "nsclc_nos", "NSCLC, not otherwise specified"
    OTHER = "other", "Other"


class DriverMutation(models.TextChoices):
    EGFR_L858R = "egfr_l858r", "EGFR L858R"
    EGFR_19DEL = "egfr_19del", "EGFR exon 19 deletion"
    EGFR_T790M = "egfr_t790m", "EGFR T790M"
    EGFR_20INS = "egfr_20ins", "EGFR exon 20 insertion"
    EGFR_G719A = "egfr_g719a", "EGFR G719A"
    EGFR_L861Q = "egfr_l861q", "EGFR L861Q"
    EGFR_OTHER = "egfr_other", "EGFR, other"
    ALK = "alk", "ALK rearrangement"
    MET_AMPLIFICATION = "met_amplification", "MET amplification"
    OTHER = "other", "Other driver"
    WILD_TYPE = "wild_type", "Wild-type (no driver found)"
    UNKNOWN = "unknown", "Unknown / not tested"


#: A specimen can be "wild-type" or "unknown" only on its own; these exclude every other code.
EXCLUSIVE_MUTATION_CODES = frozenset({DriverMutation.WILD_TYPE, DriverMutation.UNKNOWN})
EGFR_MUTATIONS = frozenset(m for m in DriverMutation if m.value.startswith("egfr_"))


class Specimen(models.TextChoices):
    TISSUE = "tissue", "Tissue (primary or metastasis)"
    CSF = "csf", "Cerebrospinal fluid"


class CsfCytology(models.TextChoices):
    NORMAL = "normal", "Normal"
    ABNORMAL = "abnormal", "Abnormal, no malignant cells"
    MALIGNANT = "malignant", "Malignant cells"
    NOT_DONE = "not_done", "Not done"


class EanoEsmoType(models.TextChoices):
    TYPE_I = "I", "Type I: malignant cells in CSF (confirmed)"
    TYPE_II = "II", "Type II: clinical and MRI signs only (probable/possible)"


class LmMriPattern(models.TextChoices):
    A = "A", "A: linear enhancement"
    B = "B", "B: nodular disease"
    C = "C", "C: linear and nodular"
    D = "D", "D: neither (hydrocephalus or normal)"


class HaematologicalMalignancy(models.TextChoices):
    AML = "aml", "Acute myeloid leukaemia"
    ALL = "all", "Acute lymphoblastic leukaemia"
    MM = "mm", "Multiple myeloma"
    B_CELL_LYMPHOMA = "b_cell_lymphoma", "B-cell lymphoma"
    BPDCN = "bpdcn", "Blastic plasmacytoid dendritic cell neoplasm"
    OTHER = "other", "Other"


class CarTTarget(models.TextChoices):
    CD19 = "cd19", "CD19"
    CD22 = "cd22", "CD22"
    CD19_CD22 = "cd19_cd22", "CD19/CD22 (bispecific or sequential)"
    BCMA = "bcma", "BCMA"
    CD7 = "cd7", "CD7"
    CD123 = "cd123", "CD123"
    CLL1 = "cll1", "CLL1"
    OTHER = "other", "Other"


class Consciousness(models.IntegerChoices):
    """Level of consciousness in the ASTCT ICANS grading; the value is the grade it implies."""

    NORMAL = 0, "Normal (not depressed)"
    AWAKENS_SPONTANEOUSLY = 1, "Awakens spontaneously"
    AWAKENS_TO_VOICE = 2, "Awakens to voice"
    AWAKENS_TO_TOUCH = 3, "Awakens only to tactile stimulus"
    UNAROUSABLE = 4, "Unarousable / vigorous stimuli needed; stupor or coma"


class SeizureFinding(models.IntegerChoices):
    NONE = 0, "None"
    RAPIDLY_RESOLVING = 3, "Clinical or EEG seizure resolving rapidly or with intervention"
    LIFE_THREATENING = 4, "Prolonged (>5 min) or repetitive seizures without return to baseline"


class MotorFinding(models.IntegerChoices):
    NONE = 0, "None"
    DEEP_FOCAL_WEAKNESS = 4, "Deep focal motor weakness (hemiparesis, paraparesis)"


class RaisedIcpFinding(models.IntegerChoices):
    NONE = 0, "None"
    FOCAL_OEDEMA = 3, "Focal/local oedema on imaging"
    DIFFUSE_OEDEMA = 4, "Diffuse oedema, posturing, CN VI palsy, papilloedema or Cushing's triad"


class Hypotension(models.IntegerChoices):
    """CRS hypotension; the value is the grade it implies."""

    NONE = 0, "None"
    NO_VASOPRESSOR = 2, "Not requiring vasopressors"
    ONE_VASOPRESSOR = 3, "One vasopressor (± vasopressin)"
    MULTIPLE_VASOPRESSORS = 4, "Multiple vasopressors (excluding vasopressin)"


class Hypoxia(models.IntegerChoices):
    """CRS hypoxia; the value is the grade it implies."""

    NONE = 0, "None"
    LOW_FLOW = 2, "Low-flow nasal cannula (≤6 L/min) or blow-by"
    HIGH_FLOW = 3, "High-flow cannula, facemask, non-rebreather or Venturi"
    POSITIVE_PRESSURE = 4, "Positive pressure (CPAP, BiPAP, mechanical ventilation)"


class LpRoute(models.TextChoices):
    LUMBAR = "lumbar", "Lumbar puncture"
    OMMAYA = "ommaya", "Ommaya reservoir"


class IntrathecalDrug(models.TextChoices):
    METHOTREXATE = "methotrexate", "Methotrexate"
    DEXAMETHASONE = "dexamethasone", "Dexamethasone"
    PEMETREXED = "pemetrexed", "Pemetrexed"
    CYTARABINE = "cytarabine", "Cytarabine"
    LIPOSOMAL_CYTARABINE = "liposomal_cytarabine", "Liposomal cytarabine"
    OTHER = "other", "Other"


class DoseTiming(models.TextChoices):
    """When, relative to the main injection of an LP, a drug was given (e.g. DEX before and after)."""

    BEFORE = "before", "Before the main drug"
    WITH = "with", "With the main drug"
    AFTER = "after", "After the main drug"


class Diluent(models.TextChoices):
    SALINE_PF = "saline_pf", "Preservative-free 0.9% saline"
    ELLIOTTS_B = "elliotts_b", "Elliott's B solution"
    AUTOLOGOUS_CSF = "autologous_csf", "Patient's own CSF"
    NONE = "none", "Undiluted"
    OTHER = "other", "Other"


class PathogenTestType(models.TextChoices):
    GRAM_STAIN = "gram", "Gram stain"
    ACID_FAST = "acid_fast", "Acid-fast stain"
    INDIA_INK = "india_ink", "India ink"
    CRYPTOCOCCAL_ANTIGEN = "crag", "Cryptococcal antigen"
    TB_PCR = "tb_pcr", "TB PCR (Xpert)"
    CULTURE = "culture", "Culture"


class SystemicTherapyCategory(models.TextChoices):
    METHYLPREDNISOLONE_PULSE = "mpp", "Methylprednisolone pulse"
    ORAL_GLUCOCORTICOID = "oral_gc", "Oral glucocorticoid"
    CYCLOPHOSPHAMIDE = "cyc", "Cyclophosphamide"
    MYCOPHENOLATE = "mmf", "Mycophenolate"
    CALCINEURIN_INHIBITOR = "cni", "Calcineurin inhibitor"
    RITUXIMAB = "rituximab", "Rituximab"
    OTHER_IMMUNOSUPPRESSANT = "other_is", "Other immunosuppressant (azathioprine, leflunomide, …)"
    IVIG = "ivig", "Intravenous immunoglobulin"
    PLASMA_EXCHANGE = "plasma_exchange", "Plasma exchange"
    EGFR_TKI_GEN1 = "egfr_tki_1", "EGFR-TKI, 1st generation"
    EGFR_TKI_GEN2 = "egfr_tki_2", "EGFR-TKI, 2nd generation"
    EGFR_TKI_GEN3 = "egfr_tki_3", "EGFR-TKI, 3rd generation"
    OTHER_TARGETED = "other_targeted", "Other targeted therapy"
    BEVACIZUMAB = "bevacizumab", "Bevacizumab"
    CHEMOTHERAPY = "chemotherapy", "Chemotherapy regimen"
    IMMUNOTHERAPY = "immunotherapy", "Immunotherapy (checkpoint inhibitor)"
    RADIOTHERAPY = "radiotherapy", "Radiotherapy (incl. WBRT)"
    SURGERY = "surgery", "Surgery"
    TOCILIZUMAB = "tocilizumab", "Tocilizumab"
    ANAKINRA = "anakinra", "Anakinra"
    SYSTEMIC_DEXAMETHASONE = "systemic_dex", "Systemic dexamethasone"
    FOLIC_ACID = "folic_acid", "Folic acid supplementation"
    VITAMIN_B12 = "vitamin_b12", "Vitamin B12 injection"
    OTHER = "other", "Other"


class CtcaeVersion(models.TextChoices):
    V5 = "5.0", "CTCAE v5.0"
    V6 = "6.0", "CTCAE v6.0"


class CtcaeTerm(models.TextChoices):
    """CTCAE terms the seed studies report; anything else is OTHER with a free-text term."""

    WBC_DECREASED = "wbc_decreased", "White blood cell decreased"
    NEUTROPHIL_DECREASED = "neutrophil_decreased", "Neutrophil count decreased"
    PLATELET_DECREASED = "platelet_decreased", "Platelet count decreased"
    ANAEMIA = "anaemia", "Anaemia"
    ALT_INCREASED = "alt_increased", "Alanine aminotransferase increased"
    AST_INCREASED = "ast_increased", "Aspartate aminotransferase increased"
    HEADACHE = "headache", "Headache"
    NAUSEA = "nausea", "Nausea"
    VOMITING = "vomiting", "Vomiting"
    FEVER = "fever", "Fever"
    RADICULITIS = "radiculitis", "Radiculitis"
    ARACHNOIDITIS = "arachnoiditis", "Arachnoiditis"
    LEUKOENCEPHALOPATHY = "leukoencephalopathy", "Leukoencephalopathy"
    MUCOSITIS = "mucositis", "Mucositis oral"
    BACK_PAIN = "back_pain", "Back pain"
    INFECTION = "infection", "Infection (specify)"
    INTRACRANIAL_HYPOTENSION = "intracranial_hypotension", "Intracranial hypotension"
    PARAESTHESIA = "paraesthesia", "Paraesthesia"
    OTHER = "other", "Other (specify)"


#: Terms whose grade follows from a laboratory value (CTCAE v5 cut-points in registry.scoring).
CYTOPENIA_TERMS = frozenset(
    {CtcaeTerm.WBC_DECREASED, CtcaeTerm.NEUTROPHIL_DECREASED, CtcaeTerm.PLATELET_DECREASED}
)


class Attribution(models.TextChoices):
    INTRATHECAL_THERAPY = "intrathecal", "Intrathecal therapy"
    LUMBAR_PUNCTURE = "lp", "Lumbar puncture procedure"
    SYSTEMIC_THERAPY = "systemic", "Systemic therapy"
    DISEASE = "disease", "Underlying disease"
    UNKNOWN = "unknown", "Unknown"


class DischargeOutcomeCode(models.TextChoices):
    COMPLETE_RECOVERY = "complete", "Complete recovery"
    PARTIAL_IMPROVEMENT = "partial", "Partial improvement"
    EXACERBATION = "exacerbation", "Exacerbation"
    DEATH = "death", "Death"


class NeurologicalChange(models.TextChoices):
    IMPROVED = "improved", "Improved"
    STABLE = "stable", "Stable"
    WORSE = "worse", "Worse"
    NOT_ASSESSED = "not_assessed", "Not assessed"


class MriChange(models.TextChoices):
    IMPROVED = "improved", "Improved"
    STABLE = "stable", "Stable / no change"
    WORSE = "worse", "Worse"
    NOT_REVIEWED = "not_reviewed", "Not reviewed"


class CytologyResponse(models.TextChoices):
    NEGATIVE = "negative", "Negative"
    EQUIVOCAL = "equivocal", "Equivocal (atypical, suspicious)"
    POSITIVE = "positive", "Positive"
    NOT_DONE = "not_done", "Not done"


class ClinicalResponse(models.TextChoices):
    """Overall clinical response as the seed studies report it (RANO-LM components stored apart)."""

    RESPONSE = "response", "Response"
    STABLE = "stable", "Stable disease"
    PROGRESSION = "progression", "Progressive disease"
    NOT_EVALUABLE = "not_evaluable", "Not evaluable"


class FollowUpEventType(models.TextChoices):
    NPSLE_RELAPSE = "npsle_relapse", "NPSLE relapse needing hospitalisation"
    LM_PROGRESSION = "lm_progression", "LM progression"
    CART_RELAPSE = "cart_relapse", "Relapse or progression after CAR-T"
    DEATH = "death", "Death"
    LAST_CONTACT = "last_contact", "Last contact (alive)"


class Section(models.TextChoices):
    """The sections of a case record: each model declares its own (``review_section``); each is
    reviewed, verified and locked on its own."""

    IDENTITY = "identity", "Identity"
    DIAGNOSIS = "diagnosis", "Diagnosis"
    PROCEDURES = "procedures", "Lumbar punctures, CSF and intrathecal doses"
    THERAPY = "therapy", "Systemic therapy"
    SAFETY = "safety", "Adverse events"
    OUTCOMES = "outcomes", "Outcomes and follow-up"


class ScreeningStep(models.TextChoices):
    """The steps of a study's screening, as a flow diagram (STROBE; the NPSLE paper's Fig. 1) counts them."""

    SEARCHED = "searched", "Admissions searched"
    IDENTIFIED = "identified", "Possible cases identified"
    EXCLUDED = "excluded", "Excluded after record review"


class ExclusionReason(models.TextChoices):
    """Why a possible case identified by the screening was not included."""

    NO_LUMBAR_PUNCTURE = "no_lumbar_puncture", "No lumbar puncture"
    UNCERTAIN_DIAGNOSIS = "uncertain_diagnosis", "Diagnosis uncertain after expert review"
    SECONDARY_CAUSE = "secondary_cause", "Neuropsychiatric events from another cause"
    CRITERIA_NOT_MET = "criteria_not_met", "Classification criteria not met"
    DUPLICATE = "duplicate", "Repeat admission of an included patient"
    OTHER = "other", "Other reason"
