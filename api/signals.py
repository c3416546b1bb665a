"""A password change revokes every API token of the account (a stolen token dies with the password)."""

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from knox.models import AuthToken

from .tokens import tokens_revoke


@receiver(pre_save, sender=get_user_model(), dispatch_uid="api.note_password_change")
def note_password_change(sender, instance, update_fields=None, **kwargs):
    if instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    stored = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    instance._password_was_changed = stored is not None and stored != instance.password


@receiver(post_save, sender=get_user_model(), dispatch_uid="api.revoke_tokens_on_password_change")
def revoke_tokens_on_password_change(sender, instance, **kwargs):
    if getattr(instance, "_password_was_changed", False):
        instance._password_was_changed = False
        tokens_revoke(AuthToken.objects.filter(user=instance), actor=None, why="the password was changed")
