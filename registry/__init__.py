"""Case records of intrathecal therapy: patients, diagnoses, lumbar punctures, CSF, doses, outcomes."""
