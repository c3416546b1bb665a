"""Every study gets its default report definition as soon as it is created."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from analytics.reports.definitions import default_definition
from registry.models import Study


@receiver(post_save, sender=Study, dispatch_uid="analytics_default_report_definition")
def create_default_report_definition(sender, instance: Study, created: bool, raw: bool, **kwargs) -> None:
    if created and not raw:  # not while loading fixtures, whose rows arrive as they are
        default_definition(instance)
