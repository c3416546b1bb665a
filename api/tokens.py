"""API tokens (django-rest-knox): issued against the sign-in throttle, expiring, revocable, audited.

Knox keeps only a hash of each token, gives it an idle lifetime that use extends
(``API_TOKEN_IDLE_MINUTES``) and caps it at an absolute lifetime from its creation
(``API_TOKEN_MAX_HOURS``). On top of knox:
- the token endpoint counts failures with the sign-in page's counters (django-axes) and answers 429
  while the account, or the address, is locked out;
- a token stops working while its account is locked out or deactivated;
- a password change revokes every token of the account (``api.signals``);
- the owner lists and revokes tokens here; an administrator revokes them in the admin.
Failed attempts are answered with a plain 400 response rather than an exception, because DRF rolls
back the request's transaction on an exception, and the failure counters must be kept.
"""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from knox.models import AuthToken
from knox.settings import knox_settings
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.generics import get_object_or_404
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from audit.models import SecurityEventKind
from audit.services import security_event_record

from .authentication import RegistryTokenAuthentication
from .parsers import BoundedJSONParser

LOCKED = (
    "Too many failed sign-ins: this account or this address is locked for a while. "
    "Try again later or ask an administrator."
)


def tokens_revoke(tokens: QuerySet[AuthToken], *, actor: User | None, request=None, why: str) -> int:
    """Delete the tokens, one security event per token: whose it was, who revoked it, and why."""
    revoked = 0
    for token in tokens.select_related("user"):
        security_event_record(
            SecurityEventKind.TOKEN_REVOKED,
            request=request,
            user=actor if actor is not None else token.user,
            detail={"owner": token.user.get_username(), "token_key": token.token_key, "why": why},
        )
        token.delete()
        revoked += 1
    return revoked


class TokenSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField(help_text="Whether this request is made with this token.")

    class Meta:
        model = AuthToken
        fields = ["token_key", "created", "expiry", "current"]

    def get_current(self, token: AuthToken) -> bool:
        request = self.context["request"]
        return isinstance(request.auth, AuthToken) and request.auth.digest == token.digest


ISSUED = inline_serializer(
    "IssuedToken",
    {
        "token": serializers.CharField(help_text="Send as `Authorization: Token <token>`; shown only now."),
        "expiry": serializers.DateTimeField(help_text="When the token expires unless it is used before."),
    },
)
REFUSED = OpenApiResponse(description="Wrong credentials (400) or locked out (429).")


class TokenObtainView(APIView):
    """Exchange a username and password for a token (throttled like the sign-in page)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [BoundedJSONParser, FormParser, MultiPartParser]
    serializer_class = AuthTokenSerializer

    @extend_schema(request=AuthTokenSerializer, responses={200: ISSUED, 400: REFUSED, 429: REFUSED})
    def post(self, request):
        credentials = AuthTokenSerializer(data=request.data, context={"request": request})
        valid = credentials.is_valid()
        if getattr(request, "axes_locked_out", False):
            return Response({"detail": LOCKED, "code": "locked"}, status=status.HTTP_429_TOO_MANY_REQUESTS)
        if not valid:
            return Response(credentials.errors, status=status.HTTP_400_BAD_REQUEST)
        user = credentials.validated_data["user"]
        user.auth_token_set.filter(expiry__lt=timezone.now()).delete()  # expired: of no use to anyone
        limit = knox_settings.TOKEN_LIMIT_PER_USER
        if limit is not None and user.auth_token_set.count() >= limit:
            return Response(
                {"detail": f"You already hold {limit} tokens; revoke one (DELETE /api/auth/tokens/<key>/)."},
                status=status.HTTP_403_FORBIDDEN,
            )
        instance, token = AuthToken.objects.create(user=user)
        request.user = user
        user_logged_in.send(sender=type(user), request=request, user=user)  # axes resets its counter
        security_event_record(
            SecurityEventKind.TOKEN_ISSUED,
            request=request,
            user=user,
            detail={"token_key": instance.token_key, "expiry": instance.expiry.isoformat()},
        )
        return Response({"token": token, "expiry": instance.expiry})


class TokenRevokeCurrentView(APIView):
    """Revoke the token this request is made with."""

    authentication_classes = [RegistryTokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        tokens_revoke(
            AuthToken.objects.filter(digest=request.auth.digest),
            actor=request.user,
            request=request,
            why="revoked by its owner",
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenListView(APIView):
    """The caller's own tokens (never the token itself: it is not stored)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: TokenSerializer(many=True)})
    def get(self, request):
        tokens = AuthToken.objects.filter(user=request.user).order_by("created")
        return Response(TokenSerializer(tokens, many=True, context={"request": request}).data)


class TokenDetailView(APIView):
    """Revoke one of the caller's tokens by its key (another person's key is not found)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None, responses={204: None, 404: OpenApiResponse(description="No such token of yours.")}
    )
    def delete(self, request, token_key: str):
        token = get_object_or_404(AuthToken.objects.filter(user=request.user), token_key=token_key)
        tokens_revoke(
            AuthToken.objects.filter(digest=token.digest),
            actor=request.user,
            request=request,
            why="revoked by its owner",
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
