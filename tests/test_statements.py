"""accounts.statements: a read built once and compiled once per database gives what its queryset gives."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from accounts.access import roles_by_site
from accounts.models import Role, SiteMembership, User
from accounts.statements import Statement
from tests import factories as f

pytestmark = pytest.mark.django_db


def _fields(user: User) -> dict:
    return {field.attname: getattr(user, field.attname) for field in User._meta.concrete_fields}


def test_model_rows_equal_the_querysets_with_every_field_converted():
    built = []

    def by_name(username):
        built.append(username)
        return User.objects.filter(username=username)

    users = Statement(by_name, username=str)
    alice = f.UserFactory(username="alice", is_active=False)
    f.UserFactory(username="bob")
    for username in ("alice", "bob", "nobody"):
        got = users(username=username)
        expected = list(User.objects.filter(username=username))
        assert [_fields(user) for user in got] == [_fields(user) for user in expected]
    (row,) = users(username="alice")
    assert row.is_active is False and row.date_joined == alice.date_joined  # bool and aware datetime
    assert row.date_joined.tzinfo is not None
    assert not row._state.adding and row._state.db == "default"
    assert len(built) == 2, "built twice at the first run (two sets of stand-ins), never again"


def test_values_lists_and_flat_lists_are_the_querysets():
    site_a, site_b = f.SiteFactory(), f.SiteFactory()
    user = f.UserFactory()
    f.MembershipFactory(user=user, site=site_a, role=Role.DATA_ENTRY)
    f.MembershipFactory(user=user, site=site_b, role=Role.REVIEWER)
    pairs = Statement(
        lambda user_id: (
            SiteMembership.objects.filter(user_id=user_id).order_by("pk").values_list("site_id", "role")
        ),
        user_id=int,
    )
    roles = Statement(
        lambda user_id, site_id: SiteMembership.objects.filter(user_id=user_id, site_id=site_id).values_list(
            "role", flat=True
        ),
        user_id=int,
        site_id=int,
    )
    assert pairs(user_id=user.pk) == list(
        SiteMembership.objects.filter(user_id=user.pk).order_by("pk").values_list("site_id", "role")
    )
    assert pairs(user_id=user.pk) == [(site_a.pk, Role.DATA_ENTRY), (site_b.pk, Role.REVIEWER)]
    assert roles(user_id=user.pk, site_id=site_b.pk) == [Role.REVIEWER]
    assert roles(user_id=user.pk, site_id=site_a.pk) == [Role.DATA_ENTRY]  # new values, not the first run's
    assert pairs(user_id=user.pk + 1000) == []


def test_a_run_is_one_query_seen_by_djangos_query_log():
    user = f.UserFactory()
    f.MembershipFactory(user=user, role=Role.DATA_ENTRY)
    roles_by_site(user)  # compiled
    again = User.objects.get(pk=user.pk)
    with CaptureQueriesContext(connection) as queries:
        assert list(roles_by_site(again).values()) == [{Role.DATA_ENTRY}]
    assert len(queries) == 1 and "accounts_sitemembership" in queries[0]["sql"]


def test_constants_of_the_queryset_stay_in_the_sql():
    f.UserFactory(username="carol", is_staff=True)
    f.UserFactory(username="dave", is_staff=False)
    staff = Statement(
        lambda prefix: User.objects.filter(is_staff=True, username__startswith=prefix).values_list(
            "username", flat=True
        ),
        prefix=str,
    )
    # startswith escapes and suffixes the value: the stand-in no longer reaches the SQL as given.
    with pytest.raises(ValueError, match="each parameter must reach the SQL once"):
        staff(prefix="c")
    exact = Statement(
        lambda username: User.objects.filter(is_staff=True, username=username).values_list(
            "username", flat=True
        ),
        username=str,
    )
    assert exact(username="carol") == ["carol"] and exact(username="dave") == []


def test_parameters_are_checked():
    users = Statement(lambda pk: User.objects.filter(pk=pk), pk=int)
    with pytest.raises(TypeError, match="pk must be int"):
        users(pk="1")
    with pytest.raises(TypeError, match="pk must be int"):
        users(pk=True)
    with pytest.raises(TypeError, match="give exactly"):
        users(pk=1, other=2)
    with pytest.raises(TypeError, match="must be int, str or datetime"):
        Statement(lambda when: User.objects.filter(last_login=when), when=object)
    with pytest.raises(ValueError, match="one model's own fields"):
        Statement(lambda pk: SiteMembership.objects.select_related("user").filter(pk=pk), pk=int)(pk=1)


@pytest.mark.skipif(not connection.features.has_select_for_update, reason="SQLite takes no row locks")
@pytest.mark.django_db(transaction=True)
def test_a_locking_read_locks_and_needs_a_transaction_as_the_orm_does():
    user = f.UserFactory()
    locked = Statement(lambda pk: User.objects.select_for_update().filter(pk=pk), pk=int)
    with pytest.raises(TransactionManagementError):
        locked(pk=user.pk)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        assert [row.pk for row in locked(pk=user.pk)] == [user.pk]
    assert queries[-1]["sql"].rstrip().endswith("FOR UPDATE")
    with pytest.raises(TransactionManagementError):
        locked(pk=user.pk)  # compiled now, still refused outside a transaction


def test_a_parent_by_key_is_found_exactly_where_the_scoped_query_finds_it():
    from django.http import Http404

    from accounts.access import Capability, get_scoped_by_pk_or_404, get_scoped_or_404
    from registry.models import CsfResult, LumbarPuncture, Patient, Study

    own, other = f.SiteFactory(), f.SiteFactory()
    study = f.StudyFactory(sites=[own, other])
    here, there = f.PatientFactory(study=study, site=own), f.PatientFactory(study=study, site=other)
    lps = [f.LumbarPunctureFactory(patient=here), f.LumbarPunctureFactory(patient=there)]
    nurse, researcher, nobody = f.UserFactory(), f.UserFactory(), f.UserFactory()
    f.MembershipFactory(user=nurse, site=own, role=Role.DATA_ENTRY)
    f.MembershipFactory(user=researcher, site=own, role=Role.RESEARCHER)
    admin = f.UserFactory(is_superuser=True)

    def answer(call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except Http404:
            return "404"

    csfs = [f.CsfResultFactory(lumbar_puncture=lp) for lp in lps]
    cases = itertools.product(
        [(Patient, here.pk), (Patient, there.pk), (Patient, there.pk + 1000)]
        + [(LumbarPuncture, lp.pk) for lp in lps]
        + [(CsfResult, csf.pk) for csf in csfs]
        + [(Study, study.pk)],
        [nurse, researcher, nobody, admin],
        [Capability.VIEW_RECORDS, Capability.EDIT_RECORDS],
    )
    for (model, pk), user, capability in cases:
        fast = answer(get_scoped_by_pk_or_404, model, user, capability, pk)
        scoped = answer(get_scoped_or_404, model.objects.all(), user, capability, pk=pk)
        assert fast == scoped, (model.__name__, user, capability, pk)
    assert get_scoped_by_pk_or_404(Patient, nurse, Capability.EDIT_RECORDS, here.pk) == here
    with CaptureQueriesContext(connection) as queries:  # the record and its site in one read
        assert get_scoped_by_pk_or_404(CsfResult, nurse, Capability.VIEW_RECORDS, csfs[0].pk) == csfs[0]
    assert len(queries) == 1
    assert answer(get_scoped_by_pk_or_404, Patient, researcher, Capability.EDIT_RECORDS, here.pk) == "404"


def test_a_datetime_parameter_compares_as_the_orms_does():
    import datetime as dt

    from django.utils import timezone

    earlier, later = f.UserFactory(), f.UserFactory()
    now = timezone.now()
    User.objects.filter(pk=earlier.pk).update(last_login=now - dt.timedelta(microseconds=1))
    User.objects.filter(pk=later.pk).update(last_login=now + dt.timedelta(microseconds=1))
    since = Statement(
        lambda when: User.objects.filter(last_login__gt=when).order_by("pk").values_list("pk", flat=True),
        when=dt.datetime,
    )
    for when in (now, now - dt.timedelta(hours=1), now.astimezone(dt.timezone(dt.timedelta(hours=8)))):
        assert since(when=when) == list(
            User.objects.filter(last_login__gt=when).order_by("pk").values_list("pk", flat=True)
        )
    assert since(when=now) == [later.pk]
    with pytest.raises(TypeError, match="aware"):
        since(when=dt.datetime(2026, 1, 1))


def test_the_sessions_user_is_signed_out_when_inactive_or_unknown(client):
    from django.contrib.auth import SESSION_KEY
    from django.urls import reverse

    user = f.UserFactory(username="mei", password="a-long-password-1")
    f.MembershipFactory(user=user, role=Role.DATA_ENTRY)
    client.post(reverse("login"), {"username": "mei", "password": "a-long-password-1"})
    assert client.get(reverse("home")).status_code == 200
    User.objects.filter(pk=user.pk).update(is_active=False)
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))

    User.objects.filter(pk=user.pk).update(is_active=True)
    client.post(reverse("login"), {"username": "mei", "password": "a-long-password-1"})
    assert client.get(reverse("home")).status_code == 200
    session = client.session
    session[SESSION_KEY] = str(user.pk + 1000)  # an account no longer there
    session.save()
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_model_rows_carry_their_annotations():
    from django.db.models import F

    site = f.SiteFactory(code="north")
    user = f.UserFactory()
    membership = f.MembershipFactory(user=user, site=site, role=Role.REVIEWER)
    with_site = Statement(
        lambda pk: SiteMembership.objects.filter(pk=pk).annotate(site_code=F("site__code")), pk=int
    )
    (row,) = with_site(pk=membership.pk)
    assert (row.pk, row.role, row.site_code) == (membership.pk, Role.REVIEWER, "north")


def test_what_would_not_stay_equal_to_the_queryset_is_refused():
    import datetime as dt

    from django.utils import timezone

    f.UserFactory(username="percent%")
    f.UserFactory(username="other")
    # A value worked out from a parameter would be compiled in as the stand-in's.
    month_before = Statement(
        lambda when: User.objects.filter(last_login__gt=when - dt.timedelta(days=30), date_joined__lt=when),
        when=dt.datetime,
    )
    with pytest.raises(ValueError, match="nothing else may change with it"):
        month_before(when=timezone.now())
    with pytest.raises(ValueError, match="prefetch"):
        Statement(lambda pk: User.objects.filter(pk=pk).prefetch_related("memberships"), pk=int)(pk=1)
    # A case-insensitive match: SQLite escapes the value for LIKE (refused: the stand-in changes);
    # PostgreSQL compares UPPER(...) = UPPER(%s) and takes the value as it is.
    named = Statement(
        lambda name: User.objects.filter(username__iexact=name).values_list("username", flat=True), name=str
    )
    if connection.vendor == "sqlite":
        with pytest.raises(ValueError, match="each parameter must reach the SQL once"):
            named(name="%")
    else:
        for name in ("%", "PERCENT%", "other"):
            assert named(name=name) == list(
                User.objects.filter(username__iexact=name).values_list("username", flat=True)
            )
