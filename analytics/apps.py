from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "analytics"
    verbose_name = "Cohort analytics"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the default report definition to new studies)
