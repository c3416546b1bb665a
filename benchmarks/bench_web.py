"""The web rows of issue 18: pages served by gunicorn to 1 and 16 clients, and queries per page.

Called by ``bench_100k.py`` once Django is set up against the benchmark database with production
settings (DEBUG off, keys, a shared Redis cache): gunicorn is started with the deployment's settings
file (``config/gunicorn.conf.py``) and the same environment, each client is a thread with its own
session and one kept-alive connection (``http.client``), and every request is a GET, so nothing is
written but the sessions. Query counts go through Django's test client in this process.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connection
from django.db.models import Count, QuerySet
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Role, SiteMembership, User
from analytics.reports.definitions import default_definition
from registry.models import LumbarPuncture, Patient, Study

ROOT = Path(__file__).resolve().parent.parent
BENCH_USERNAME = "bench-clinician"
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
CLIENT_TIMEOUT_SECONDS = 60  # gunicorn's own timeout (GUNICORN_TIMEOUT, config/gunicorn.conf.py)


def bench_user(study: Study) -> User:
    """A clinician who enters records and runs reports at every site of the study (created once)."""
    user, _ = User.objects.get_or_create(
        username=BENCH_USERNAME, defaults={"first_name": "Benchmark", "last_name": "Clinician"}
    )
    for site in study.sites.all():
        for role in (Role.DATA_ENTRY, Role.RESEARCHER):
            SiteMembership.objects.get_or_create(user=user, site=site, role=role)
    return user


@dataclass(frozen=True)
class Pages:
    """The URLs the web rows ask for, with the patients chosen for them."""

    report: str
    case_record: str
    case_record_one_lp: str
    lp_edit: str
    lp_edit_one_lp: str
    patient_list: str
    api_patients: str
    api_lps: str

    def hot(self) -> dict[str, str]:
        """The pages of the p95 row (the report page has its own row)."""
        return {
            "case record": self.case_record,
            "LP edit": self.lp_edit,
            "patient list": self.patient_list,
            "API patients (50)": self.api_patients,
            "API LPs of a patient": self.api_lps,
        }


def pages_for(study: Study) -> Pages:
    """The study's default report, and the patients with the fewest and the most LPs."""
    with_lps = Patient.objects.filter(study=study, lumbar_punctures__isnull=False).distinct()
    busiest = _by_lp_count(with_lps, most=True)
    # The quietest has the same kinds of records (a course adds its own reads): only the LPs differ.
    has_course = Patient.objects.filter(pk=busiest, intrathecal_courses__isnull=False).exists()
    quietest = _by_lp_count(with_lps.filter(intrathecal_courses__isnull=not has_course), most=False)

    def lp_edit(patient_pk: int) -> str:
        lp = LumbarPuncture.objects.filter(patient_id=patient_pk).order_by("-performed_at").first()
        assert lp is not None
        return reverse("casebook:lp_edit", args=[patient_pk, lp.pk])

    return Pages(
        report=reverse("reports:detail", args=[default_definition(study).pk]),
        case_record=reverse("casebook:patient_detail", args=[busiest]),
        case_record_one_lp=reverse("casebook:patient_detail", args=[quietest]),
        lp_edit=lp_edit(busiest),
        lp_edit_one_lp=lp_edit(quietest),
        patient_list=reverse("casebook:patient_list"),
        api_patients=reverse("api:patient-list") + "?page_size=50",
        api_lps=reverse("api:patient-lumbar-punctures-list", kwargs={"patient_pk": busiest}),
    )


def _by_lp_count(patients: QuerySet[Patient], *, most: bool) -> int:
    order = "-lps" if most else "lps"
    counted = patients.annotate(lps=Count("lumbar_punctures", distinct=True))
    return counted.order_by(order, "pk").values_list("pk", flat=True)[0]


# --- queries per page (in process) ----------------------------------------------------------------


