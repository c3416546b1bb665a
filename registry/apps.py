from django.apps import AppConfig


class RegistryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "registry"
    verbose_name = "Case records"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks; they read the loaded models)
