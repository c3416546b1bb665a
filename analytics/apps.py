from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "analytics"
    verbose_name = "Cohort analytics"

    def ready(self) -> None:
        from . import jobs, signals  # noqa: F401  (the report-run job's runner; the default definition of new studies)
