"""Signing in through the real page, in a real browser."""

import pytest

from tests.browser.conftest import sign_in
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_sign_in_and_out(page, screenshot):
    UserFactory(username="lin", first_name="Lin", last_name="Wei", password="a-long-password-1")
    page.goto("/")
    assert "/accounts/login/" in page.url
    sign_in(page, "lin", "a-long-password-1")
    page.wait_for_selector("text=Welcome, Lin Wei")
    screenshot("home")
    page.click("text=Sign out")
    page.wait_for_url("**/accounts/login/")


def test_wrong_password_is_refused(page):
    UserFactory(username="lin", password="a-long-password-1")
    sign_in(page, "lin", "wrong")
    # The click only submits: wait for the answer (is_visible() would look at the page being left).
    assert page.wait_for_selector(".errorlist").is_visible()
    assert "/accounts/login/" in page.url
