"""Validators shared by every app that names things with short codes (sites, studies, protocols)."""

from django.core.validators import RegexValidator

code_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]*$", "Use lower-case letters, digits, '-' or '_' (for example 'pumch' or 'lm')."
)
