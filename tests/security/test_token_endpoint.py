"""High finding: the token endpoint had no brute-force limit, and tokens lived for ever.

70 wrong passwords on ``/api/auth/token/``, then the right one, gave a token. Now the endpoint counts
failures with the sign-in page's counters (django-axes: same limit, same lock-out) and answers 429
while locked; a per-address limit stops password spraying across accounts; tokens (django-rest-knox,
stored hashed) expire after idle and absolute lifetimes, stop working when the account is locked or
deactivated, are revoked on a password change, and their owner or an administrator can revoke them.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from audit.models import SecurityEvent, SecurityEventKind
from tests import factories as f

pytestmark = [pytest.mark.django_db, pytest.mark.axes]

PASSWORD = "a-long-password-1"
TOKEN_URL = "/api/auth/token/"


@pytest.fixture
def lin():
    return f.UserFactory(username="lin", password=PASSWORD)


def _token(client: APIClient, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post(TOKEN_URL, {"username": username, "password": password}, format="json", REMOTE_ADDR=ip)


def _authorised(token: str, ip: str = "10.0.0.1") -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get("/api/studies/", REMOTE_ADDR=ip).status_code


def test_token_endpoint_brute_force_is_locked_out_like_the_sign_in_page(lin, settings):
    settings.AXES_FAILURE_LIMIT = 5
    client = APIClient()
    answers = [_token(client, "lin", f"guess-{n}").status_code for n in range(70)]
    assert answers[:4] == [400] * 4
    assert set(answers[5:]) == {429}, answers
    right = _token(client, "lin", PASSWORD)
    assert right.status_code == 429
    assert "token" not in right.json()
    assert "locked" in right.json()["detail"]
    assert SecurityEvent.objects.filter(kind=SecurityEventKind.LOCKED_OUT, username="lin").exists()
    assert not AuthToken.objects.exists()


def test_token_endpoint_and_sign_in_page_share_one_failure_counter(client, lin, settings):
    settings.AXES_FAILURE_LIMIT = 5
    for n in range(3):
        client.post(reverse("login"), {"username": "lin", "password": f"guess-{n}"}, REMOTE_ADDR="10.0.0.1")
    api = APIClient()
    assert _token(api, "lin", "guess-3").status_code == 400
    assert _token(api, "lin", "guess-4").status_code == 429  # the fifth failure, wherever it happened
    page = client.post(reverse("login"), {"username": "lin", "password": PASSWORD}, REMOTE_ADDR="10.0.0.1")
    assert "locked" in page.content.decode().lower()
    assert "_auth_user_id" not in client.session


def test_password_spraying_from_one_address_is_stopped(settings):
    settings.AXES_FAILURE_LIMIT = 5
    settings.SIGN_IN_ADDRESS_FAILURE_LIMIT = 20
    users = [f.UserFactory(username=f"staff{n}", password=PASSWORD) for n in range(30)]
    client = APIClient()
    answers = [_token(client, user.username, "Spring2026!", ip="203.0.113.9").status_code for user in users]
    assert answers[:20] == [400] * 20
    assert set(answers[20:]) == {429}
    # The address is stopped even with a right password; another address is not affected.
    assert _token(client, "staff0", PASSWORD, ip="203.0.113.9").status_code == 429
    assert _token(client, "staff0", PASSWORD, ip="198.51.100.4").status_code == 200
    assert SecurityEvent.objects.filter(kind=SecurityEventKind.THROTTLED, ip_address="203.0.113.9").exists()


def test_sign_in_page_applies_the_per_address_limit_too(client, settings):
    settings.SIGN_IN_ADDRESS_FAILURE_LIMIT = 3
    f.UserFactory(username="ana", password=PASSWORD)
    for n in range(3):
        client.post(reverse("login"), {"username": f"nobody{n}", "password": "x"}, REMOTE_ADDR="203.0.113.7")
    page = client.post(reverse("login"), {"username": "ana", "password": PASSWORD}, REMOTE_ADDR="203.0.113.7")
    assert page.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_token_is_issued_hashed_and_works(lin):
    answer = _token(APIClient(), "lin", PASSWORD)
    assert answer.status_code == 200
    token = answer.json()["token"]
    assert answer.json()["expiry"]
    assert _authorised(token) == 200
    stored = AuthToken.objects.get(user=lin)
    assert token not in (stored.digest, stored.token_key)  # only a hash is kept
    assert SecurityEvent.objects.filter(kind=SecurityEventKind.TOKEN_ISSUED, user=lin).exists()


def test_a_locked_or_deactivated_accounts_tokens_stop_working(lin, settings):
    settings.AXES_FAILURE_LIMIT = 3
    token = _token(APIClient(), "lin", PASSWORD).json()["token"]
    for n in range(3):  # someone guesses from elsewhere: the account is locked
        _token(APIClient(), "lin", f"guess-{n}", ip="192.0.2.50")
    assert _authorised(token) == 401
    settings.AXES_FAILURE_LIMIT = 100  # the lock-out over, the token works again
    assert _authorised(token) == 200
    lin.is_active = False
    lin.save()
    assert _authorised(token) == 401


def test_a_token_its_user_and_the_lock_out_are_read_in_one_query(lin, django_assert_num_queries):
    from rest_framework.test import APIRequestFactory

    from api.authentication import RegistryTokenAuthentication

    token = _token(APIClient(), "lin", PASSWORD).json()["token"]
    request = APIRequestFactory().get("/api/studies/", HTTP_AUTHORIZATION=f"Token {token}")
    with django_assert_num_queries(1):
        user, stored = RegistryTokenAuthentication().authenticate(request)
    assert (user, stored.user_id, stored.account_locked) == (lin, lin.pk, False)


def test_the_token_check_reads_what_the_orm_reads(lin, django_capture_on_commit_callbacks):
    # The check runs its statement without the ORM: every field of the token and of its user must
    # come back as the ORM gives it (types included: SQLite returns datetimes as text).
    from rest_framework.test import APIRequestFactory

    from api.authentication import RegistryTokenAuthentication

    lin.last_login = timezone.now()
    lin.save()
    token = _token(APIClient(), "lin", PASSWORD).json()["token"]
    stored = AuthToken.objects.select_related("user").get(token_key=token[:15])
    request = APIRequestFactory().get("/api/studies/", HTTP_AUTHORIZATION=f"Token {token}")
    with django_capture_on_commit_callbacks(execute=True):
        user, read = RegistryTokenAuthentication().authenticate(request)
    assert read.expiry > stored.expiry  # knox moves the idle deadline on use (saved once a minute)
    read.expiry = stored.expiry
    for mine, orms in ((read, stored), (user, stored.user)):
        fields = [field.attname for field in type(orms)._meta.concrete_fields]
        mine_values = [getattr(mine, name) for name in fields]
        orm_values = [getattr(orms, name) for name in fields]
        assert mine_values == orm_values
        assert [type(v) for v in mine_values] == [type(v) for v in orm_values]
        assert not mine._state.adding and mine._state.db == orms._state.db
    assert read.user is user and read.account_locked is False


def test_a_lock_out_ends_with_its_cool_off(lin, settings):
    from axes.models import AccessAttempt

    settings.AXES_FAILURE_LIMIT = 3
    token = _token(APIClient(), "lin", PASSWORD).json()["token"]
    for n in range(3):
        _token(APIClient(), "lin", f"guess-{n}", ip="192.0.2.50")
    assert _authorised(token) == 401
    # The counter is older than the cool-off: the account is no longer locked.
    AccessAttempt.objects.filter(username="lin").update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - dt.timedelta(seconds=1)
    )
    assert _authorised(token) == 200
    # Another account's lock-out does not lock this one.
    f.UserFactory(username="mei", password=PASSWORD)
    for n in range(3):
        _token(APIClient(), "mei", f"guess-{n}", ip="192.0.2.51")
    assert _authorised(token) == 200


def test_tokens_expire_after_the_idle_and_the_absolute_lifetime(
    lin, settings, django_capture_on_commit_callbacks
):
    token = _token(APIClient(), "lin", PASSWORD).json()["token"]
    stored = AuthToken.objects.get(user=lin)
    now = timezone.now()
    # Idle: unused for longer than the idle lifetime.
    AuthToken.objects.filter(pk=stored.pk).update(expiry=now - dt.timedelta(seconds=1))
    assert _authorised(token) == 401
    # Use pushes the idle deadline forward, but never past the absolute lifetime from creation.
    token = _token(APIClient(), "lin", PASSWORD).json()["token"]
    stored = AuthToken.objects.get(token_key=token[:15])
    AuthToken.objects.filter(pk=stored.pk).update(
        created=now - settings.REST_KNOX["AUTO_REFRESH_MAX_TTL"] + dt.timedelta(minutes=5),
        expiry=now + dt.timedelta(minutes=1),
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert _authorised(token) == 200
    stored.refresh_from_db()
    assert now + dt.timedelta(minutes=2) < stored.expiry  # renewed, and only up to the absolute limit
    assert stored.expiry <= stored.created + settings.REST_KNOX["AUTO_REFRESH_MAX_TTL"]
    AuthToken.objects.filter(pk=stored.pk).update(
        created=now - settings.REST_KNOX["AUTO_REFRESH_MAX_TTL"] - dt.timedelta(seconds=1),
        expiry=now - dt.timedelta(seconds=1),
    )
    assert _authorised(token) == 401


def test_only_a_served_request_renews_its_token_and_at_most_once_a_minute(
    lin, django_capture_on_commit_callbacks, django_assert_num_queries
):
    # Requests are atomic: a refused one is rolled back, so it must not write a renewal at all (it
    # once wrote one on every refused request, which the rollback then undid).
    token = _token(APIClient(), "lin", PASSWORD).json()["token"]
    stored = AuthToken.objects.get(token_key=token[:15])
    soon = timezone.now() + dt.timedelta(minutes=1)
    AuthToken.objects.filter(pk=stored.pk).update(expiry=soon)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    with django_capture_on_commit_callbacks(execute=True) as renewals:
        assert client.get("/api/patients/999999999/").status_code == 404
        assert client.post("/api/patients/", {}, format="json").status_code == 403
    assert renewals == []
    stored.refresh_from_db()
    assert stored.expiry == soon
    with django_capture_on_commit_callbacks(execute=True) as renewals:
        assert client.get("/api/studies/").status_code == 200
    assert len(renewals) == 1
    stored.refresh_from_db()
    renewed = stored.expiry
    assert renewed > soon + dt.timedelta(minutes=30)
    # A second use within the minute finds nothing to write.
    with django_capture_on_commit_callbacks(execute=False) as renewals:
        assert client.get("/api/studies/").status_code == 200
    with django_assert_num_queries(0):
        renewals[0]()
    stored.refresh_from_db()
    assert stored.expiry == renewed


def test_expired_tokens_are_refused_and_deleted_when_a_new_one_is_issued(lin):
    presented = _token(APIClient(), "lin", PASSWORD).json()["token"]
    forgotten = _token(APIClient(), "lin", PASSWORD).json()["token"]
    past = timezone.now() - dt.timedelta(seconds=1)
    AuthToken.objects.filter(user=lin).update(expiry=past)
    assert _authorised(presented) == 401
    assert _authorised(forgotten) == 401
    fresh = _token(APIClient(), "lin", PASSWORD).json()["token"]
    assert set(AuthToken.objects.values_list("token_key", flat=True)) == {fresh[:15]}
    assert _authorised(fresh) == 200


def test_a_password_change_revokes_every_token(lin):
    tokens = [_token(APIClient(), "lin", PASSWORD).json()["token"] for _ in range(2)]
    lin.set_password("another-long-password-2")
    lin.save()
    assert [_authorised(t) for t in tokens] == [401, 401]
    assert not AuthToken.objects.filter(user=lin).exists()
    assert SecurityEvent.objects.filter(kind=SecurityEventKind.TOKEN_REVOKED, user=lin).exists()


def test_the_owner_lists_and_revokes_tokens(lin):
    first = _token(APIClient(), "lin", PASSWORD).json()["token"]
    second = _token(APIClient(), "lin", PASSWORD).json()["token"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    listed = api.get("/api/auth/tokens/").json()
    assert len(listed) == 2 and all({"token_key", "created", "expiry", "current"} <= set(t) for t in listed)
    other_key = next(t["token_key"] for t in listed if not t["current"])
    assert api.delete(f"/api/auth/tokens/{other_key}/").status_code == 204
    assert _authorised(second) == 401 and _authorised(first) == 200
    assert api.post("/api/auth/token/revoke/").status_code == 204  # the token in use
    assert _authorised(first) == 401
    events = SecurityEvent.objects.filter(kind=SecurityEventKind.TOKEN_REVOKED, user=lin)
    assert events.count() == 2


def test_another_users_token_cannot_be_revoked_by_its_key(lin):
    ana = f.UserFactory(username="ana", password=PASSWORD)
    theirs = _token(APIClient(), "ana", PASSWORD).json()["token"]
    mine = _token(APIClient(), "lin", PASSWORD).json()["token"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {mine}")
    key = AuthToken.objects.get(user=ana).token_key
    assert api.delete(f"/api/auth/tokens/{key}/").status_code == 404
    assert _authorised(theirs) == 200


def test_an_administrator_revokes_tokens_in_the_admin(client, lin):
    token = _token(APIClient(), "lin", PASSWORD).json()["token"]
    root = f.UserFactory(username="root", is_superuser=True, is_staff=True)
    client.force_login(root)
    stored = AuthToken.objects.get(user=lin)
    changelist = reverse("admin:knox_authtoken_changelist")
    response = client.post(
        changelist, {"action": "revoke_tokens", "_selected_action": [stored.pk]}, follow=True
    )
    assert response.status_code == 200
    assert _authorised(token) == 401
    event = SecurityEvent.objects.get(kind=SecurityEventKind.TOKEN_REVOKED)
    assert event.user == root and event.detail["owner"] == "lin"
