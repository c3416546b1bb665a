"""Every action the case record offers, clicked in a real browser as each role.

The test does not know the buttons in advance: it reloads the patient's page, finds every action it
offers (htmx buttons and links, form buttons, button-styled links), clicks the next one it has not
clicked yet, and when that opens a form it fills the form as a person would (a reason, the password
for a signature, a date, the first choice) and sends it. Each click must end in something a person
sees — a confirmation, a form, a field error or a message — and no request may fail: an error response
(403 for a missing CSRF token, 500) fails the test, and so does the page's own "Not done" message.
So a new button that is broken cannot go unnoticed. The states the named actions lead to (submitted,
verified, unlocked, answered, closed, reopened, deleted, course stopped) are checked in the database.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from accounts.models import Role
from audit.models import ActionEvent
from protocols.choices import CourseStatus
from protocols.models import Course
from protocols.seed import ensure_seed_protocols
from protocols.services import course_start
from registry.action_events import ActionKind
from registry.choices import DiseaseArea
from registry.models import AdverseEvent
from review import services
from review.models import DataQuery, QueryStatus, ReviewStatus, SectionReview
from tests import factories as f
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-password-1"
ACTIONS = "main [hx-post], main [hx-get], main form button[type=submit], main a.button"
#: What a person sees after an action: a confirmation, a form, a field error or a message.
VISIBLE_OUTCOME = (
    ".saved-message, form.record-form, form .errorlist, .error-message, ul.messages li, form.card, h1"
)
MAX_CLICKS = 60


@pytest.fixture
def record():
    """An NPSLE patient with something for every button: sections in each state, queries in each
    state, records to edit and delete, and an active course."""
    ensure_seed_protocols()
    site = f.SiteFactory(code="north", name="North Teaching Hospital")
    study = f.StudyFactory(code="npsle", disease_area=DiseaseArea.NPSLE, sites=[site])
    people = {}
    for role in (Role.DATA_ENTRY, Role.REVIEWER, Role.SITE_ADMIN, Role.STUDY_ADMIN, Role.RESEARCHER):
        people[role] = f.UserFactory(
            username=role.value, password=PASSWORD, first_name=role.label, last_name="Test"
        )
        f.MembershipFactory(user=people[role], site=site, role=role)
    nurse, reviewer = people[Role.DATA_ENTRY], people[Role.REVIEWER]
    patient = f.PatientFactory(
        study=study, site=site, study_code="NP-9", index_admission_date=dt.date(2024, 3, 1)
    )
    f.SystemicTherapyFactory(patient=patient, start_date=dt.date(2024, 3, 2), end_date=dt.date(2024, 3, 4))
    f.AdverseEventFactory(patient=patient, onset_date=dt.date(2024, 3, 3))
    course_start(
        patient=patient,
        protocol=ensure_seed_protocols()["npsle-pumch"],
        start_date=dt.date(2024, 3, 4),
        actor=nurse,
        reason="Course",
    )
    for section in ("identity", "therapy"):
        services.section_submit(patient=patient, section=section, actor=nurse)
    services.section_verify(patient=patient, section="identity", actor=reviewer)
    services.sections_lock(patient=patient, sections=["identity"], actor=reviewer, password=PASSWORD)
    asked = services.query_raise(patient=patient, actor=reviewer, message="Which dose?", section="safety")
    answered = services.query_raise(patient=patient, actor=reviewer, message="Which day?", section="outcomes")
    services.query_answer(query=answered, actor=nurse, text="The 3rd.")
    return {"patient": patient, "people": people, "asked": asked, "answered": answered}


#: What ``_fill`` reads of the fields, all in one round trip to the browser rather than six a field.
FIELD_FACTS = """elements => elements.map(e => ({
    kind: (e.getAttribute('type') || '').toLowerCase(), tag: e.tagName.toLowerCase(),
    name: e.getAttribute('name') || '', value: e.value, disabled: e.disabled,
    coded: e.hasAttribute('data-missing-code'),
    choices: e.tagName === 'SELECT' ? [...e.options].map(o => o.value).filter(v => v) : [],
}))"""


def _fill(form, password: str) -> None:
    """Fill what a person must: every empty visible field (the password for a signature).

    The fields are typed one after another; in a form with live scores, the score asked for after the
    last keystroke is awaited once at the end, before anything is sent. (Waiting a fixed 150 ms after
    every field of every form cost these tests half their time.)
    """
    page = form.page
    _quiet(page)
    fields = form.locator("input:visible, textarea:visible, select:visible")
    filled: set[tuple[int, str]] = set()
    last_typed = time.monotonic()
    while True:
        # Read again after each field: a choice may show or hide others (branching logic).
        facts = fields.evaluate_all(FIELD_FACTS)
        index = next((i for i, fact in enumerate(facts) if _must_fill(fact)), None)
        if index is None:
            break
        key = (index, facts[index]["name"])
        assert key not in filled, f"{key} stays empty after it was filled"
        filled.add(key)
        if facts[index]["tag"] == "select":
            fields.nth(index).select_option(facts[index]["choices"][0])
        else:
            fields.nth(index).fill(_value_for(facts[index]["kind"], facts[index]["name"], password))
        last_typed = time.monotonic()
    if filled and form.evaluate("f => !!f.closest('[data-score-url]')"):
        _await_live_score(page, since=last_typed)


def _must_fill(fact: dict) -> bool:
    """An empty field a person can fill: not a button, box or file; not disabled; and not one that
    offers a missing-data code, which a person gives only when a value is missing for a reason."""
    if fact["kind"] in ("hidden", "submit", "button", "checkbox", "radio", "file"):
        return False
    if fact["disabled"] or fact["coded"] or fact["value"]:
        return False
    return fact["tag"] != "select" or bool(fact["choices"])


def _value_for(kind: str, name: str, password: str) -> str:
    value = {
        "password": password,
        "date": "2024-03-06",
        "datetime-local": "2024-03-06T10:00",
        "number": "1",
    }.get(kind)
    if value is None and name.endswith("_at"):
        value = "2024-03-06 10:00"
    elif value is None and ("date" in name or name.endswith("_on")):
        value = "2024-03-06"
    return value or "Checked in the browser test"


def _own_request(response) -> bool:
    """A request the click itself makes (not a stylesheet, script or live-score refresh)."""
    url = response.url
    return response.request.resource_type in ("xhr", "fetch", "document") and not (
        "/static/" in url or "/scores/" in url
    )


#: htmx marks what it is requesting, swapping and settling with these classes until it is done.
HTMX_SETTLED = "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"


def _click_and_wait(page, target) -> None:
    """Click, wait for the answer to the request it makes, and for htmx to swap it in."""
    with page.expect_response(_own_request):
        target.click()
    page.wait_for_load_state("domcontentloaded")
    page.wait_for_function(HTMX_SETTLED)


def _quiet(page) -> None:
    """Wait until the page has no request under way (up to 5 s)."""
    for _ in range(50):
        if not getattr(page, "in_flight", None):
            return
        page.wait_for_timeout(100)


def _await_live_score(page, since: float) -> None:
    """Wait for the live score asked for after the last keystroke to come back, as a person reading it
    would: SQLite's test database cannot take it and the form's submission at once. The page asks 120
    ms after the last keystroke (later on a busy machine), so a request *started* after ``since`` is
    that one; an earlier one was asked while typing went on."""
    for _ in range(250):
        if any(started > since and done for started, done in page.score_requests.values()):
            return
        page.wait_for_timeout(20)
    raise AssertionError("the live score asked for after the last field never came back")


def _send(page, form, password: str) -> None:
    _fill(form, password)
    _quiet(page)
    _click_and_wait(page, form.locator("button[type=submit]").first)


#: Each action's key, "<section id>: <label>", read for all actions in one round trip.
ACTION_KEYS = """elements => elements.map(e =>
    (e.closest('section.card') || {id: 'page'}).id + ': ' + e.innerText.split(/\\s+/).filter(w => w).join(' '))"""


#: Actions that end what others need come later: a stopped course offers no "Mark missed", a closed
#: query no "Reopen", a raised query blocks "Verify"; the page's "… all" buttons come last.
LATER = {"Close": 1, "Verify": 1, "Submit for review": 1, "Delete": 1, "Stop course": 1, "Lock…": 1}
LAST = {"Raise query": 2, "Query": 2}


def _order(key: str) -> int:
    where, label = key.split(": ", 1)
    return 3 if where == "page" else LATER.get(label, LAST.get(label, 0))


def _score_event(page, request, *, started: bool) -> None:
    if "/scores/" not in request.url:
        return
    if started:
        page.score_requests[request] = [time.monotonic(), False]
    elif request in page.score_requests:
        page.score_requests[request][1] = True


def _click_everything(page, patient, password: str) -> list[str]:
    """Click each action once (by section and label), completing the forms it opens."""
    failures: list[str] = []
    page.on("response", lambda r: failures.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.in_flight = set()
    page.on("request", lambda r: page.in_flight.add(r))
    page.on("requestfinished", lambda r: page.in_flight.discard(r))
    page.on("requestfailed", lambda r: page.in_flight.discard(r))
    page.score_requests = {}  # live-score request -> [when it started, whether it ended]
    page.on("request", lambda r: _score_event(page, r, started=True))
    page.on("requestfinished", lambda r: _score_event(page, r, started=False))
    page.on("requestfailed", lambda r: _score_event(page, r, started=False))
    done: list[str] = []
    for _ in range(MAX_CLICKS):
        assert page.goto(f"/patients/{patient.pk}/").status == 200, f"after {done[-1:]}"
        actions = page.locator(ACTIONS)
        pending = list(enumerate(actions.evaluate_all(ACTION_KEYS)))
        pending = sorted(
            [(i, key) for i, key in pending if key not in done], key=lambda item: _order(item[1])
        )
        if not pending:
            return done
        index, key = pending[0]
        done.append(key)
        action = actions.nth(index)
        around = action.locator("xpath=ancestor::form[1]")
        if around.count():
            _fill(around, password)  # a reply's text before "Answer", as a person would type it
            _quiet(page)
        _click_and_wait(page, action)
        form = page.locator(
            "main form.record-form:visible, main form.card:visible, main form.stacked:visible"
        ).first
        if form.count():
            _send(page, form, password)
        assert not failures, f"{key}: an error response {failures}"
        assert not page.locator(".request-error").count(), (
            f"{key}: {page.locator('.request-error').inner_text()}"
        )
        assert page.locator(VISIBLE_OUTCOME).first.is_visible(), f"{key}: nothing visible happened"
    raise AssertionError(f"more than {MAX_CLICKS} actions: {done}")


def _review(patient, section):
    review = SectionReview.objects.filter(patient=patient, section=section).first()
    return review.status if review else ReviewStatus.DRAFT


def _events_by(user, after: int = 0) -> set[str]:
    return set(ActionEvent.objects.filter(actor=user, pk__gt=after).values_list("kind", flat=True))


def test_data_entry_clicks_everything(page, screenshot, record):
    patient, nurse = record["patient"], record["people"][Role.DATA_ENTRY]
    sign_in(page, Role.DATA_ENTRY.value, PASSWORD)
    before = ActionEvent.objects.order_by("pk").last().pk
    clicked = _click_everything(page, patient, PASSWORD)
    for action in (
        "section-safety: Submit for review",
        "section-safety: Answer",
        "section-safety: Delete",
        "section-procedures: Mark missed",
        "section-procedures: Stop course",
        "section-procedures: Add lumbar puncture",
        "section-therapy: Edit",
    ):
        assert action in clicked, (action, clicked)
    # The buttons did what they say, and each left its event in the audit trail.
    assert _events_by(nurse, after=before) >= {
        ActionKind.SECTION_SUBMITTED,
        ActionKind.QUERY_ANSWERED,
        ActionKind.INJECTION_MISSED,
        ActionKind.COURSE_STOPPED,
    }
    assert _review(patient, "safety") == ReviewStatus.SUBMITTED
    assert DataQuery.objects.get(pk=record["asked"].pk).status == QueryStatus.ANSWERED
    assert not AdverseEvent.objects.filter(patient=patient, ctcae_term="headache").exists(), (
        "deleted with a reason"
    )
    first, *later = Course.objects.filter(patient=patient).order_by("pk")
    assert first.status == CourseStatus.STOPPED and len(later) <= 1, "stopped; then a new one started"
    # The locked section offered no edit at all, only the way to ask for an unlock.
    assert not [key for key in clicked if key.startswith("section-identity")], clicked
    assert page.locator("#section-identity .locked-notice a", has_text="Request an unlock").count() == 1
    screenshot("after-every-data-entry-action")


def test_reviewer_clicks_everything(page, screenshot, record):
    patient, reviewer = record["patient"], record["people"][Role.REVIEWER]
    sign_in(page, Role.REVIEWER.value, PASSWORD)
    clicked = _click_everything(page, patient, PASSWORD)
    for action in (
        "section-identity: Unlock…",
        "section-identity: Verify",
        "section-therapy: Verify",
        "section-outcomes: Reopen",
        "section-outcomes: Close",
        "section-safety: Close",
        "section-therapy: Raise query",
        "section-therapy: Query",
        "page: Lock verified sections…",
    ):
        assert action in clicked, (action, clicked)
    assert _events_by(reviewer) >= {
        ActionKind.SECTION_UNLOCKED,
        ActionKind.SECTION_VERIFIED,
        ActionKind.SECTION_LOCKED,
        ActionKind.QUERY_REOPENED,
        ActionKind.QUERY_CLOSED,
        ActionKind.QUERY_RAISED,
    }
    assert _review(patient, "identity") == ReviewStatus.LOCKED, "unlocked, verified and locked again"
    assert DataQuery.objects.get(pk=record["asked"].pk).status == QueryStatus.CLOSED
    assert DataQuery.objects.get(pk=record["answered"].pk).status == QueryStatus.CLOSED
    screenshot("after-every-reviewer-action")


@pytest.mark.parametrize("role", [Role.SITE_ADMIN, Role.STUDY_ADMIN])
def test_administrators_click_everything(page, record, role):
    sign_in(page, role.value, PASSWORD)
    clicked = _click_everything(page, record["patient"], PASSWORD)
    assert "section-safety: Delete" in clicked and not [k for k in clicked if k.endswith(": Verify")]


def test_a_researcher_does_not_reach_the_case_record(page, record):
    sign_in(page, Role.RESEARCHER.value, PASSWORD)
    response = page.goto(f"/patients/{record['patient'].pk}/")
    assert response.status == 404


def test_a_refused_htmx_request_shows_a_specific_message_in_place(page, record):
    """The global handler: an error response never leaves the page silent."""
    patient = record["patient"]
    sign_in(page, Role.DATA_ENTRY.value, PASSWORD)
    page.goto(f"/patients/{patient.pk}/")
    page.context.clear_cookies()  # signed out elsewhere: the CSRF cookie is gone, the POST is refused
    page.click("#section-safety button:has-text('Submit for review')")
    message = page.locator("#section-safety .request-error")
    message.wait_for()
    assert message.inner_text().startswith("Not done (403, not allowed): CSRF verification failed"), (
        message.inner_text()
    )
    assert message.inner_text().endswith("Nothing was changed.")
    assert _review(patient, "safety") == ReviewStatus.DRAFT


def test_the_record_status_grid_opens_the_section_clicked(page, screenshot, record):
    patient = record["patient"]
    sign_in(page, Role.REVIEWER.value, PASSWORD)
    page.click("nav >> text=Record status")
    cell = page.locator(f'tr[data-patient="{patient.study_code}"] td[data-section="therapy"]')
    assert cell.get_attribute("data-status") == "submitted"
    assert page.locator('tr td[data-section="identity"].status-locked').count() == 1
    assert page.locator(".legend .cell").count() == 5
    screenshot("record-status")
    cell.locator("a").click()
    page.wait_for_url(f"**/patients/{patient.pk}/#section-therapy")
    assert page.locator("#section-therapy h2").inner_text().startswith("Systemic therapy")
    page.goto("/")
    worklist = page.locator("#review-worklist")
    assert "npsle: 1 section" in worklist.inner_text() and "NP-9 · Systemic therapy" in worklist.inner_text()


def test_a_reviewer_runs_the_data_quality_checks_from_the_query_list(page, screenshot, record):
    patient = record["patient"]
    flagged = f.PatientFactory(study=patient.study, site=patient.site, study_code="NP-10")
    f.LumbarPunctureFactory(patient=flagged, opening_pressure_mmh2o=450)
    sign_in(page, Role.REVIEWER.value, PASSWORD)
    page.goto("/queries/")
    page.click("button:has-text('Run the data-quality checks')")
    page.wait_for_url("**/jobs/*/")
    status = page.locator(".job-progress[data-status='succeeded'] [role=status]")
    status.wait_for()
    assert "2 patients checked:" in status.inner_text()
    screenshot("quality-sweep-job")
    status.locator("a").click()
    page.wait_for_url("**/queries/")
    rows = page.locator("table").last.inner_text()
    assert "NP-10" in rows and "Opening pressure" in rows, rows
    assert DataQuery.objects.filter(patient=flagged, raised_by=None).exists()
