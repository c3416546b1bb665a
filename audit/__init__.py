"""The audit trail: security events, append-only history, patient timelines and audit exports."""
