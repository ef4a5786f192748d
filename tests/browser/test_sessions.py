"""Real-browser tests of the login session: the signed cookie, reloads and deep links that keep the
user and the page, logout, a refused cookie, and the login lockout (Playwright + Debian's chromium)."""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

# This directory's conftest (the name "conftest" alone may resolve to tests/conftest.py).
_spec = importlib.util.spec_from_file_location("browser_conftest_for_sessions",
                                               Path(__file__).with_name("conftest.py"))
_bc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bc)
start_server, stop_server = _bc.start_server, _bc.stop_server

PASSWORDS = {"lead": "lead-password-1", "rita": "rita-password-1", "lou": "lou-password-1"}
ROLES = {"lead": "lead", "rita": "reviewer", "lou": "reviewer"}
COOKIE = "quality_session"
SHOTS = Path("/tmp")


@pytest.fixture(scope="module")
def sessions_server(tmp_path_factory):
    """The app with users, on a fresh store with the demo data; no QUALITY_SECRET (a per-process secret)."""
    from core.auth import hash_password

    base = tmp_path_factory.mktemp("sessions")
    users = base / "users.toml"
    users.write_text("".join(f'[users.{name}]\nrole = "{ROLES[name]}"\npassword_hash = "{hash_password(pw)}"\n\n'
                             for name, pw in PASSWORDS.items()), encoding="utf-8")
    db = base / "sessions.duckdb"
    proc, url = start_server(db, {"QUALITY_DEMO": "1", "QUALITY_USERS_FILE": str(users), "QUALITY_SECRET": ""})
    yield url, db
    stop_server(proc)


def session_cookie(context) -> dict | None:
    return next((c for c in context.cookies() if c["name"] == COOKIE), None)


