from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        # Imported here: these modules import models, which are importable only once the apps are ready.
        from registry import action_events

        from . import signals  # noqa: F401  (connects the sign-in and lock-out receivers)
        from .database_roles import renew_grants_after_migrate
        from .immutability import protect_audit_tables
        from .services import action_event_record

        # Review and protocols sit below audit: their actions reach the event table through this hook.
        action_events.register(action_event_record)

        post_migrate.connect(protect_audit_tables, dispatch_uid="audit.protect_audit_tables")
        post_migrate.connect(renew_grants_after_migrate, dispatch_uid="audit.renew_grants_after_migrate")
