from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo cohorts and accounts: the top floor, so its generators may use every app below."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"
    verbose_name = "Demo data"
