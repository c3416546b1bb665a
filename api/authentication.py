"""Token authentication: knox tokens that also stop working while their account is locked out.

Kept apart from the token views: DRF imports authentication classes while it loads its own views.
"""

from __future__ import annotations

import binascii
from hmac import compare_digest

from django.db.models import Exists, OuterRef
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.models import get_token_model
from knox.settings import CONSTANTS, knox_settings
from rest_framework import exceptions

from accounts.throttling import lockouts


class RegistryTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, token: bytes):
        """Knox's check of the presented token, asking in the one query that reads the token and its
        user whether the account is locked out (a second query per API request before: ~0.8 ms of
        ~7 under schemathesis). The rest is knox's: tokens share their first characters, so each
        candidate's digest is compared in constant time, and a used token is renewed."""
        try:
            text = token.decode("utf-8")
            digest = hash_token(text)
        except (UnicodeDecodeError, TypeError, binascii.Error):
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        candidates = (
            get_token_model()
            .objects.filter(token_key=text[: CONSTANTS.TOKEN_KEY_LENGTH])
            .select_related("user")
            .annotate(account_locked=Exists(lockouts(OuterRef("user__username"))))
        )
        for auth_token in candidates:
            if self._cleanup_token(auth_token):
                continue
            if compare_digest(digest, auth_token.digest):
                if knox_settings.AUTO_REFRESH and auth_token.expiry:
                    self.renew_token(auth_token)
                return self.validate_user(auth_token)
        raise exceptions.AuthenticationFailed("Invalid token.")

    def _cleanup_token(self, auth_token) -> bool:
        """Refuse the presented token once expired; read no other token.

        Knox reads all of the user's tokens on every request to delete the expired ones (that query
        was a tenth of an API request's time under schemathesis), and a deletion here would be
        rolled back with the refused request anyway. Expired tokens are deleted when the account is
        next issued one (``api.tokens.TokenObtainView``).
        """
        return auth_token.expiry is not None and auth_token.expiry < timezone.now()

    def validate_user(self, auth_token):
        user, token = super().validate_user(auth_token)
        if auth_token.account_locked:
            raise exceptions.AuthenticationFailed("This account is locked after repeated failed sign-ins.")
        return user, token


class RegistryTokenScheme(OpenApiAuthenticationExtension):
    """How the schema describes the token: ``Authorization: Token <token>``."""

    target_class = RegistryTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")
