from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self) -> None:
        from .roles import sync_role_groups  # models are importable only once the apps are ready

        post_migrate.connect(sync_role_groups, dispatch_uid="accounts.sync_role_groups")
