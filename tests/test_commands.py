"""`make run`'s commands: demo data once, demo accounts with passwords shown once."""

from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import Role, SiteMembership, User
from registry.models import Patient, Study

pytestmark = pytest.mark.django_db


def run(*args, **kwargs) -> str:
    out = StringIO()
    call_command(*args, stdout=out, **kwargs)
    return out.getvalue()


def test_load_demo_only_when_empty():
    # The smallest demo study (13 patients) is enough to hold patients; the LM demo took 15 s here.
    assert "13 patients loaded" in run("load_demo", only=["icans"])
    assert set(Study.objects.values_list("code", flat=True)) == {"npsle", "lm", "icans"}
    assert "already holds patients" in run("load_demo", if_empty=True)
    assert "already loaded" in run("load_demo", only=["icans"])
    assert Patient.objects.count() == 13


def test_demo_accounts_print_passwords_once_and_can_sign_in(client):
    call_command("load_demo", only=["icans"], stdout=StringIO())
    first = run("create_demo_accounts")
    lines = [line.split() for line in first.splitlines()[1:]]
    passwords = {parts[0]: parts[1] for parts in lines}
    assert set(passwords) == {"nurse", "reviewer", "researcher", "siteadmin", "studyadmin", "admin"}
    second = run("create_demo_accounts")
    assert not any(password in second for password in passwords.values())
    assert client.login(username="nurse", password=passwords["nurse"])
    assert SiteMembership.objects.filter(user__username="nurse", role=Role.DATA_ENTRY).exists()
    assert User.objects.get(username="admin").is_superuser
    reset = run("create_demo_accounts", reset_passwords=True)
    assert passwords["nurse"] not in reset
