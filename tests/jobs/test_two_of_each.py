"""Two web processes and two workers on one PostgreSQL and one Redis behave as one system.

The deployment of the README, started for real: two gunicorn processes (production settings, DEBUG
off, the same keys, behind an HTTPS proxy as the README's nginx sets ``X-Forwarded-Proto``) and two
Celery workers, on the test's PostgreSQL database and Redis as cache and broker. A person's requests
go to either web process, as a load balancer would send them: a session opened on one is known to
the other and ended on the other; a report job started on one is followed to its end on the other
and its result served there from the shared cache; two people saving the same record through the
two processes cannot overwrite each other (the versioned save is the lock, the signed version is
checked by the other process's key).
"""

from __future__ import annotations

import http.client
import secrets
import time
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.models import Role, Site
from analytics.reports.definitions import default_definition
from jobs.models import Job, JobKind, JobStatus
from registry.models import Study, SystemicTherapy
from tests import factories as f
from tests.jobs.processes import Web, Worker
from tests.replay import load_demo_replayed

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the processes need PostgreSQL"),
]


class PostForms(HTMLParser):
    """The fields a browser would send with each POST form of a page (inputs, selects, textareas)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str]] = []
        self._form: dict[str, str] | None = None
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method", "").lower() == "post":
            self._form = {}
            self.forms.append(self._form)
        form, name = self._form, a.get("name")
        if form is None:
            return
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            form[name] = a.get("value", "on" if a.get("type") == "checkbox" else "")
        elif tag == "select" and name:
            self._select = name
            form.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in a:
            form[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            form[name] = ""

    def handle_data(self, data: str) -> None:
        if self._form is not None and self._textarea:
            self._form[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._form = None

    @classmethod
    def with_field(cls, page: str, field: str) -> dict[str, str]:
        parser = cls()
        parser.feed(page)
        return next(form for form in parser.forms if field in form)


class Browser:
    """One person's browser: one cookie jar, whichever web process answers."""

    def __init__(self, cookies: dict[str, str] | None = None) -> None:
        self.cookies = dict(cookies or {})

    def request(
        self, web: Web, method: str, path: str, data: dict[str, str] | None = None, **headers: str
    ) -> tuple[int, dict[str, str], str]:
        origin = f"https://127.0.0.1:{web.port}"
        sent = {
            "Host": f"127.0.0.1:{web.port}",
            "X-Forwarded-Proto": "https",  # as the README's proxy sets it
            "Referer": origin + path,
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            **headers,
        }
        body = None
        if data is not None:
            body = urlencode(data)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            sent["X-CSRFToken"] = self.cookies.get("csrftoken", "")
        conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    if morsel["max-age"] == "0" or morsel.value == "":
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            return response.status, dict(response.headers.items()), response.read().decode()
        finally:
            conn.close()

    def get(self, web: Web, path: str, **headers: str) -> tuple[int, dict[str, str], str]:
        return self.request(web, "GET", path, **headers)

    def post(self, web: Web, path: str, data: dict[str, str]) -> tuple[int, dict[str, str], str]:
        return self.request(web, "POST", path, data)


@pytest.fixture
def system(broker, settings):
    """Two web processes and two workers sharing the database, the cache and the broker."""
    shared = {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATE_SHIFT_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "BEHIND_TLS_PROXY": "true",
        "CELERY_BROKER_URL": broker,
        "CACHE_URL": broker,
    }
    settings.SECRET_KEY = shared["SECRET_KEY"]  # the sessions this test opens are signed with it
    started: list = []
    try:
        started += [Worker(broker, shared), Worker(broker, shared)]
        webs = [Web(shared), Web(shared)]
        started += webs
        yield tuple(web.wait_until_listening() for web in webs)
    finally:
        for process in started:
            process.terminate()
        logs = [process.stop() for process in started]
        print("\n".join(logs))  # shown when the test fails


def test_two_web_processes_and_two_workers_act_as_one_system(system):
    web_a, web_b = system
    load_demo_replayed(only=["icans"])
    study = Study.objects.get(code="icans")
    site = Site.objects.get(code="haem")
    user = f.UserFactory(username="both-processes")
    for role in (Role.DATA_ENTRY, Role.RESEARCHER):
        f.MembershipFactory(user=user, site=site, role=role)
    client = Client()
    client.force_login(user)
    browser = Browser({"sessionid": client.cookies["sessionid"].value})

    # One session, whichever process answers; signed out on one, signed out on both.
    assert browser.get(web_a, "/")[0] == 200
    assert browser.get(web_b, "/")[0] == 200

    # A report job started through A, followed through B to its end, its report then served by B.
    report = reverse("reports:detail", args=[default_definition(study).pk])
    status, _, page = browser.get(web_a, report)
    assert status == 200 and "Computing the report" in page, page[:2000]
    job = Job.objects.get(kind=JobKind.REPORT_RUN)
    deadline = time.monotonic() + 180
    redirect = None
    while time.monotonic() < deadline and redirect is None:
        _, headers, _ = browser.get(web_b, reverse("jobs:detail", args=[job.pk]), **{"HX-Request": "true"})
        redirect = headers.get("HX-Redirect")
        time.sleep(0.3)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and redirect == report, (job.status, job.error)
    status, _, page = browser.get(web_b, report)
    assert 'data-testid="n-records"' in page and "Computing the report" not in page
    assert Job.objects.count() == 1  # B found A's result in the shared cache: nothing recomputed

    # Two people, one record, one save each through a different process: the second is refused.
    therapy = SystemicTherapy.objects.filter(patient__study=study, patient__site=site).first()
    edit = reverse(
        "casebook:record_edit", kwargs={"pk": therapy.patient_id, "kind": "therapy", "record_pk": therapy.pk}
    )
    other = Client()
    other.force_login(user)
    second = Browser({"sessionid": other.cookies["sessionid"].value})
    forms = []
    for person, web in ((browser, web_a), (second, web_b)):
        status, _, page = person.get(web, edit)
        assert status == 200, page[:2000]
        forms.append(PostForms.with_field(page, "version"))
    assert forms[0]["version"] == forms[1]["version"]
    first_save = forms[0] | {"dose_description": "Saved through A", "change_reason": "Two processes"}
    status, _, page = browser.post(web_a, edit, first_save)
    assert status in (200, 204, 302), page[:2000]
    therapy.refresh_from_db()
    assert therapy.dose_description == "Saved through A"
    late_save = forms[1] | {"dose_description": "Saved through B", "change_reason": "Two processes"}
    status, _, page = second.post(web_b, edit, late_save)
    therapy.refresh_from_db()
    assert therapy.dose_description == "Saved through A"  # the late save overwrote nothing
    assert "changed this record" in page and "while you were editing it" in page, page[:3000]

    # Signed out through B: A no longer knows the session either.
    browser.post(web_b, reverse("logout"), {"csrfmiddlewaretoken": browser.cookies.get("csrftoken", "")})
    status, headers, _ = browser.get(web_a, "/")
    assert status == 302 and "login" in headers.get("Location", "")
