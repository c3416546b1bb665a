"""Keeping plans true when a lumbar puncture that fulfilled an injection is deleted."""

from __future__ import annotations

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from registry.models import LumbarPuncture
from registry.services.records import attribute

from .choices import CourseStatus, InjectionStatus
from .models import Course, PlannedInjection


@receiver(pre_delete, sender=LumbarPuncture, dispatch_uid="protocols.reopen_planned_injection")
def reopen_planned_injection(sender, instance: LumbarPuncture, **kwargs) -> None:
    """The injection returns to planned, attributed to whoever deletes the LP and with their reason.

    (The database's SET NULL would clear the link too, but without a history row or a status.)
    """
    injection = (
        PlannedInjection.objects.filter(lumbar_puncture=instance).select_related("course").order_by().first()
    )
    if injection is None:
        return
    actor = getattr(instance, "_history_user", None)
    reason = f"Its lumbar puncture was deleted: {getattr(instance, '_change_reason', '')}".rstrip(": ")
    injection.lumbar_puncture, injection.status = None, InjectionStatus.PLANNED
    injection.deviation, injection.deviation_reason = "", ""
    attribute(injection, actor=actor, reason=reason)
    injection.save()
    course = injection.course
    if (
        course.status == CourseStatus.COMPLETED
        and not Course.objects.filter(patient_id=course.patient_id, status=CourseStatus.ACTIVE).exists()
    ):
        course.status, course.ended_on = CourseStatus.ACTIVE, None
        attribute(course, actor=actor, reason=reason)
        course.save()
