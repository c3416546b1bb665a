"""Token authentication: knox tokens that also stop working while their account is locked out.

Kept apart from the token views: DRF imports authentication classes while it loads its own views.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Iterator
from hmac import compare_digest
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections, router, transaction
from django.db.models import Field, Model
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.models import get_token_model
from knox.settings import CONSTANTS, knox_settings
from rest_framework import exceptions

from accounts.throttling import lockout_condition


class _Candidates:
    """The tokens sharing the presented key, each with its user and whether the account is locked out
    now: one statement, written once per database from the models' metadata and run as it stands.

    It is the query knox's check would make with ``select_related("user")`` plus an ``Exists`` of the
    lock-out counters (``accounts.throttling.lockout_condition``), but the ORM built and compiled that
    query on every API request: 1.6 ms of CPU a call (cProfile: two thirds building and compiling),
    8% of the whole test suite's CPU (py-spy, 2026-12-07), most of it schemathesis's requests. Run as
    written it takes 0.39 ms (SQLite, DEBUG on, 2,000 calls). The values pass through each field's database converters, as the ORM's
    would (SQLite returns datetimes as text and booleans as integers).
    """

    def __init__(self, alias: str) -> None:
        connection = connections[alias]
        quote = connection.ops.quote_name
        token_model, user_model = get_token_model(), get_user_model()
        self.alias = alias
        self.models = (token_model, user_model)
        self.fields = [model._meta.concrete_fields for model in self.models]
        self.attnames = [[field.attname for field in fields] for fields in self.fields]

        def column(model: type[Model], name: str) -> str:
            field = model._meta.get_field(name)
            assert isinstance(field, Field) and field.column  # a concrete field has a column
            return f"{quote(model._meta.db_table)}.{quote(field.column)}"

        columns = [
            column(model, name)
            for model, names in zip(self.models, self.attnames, strict=True)
            for name in names
        ]
        locked, self.lock_params = lockout_condition(
            connection, column(user_model, user_model.USERNAME_FIELD)
        )
        token_table, user_table = (quote(model._meta.db_table) for model in self.models)
        self.sql = (
            f"SELECT {', '.join(columns)}, EXISTS({locked}) FROM {token_table} INNER JOIN {user_table} "
            f"ON {column(user_model, user_model._meta.pk.name)} = {column(token_model, 'user')} "
            f"WHERE {column(token_model, 'token_key')} = %s"
        )
        self.compiler = token_model.objects.none().query.get_compiler(alias)
        self.converters = self.compiler.get_converters(
            [
                field.get_col(model._meta.db_table)
                for model, fields in zip(self.models, self.fields, strict=True)
                for field in fields
            ]
        )

    def __call__(self, key: str) -> Iterator[Any]:
        with connections[self.alias].cursor() as cursor:
            cursor.execute(self.sql, [*self.lock_params(), key])
            rows = cursor.fetchall()
        token_model, user_model = self.models
        token_names, user_names = self.attnames
        split = len(token_names)
        for row in self.compiler.apply_converters(rows, self.converters):
            token = token_model.from_db(self.alias, token_names, row[:split])
            token.user = user_model.from_db(self.alias, user_names, row[split:-1])
            token.account_locked = bool(row[-1])
            yield token


@functools.cache
def _candidates(alias: str) -> _Candidates:
    return _Candidates(alias)


class RegistryTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, token: bytes):
        """Knox's check of the presented token, reading the token, its user and whether the account is
        locked out in one statement (``_Candidates``). The rest is knox's: tokens share their first
        characters, so each candidate's digest is compared in constant time, and a token used by a
        served request is renewed (``renew_token``)."""
        try:
            text = token.decode("utf-8")
            digest = hash_token(text)
        except (UnicodeDecodeError, TypeError, binascii.Error):
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        alias = router.db_for_read(get_token_model())
        for auth_token in _candidates(alias)(text[: CONSTANTS.TOKEN_KEY_LENGTH]):
            if self._cleanup_token(auth_token):
                continue
            if compare_digest(digest, auth_token.digest):
                if knox_settings.AUTO_REFRESH and auth_token.expiry:
                    self.renew_token(auth_token)
                return self.validate_user(auth_token)
        raise exceptions.AuthenticationFailed("Invalid token.")

    def renew_token(self, auth_token) -> None:
        """Knox's renewal (the idle deadline moved on, saved at most once a minute), written when the
        request's changes commit.

        Requests are atomic, and a refused one is rolled back: knox's renewal, written inside it, went
        with it, so the next request found the old deadline and wrote it again — an UPDATE for every
        refused API request (py-spy: 4.8% of the schemathesis module's CPU, 2026-12-07). Only a
        served request ever kept its renewal; now only a served request writes one.
        """
        alias = router.db_for_write(type(auth_token))
        renew = super().renew_token
        transaction.on_commit(lambda: renew(auth_token), using=alias, robust=True)

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
