from django.apps import AppConfig


class ProtocolsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "protocols"
    verbose_name = "Treatment protocols"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