def wait_for_cookie(context, present: bool, timeout: float = 30) -> dict | None:
    """The page's script sets or clears the cookie just after the run that draws it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cookie = session_cookie(context)
        if (cookie is not None) == present:
            return cookie
        time.sleep(0.2)
    raise AssertionError(f"session cookie {'never set' if present else 'still there'}: {context.cookies()}")


def expect_signed_in(page, name: str) -> None:
    expect(page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {name} ({ROLES[name]})")).to_be_visible(
        timeout=180_000)


def expect_login_form(page) -> None:
    expect(page.get_by_label("User name", exact=True)).to_be_visible(timeout=120_000)
    expect(page.get_by_role("dialog")).to_have_count(0)  # no "Page not found" over the form
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)


def fill_login(page, name: str, password: str) -> None:
    page.get_by_label("User name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def settle(page) -> None:
    """Let the run started by the last click finish (a click during a run would replace that run)."""
    page.wait_for_timeout(700)
    expect(page.get_by_test_id("stStatusWidgetRunningIcon")).to_have_count(0)
    expect(page.get_by_test_id("stStatusWidgetRunningManIcon")).to_have_count(0)


def test_reload_and_deep_links_keep_the_session_and_logout_ends_it(sessions_server, page):
    url, _db = sessions_server
    context = page.context
    # The first request of this fresh server is a deep link: the login form at /review, no dialog.
    page.goto(url + "/review")
    expect_login_form(page)
    assert page.url == url + "/review"
    page.screenshot(path=str(SHOTS / "sessions_1_deep_link_login.png"))
    fill_login(page, "rita", PASSWORDS["rita"])
    expect_signed_in(page, "rita")
    expect(page.get_by_role("heading", name="Review", exact=True)).to_be_visible(timeout=120_000)
    assert page.url == url + "/review"

    cookie = wait_for_cookie(context, present=True)
    assert cookie["sameSite"] == "Strict" and cookie["path"] == "/" and not cookie["secure"]
    assert cookie["value"].startswith("v1.") and 11 * 3600 < cookie["expires"] - time.time() <= 12 * 3600

    page.reload()
    expect_signed_in(page, "rita")
    expect(page.get_by_role("heading", name="Review", exact=True)).to_be_visible(timeout=120_000)
    expect(page.get_by_label("User name", exact=True)).to_have_count(0)
    assert page.url == url + "/review"
    page.screenshot(path=str(SHOTS / "sessions_2_after_reload.png"))

    # A deep link in a new tab of the same browser: the page asked for, logged in.
    other = context.new_page()
    other.set_default_timeout(60_000)
    other.goto(url + "/agreement")
    expect_signed_in(other, "rita")
    expect(other.get_by_role("heading", name="Agreement", exact=True)).to_be_visible(timeout=120_000)
    expect(other.get_by_role("dialog")).to_have_count(0)
    assert other.url == url + "/agreement"
    other.screenshot(path=str(SHOTS / "sessions_3_deep_link_new_tab.png"))

    other.get_by_test_id("stSidebar").get_by_role("button", name="Log out").click()
    expect_login_form(other)
    wait_for_cookie(context, present=False)
    other.reload()
    expect_login_form(other)
    other.screenshot(path=str(SHOTS / "sessions_4_after_logout_reload.png"))
    page.reload()  # the first tab too: its session is gone with the cookie
    expect_login_form(page)


def test_a_copied_cookie_is_refused_after_logout_and_a_forged_one_is_cleared(sessions_server, browser, page):
    url, _db = sessions_server
    page.goto(url + "/audit")
    expect_login_form(page)
    fill_login(page, "lead", PASSWORDS["lead"])
    expect_signed_in(page, "lead")
    expect(page.get_by_role("heading", name="Audit", exact=True)).to_be_visible(timeout=120_000)
    stolen = wait_for_cookie(page.context, present=True)

    # A forged token (role changed in the payload) in another browser: login form, cookie cleared.
    forged = dict(stolen, value=re.sub(r"^v1\.[^.]+", "v1.eyJ1Ijoicml0YSIsInIiOiJsZWFkIiwiZXhwIjo0MTAyNDQ0ODAwfQ",
                                       stolen["value"]))
    for value, name in ((forged["value"], "forged"), (stolen["value"], "copied")):
        other_context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            other_context.add_cookies([{"name": COOKIE, "value": value, "url": url}])
            other = other_context.new_page()
            other.goto(url + "/audit")
            if name == "copied":  # before the logout a copy works ...
                expect_signed_in(other, "lead")
            else:
                expect_login_form(other)
                wait_for_cookie(other_context, present=False)
        finally:
            other_context.close()

    page.get_by_test_id("stSidebar").get_by_role("button", name="Log out").click()
    expect_login_form(page)
    other_context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:  # ... after the logout the same copy is refused
        other_context.add_cookies([{"name": COOKIE, "value": stolen["value"], "url": url}])
        other = other_context.new_page()
        other.goto(url + "/audit")
        expect_login_form(other)
    finally:
        other_context.close()


def test_five_wrong_passwords_lock_the_name_and_the_lockout_is_audited(sessions_server, page):
    from core.store import open_store

    url, db = sessions_server
    page.goto(url)
    expect_login_form(page)
    for attempt in range(5):
        fill_login(page, "lou", f"wrong-password-{attempt}")
        settle(page)
        expect(page.get_by_text(re.compile("Wrong user name or password.|Too many failed logins"))).to_be_visible()
    expect(page.get_by_text("Too many failed logins for this name: try again in a minute.")).to_be_visible()
    fill_login(page, "lou", PASSWORDS["lou"])  # the right password, refused during the lockout
    settle(page)
    expect(page.get_by_text("Too many failed logins for this name: try again in a minute.")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    page.screenshot(path=str(SHOTS / "sessions_5_lockout.png"))
    store = open_store(db, linger=0)
    try:
        log = store.audit_log(action="auth.lockout")
    finally:
        store.close()
    assert log["actor"].to_list() == ["system:auth"] and log["new_value"].to_list() == ["lou"]
