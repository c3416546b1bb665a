"""Browser tests: Playwright for Python driving Debian's chromium against the live test server.

Chromium is launched from /usr/bin/chromium (no browser downloads work here) headless, without
sandbox, GPU or background networking. Screenshots go to test-output/screenshots/. When chromium
is missing locally the tests are skipped with a message; `.ci/run` installs it, so CI runs them.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make to set up
# data are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(items):
    """Browser tests are marked ``browser`` and run on one xdist worker (one chromium and one live
    server per run, not one per worker). While they wait on the browser the other worker keeps the
    second core busy: sampled over a whole run (2026-12-07), 32 core-seconds of 680 were idle."""
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.xdist_group("browser"), append=False)


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """pytest-django's live server, serving one request at a time on SQLite.

    It is made after the test database (``django_db_setup`` first): pytest-django hands the server
    the in-memory SQLite connection only if the test database is set up when it starts; before it,
    the connection still names the development file, and each server thread opened its own
    connection to the shared-cache memory database, whose table locks fail at once ("database
    table is locked", seen when a report page's figures were drawn in parallel).

    With SQLite's in-memory test database every server thread shares the test's one connection, and
    the browser sends requests in parallel (htmx's live score while a form posts): two requests then
    interleave savepoints on that connection ("no such savepoint", a 500 seen under load). A lock
    around each request, response body included, keeps the threads (and kept-alive connections) but
    runs one request at a time. PostgreSQL gives each thread its own connection and is left as it is.
    """
    thread = live_server.thread
    if thread.connections_override:
        application = thread.httpd.get_app()
        one_at_a_time = threading.Lock()

        def serialised(environ, start_response):
            with one_at_a_time:
                response = application(environ, start_response)
                try:
                    return [b"".join(response)]
                finally:
                    if hasattr(response, "close"):
                        response.close()

        thread.httpd.set_app(serialised)
    return live_server


@pytest.fixture
def page(chromium, live_server):
    """A fresh page; every browser test also fails on any Content-Security-Policy violation it caused."""
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.csp_violations = []
    page.on(
        "console",
        lambda message: (
            page.csp_violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield page
    context.close()
    assert not page.csp_violations, "Content-Security-Policy violations:\n" + "\n".join(page.csp_violations)


@pytest.fixture
def screenshot(page, request):
    """Call ``screenshot("name")`` to save the page under test-output/screenshots/<test>-<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def sign_in(page, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
