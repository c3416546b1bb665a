"""Token authentication: knox tokens that also stop working while their account is locked out.

Kept apart from the token views: DRF imports authentication classes while it loads its own views.
"""

from __future__ import annotations

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
