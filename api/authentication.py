"""Token authentication: knox tokens that also stop working while their account is locked out.

Kept apart from the token views: DRF imports authentication classes while it loads its own views.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from rest_framework import exceptions

from accounts.throttling import account_is_locked


class RegistryTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, token: bytes):
        try:
            token.decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return super().authenticate_credentials(token)

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
        if account_is_locked(user.get_username()):
            raise exceptions.AuthenticationFailed("This account is locked after repeated failed sign-ins.")
        return user, token


class RegistryTokenScheme(OpenApiAuthenticationExtension):
    """How the schema describes the token: ``Authorization: Token <token>``."""

    target_class = RegistryTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")
