"""Sign-ins, sign-outs, failures and lock-outs become security events."""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from accounts.throttling import address_blocked

from .models import SecurityEventKind
from .services import security_event_record


@receiver(user_logged_in, dispatch_uid="audit.sign_in")
def on_sign_in(sender, request, user, **kwargs):
    security_event_record(SecurityEventKind.SIGN_IN, request=request, user=user)


@receiver(user_logged_out, dispatch_uid="audit.sign_out")
def on_sign_out(sender, request, user, **kwargs):
    if user is not None:
        security_event_record(SecurityEventKind.SIGN_OUT, request=request, user=user)


@receiver(user_login_failed, dispatch_uid="audit.sign_in_failed")
def on_sign_in_failed(sender, credentials, request=None, **kwargs):
    security_event_record(
        SecurityEventKind.SIGN_IN_FAILED, request=request, username=credentials.get("username", "")
    )


@receiver(user_locked_out, dispatch_uid="audit.locked_out")
def on_locked_out(sender, request, username, ip_address, **kwargs):
    security_event_record(
        SecurityEventKind.LOCKED_OUT,
        request=request,
        username=username or "",
        detail={"ip_address": ip_address},
    )


@receiver(address_blocked, dispatch_uid="audit.address_blocked")
def on_address_blocked(sender, request, ip_address, **kwargs):
    security_event_record(SecurityEventKind.THROTTLED, request=request, detail={"ip_address": ip_address})
