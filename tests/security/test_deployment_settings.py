"""Medium finding: deployment defaults. DEBUG defaulted to true with a public development key, which
also made the date-shift offsets computable by anyone.

Now DEBUG defaults to off; production settings refuse to start without SECRET_KEY and a separate
DATE_SHIFT_KEY, set Secure cookies, HSTS and the HTTPS redirect (with a switch for a TLS-terminating
proxy), every page carries a Content-Security-Policy, and ``check --deploy`` is clean (CI runs it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import reverse

from analytics.deidentify import date_shift_days

ROOT = Path(__file__).resolve().parents[2]
KEY_A = "k" * 20 + "-first-production-key-0123456789abcdefghij"
KEY_B = "s" * 20 + "-second-production-key-0123456789abcdefghij"
SHOW = (
    "import json, django; from django.conf import settings; django.setup(); print(json.dumps({name: "
    "getattr(settings, name, None) for name in ('DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
    "'SECURE_HSTS_SECONDS', 'SECURE_SSL_REDIRECT', 'SECURE_PROXY_SSL_HEADER')}))"
)


def _settings_process(code: str, **variables: str) -> subprocess.CompletedProcess:
    """A fresh interpreter with only these variables set (no .env), importing the settings."""
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "ENV_FILE": "/dev/null",
        **variables,
    }
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_debug_is_off_by_default_and_production_refuses_to_start_without_keys():
    bare = _settings_process(SHOW)
    assert bare.returncode != 0
    assert "set SECRET_KEY and DATE_SHIFT_KEY" in bare.stderr
    only_secret = _settings_process(SHOW, SECRET_KEY=KEY_A)
    assert only_secret.returncode != 0 and "set DATE_SHIFT_KEY" in only_secret.stderr
    same = _settings_process(SHOW, SECRET_KEY=KEY_A, DATE_SHIFT_KEY=KEY_A)
    assert same.returncode != 0 and "must differ" in same.stderr


def test_production_settings_are_https_only():
    shown = _settings_process(SHOW, SECRET_KEY=KEY_A, DATE_SHIFT_KEY=KEY_B)
    assert shown.returncode == 0, shown.stderr
    values = json.loads(shown.stdout)
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] is None
    proxied = json.loads(
        _settings_process(SHOW, SECRET_KEY=KEY_A, DATE_SHIFT_KEY=KEY_B, BEHIND_TLS_PROXY="true").stdout
    )
    assert proxied["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_check_deploy_is_clean_with_production_settings():
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "ENV_FILE": "/dev/null",
            "SECRET_KEY": KEY_A,
            "DATE_SHIFT_KEY": KEY_B,
            "ALLOWED_HOSTS": "registry.example.org",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout


def test_date_shifts_follow_the_date_shift_key_not_the_secret_key():
    with override_settings(SECRET_KEY=KEY_A, DATE_SHIFT_KEY=KEY_B):
        shifts = [date_shift_days("npsle", pk) for pk in range(1, 50)]
    with override_settings(SECRET_KEY="another-secret-key-" * 3, DATE_SHIFT_KEY=KEY_B):
        assert [date_shift_days("npsle", pk) for pk in range(1, 50)] == shifts
    with override_settings(SECRET_KEY=KEY_A, DATE_SHIFT_KEY="another-date-shift-key-" * 3):
        assert [date_shift_days("npsle", pk) for pk in range(1, 50)] != shifts
    assert 0 not in shifts and all(-365 <= s <= 365 for s in shifts)


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["login", "api:docs"])
def test_pages_carry_a_content_security_policy(client, url):
    response = client.get(reverse(url), follow=True)
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-eval'" not in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
