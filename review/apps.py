from django.apps import AppConfig


class ReviewConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "review"
    verbose_name = "Review workflow"

    def ready(self) -> None:
        # Imported here: guards import models, which are importable only once the apps are ready.
        from registry import write_hooks

        from . import jobs  # noqa: F401 (registers the quality-sweep runner with the jobs app)
        from .guards import ReviewGuard

        write_hooks.register(ReviewGuard())
