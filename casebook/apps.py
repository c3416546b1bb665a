from django.apps import AppConfig


class CasebookConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "casebook"
    verbose_name = "Case-record pages"
