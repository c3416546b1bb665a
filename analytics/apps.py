from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "analytics"
    verbose_name = "Cohort analytics"

    def ready(self) -> None:
        # Imported here, once the app registry is ready: they import models.
        from registry import write_hooks

        from . import jobs, signals  # noqa: F401  (the report-run job's runner; the default definition of new studies)
        from .reports.invalidation import ReportInvalidation

        write_hooks.register(ReportInvalidation())
