"""Intrathecal treatment protocols: templates, planned courses, dose rules and safety checks."""
