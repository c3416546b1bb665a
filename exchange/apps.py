from django.apps import AppConfig


class ExchangeConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "exchange"
    verbose_name = "Import and export"

    def ready(self) -> None:
        from . import jobs  # noqa: F401  (registers the import and export jobs' runners)