def query_counts(user: User, pages: Pages) -> dict[str, int]:
    """Queries of each page as the test client sees them (a warm-up request first, as in the tests),
    not counting the request's BEGIN and COMMIT (ATOMIC_REQUESTS)."""
    client = Client()
    client.force_login(user)
    urls = {
        "case record, 1 LP": pages.case_record_one_lp,
        "case record, most LPs": pages.case_record,
        "LP edit, 1 LP": pages.lp_edit_one_lp,
        "LP edit, most LPs": pages.lp_edit,
        "patient list": pages.patient_list,
        "API LPs, most LPs": pages.api_lps,
        **{
            f"API patients, page of {n}": reverse("api:patient-list") + f"?page_size={n}"
            for n in (10, 50, 200)
        },
    }
    counts = {}
    for name, url in urls.items():
        client.get(url, secure=True)
        with CaptureQueriesContext(connection) as context:
            status = client.get(url, secure=True).status_code
        assert status == 200, (name, url, status)
        counts[name] = sum(not q["sql"].startswith(TRANSACTION_CONTROL) for q in context.captured_queries)
    return counts


# --- gunicorn and its clients ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Gunicorn:
    """``gunicorn -c config/gunicorn.conf.py config.wsgi`` with this process's settings (environment)."""

    def __init__(self, workers: int) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_ACCESS_LOG": "",
        }
        command = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> Gunicorn:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited: {self.process.stderr.read() if self.process.stderr else ''}"
                )
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not listen on {self.port}")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Browser:
    """One signed-in person: a session of their own and one kept-alive connection."""

    def __init__(self, port: int, user: User) -> None:
        client = Client()
        client.force_login(user)  # a session row of its own, signed with the shared SECRET_KEY
        self.port, self.cookie = port, f"sessionid={client.cookies['sessionid'].value}"
        self.connection: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, int, float]:
        """Status, bytes and seconds of one GET (a failed connection counts as status 0).

        A kept-alive connection the server has closed meanwhile (gunicorn keeps an idle one for two
        seconds) is opened again once, as a browser does; the time counts from the first attempt.
        """
        started = time.perf_counter()
        for attempt in (1, 2):
            reused = self.connection is not None
            try:
                status, size = self._ask(path)
                return status, size, time.perf_counter() - started
            except (OSError, http.client.HTTPException):
                self.close()
                if not reused or attempt == 2:
                    break
        return 0, 0, time.perf_counter() - started

    def _ask(self, path: str) -> tuple[int, int]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=CLIENT_TIMEOUT_SECONDS
            )
        headers = {"Host": "127.0.0.1", "X-Forwarded-Proto": "https", "Cookie": self.cookie}
        self.connection.request("GET", path, headers=headers)
        response = self.connection.getresponse()
        body = response.read()
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, len(body)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


@dataclass
class Latencies:
    """Seconds of the answered requests of one page, and how many failed or timed out."""

    seconds: list[float] = field(default_factory=list)
    failed: Counter[int] = field(default_factory=Counter)  # by status (0: no answer)
    size: int = 0
    wall: float = 0.0  # seconds from the first request to the last answer, all clients

    def add(self, status: int, size: int, seconds: float) -> None:
        if status == 200:
            self.seconds.append(seconds)
            self.size = size
        else:
            self.failed[status] += 1

    @property
    def per_second(self) -> float:
        return len(self.seconds) / self.wall if self.wall else float("nan")

    def percentile(self, p: int) -> float:
        if len(self.seconds) < 2:
            return self.seconds[0] if self.seconds else float("nan")
        return statistics.quantiles(self.seconds, n=100, method="inclusive")[p - 1]


def drive(browsers: list[Browser], urls: dict[str, str], rounds: int) -> dict[str, Latencies]:
    """Every browser asks for every URL ``rounds`` times, all browsers at once (one thread each)."""
    results = {name: Latencies() for name in urls}
    lock = threading.Lock()

    def one_client(browser: Browser) -> None:
        for _ in range(rounds):
            for name, url in urls.items():
                answer = browser.get(url)
                with lock:
                    results[name].add(*answer)

    threads = [threading.Thread(target=one_client, args=(browser,)) for browser in browsers]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for latencies in results.values():
        latencies.wall = time.perf_counter() - started
    return results


def warm_up(browsers: Iterable[Browser], urls: dict[str, str]) -> None:
    """Each browser opens its connection and every page once (workers' imports, template caches)."""
    for browser in browsers:
        for url in urls.values():
            status, _, _ = browser.get(url)
            assert status == 200, (url, status)
