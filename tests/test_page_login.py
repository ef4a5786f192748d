"""AppTest: the login form, role-based navigation, logout, and the single local lead mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest_helpers import APP, run_page, texts
from streamlit.testing.v1 import AppTest

from core import auth, sessions
from core.auth import hash_password

ROOT = Path(APP).parent
ALL_PAGES = ["pages/overview.py", "pages/agreement.py", "pages/drift.py", "pages/data_quality.py",
             "pages/iterations.py", "pages/annotators.py", "pages/review.py", "pages/selection.py",
             "pages/audit.py", "pages/import_data.py"]
READ_ONLY = {"pages/overview.py", "pages/agreement.py", "pages/drift.py", "pages/data_quality.py",
             "pages/iterations.py", "pages/annotators.py", "pages/audit.py"}
EXISTING = list(ALL_PAGES)  # every page must exist: a missing one fails, never a silent skip


@pytest.fixture(scope="module")
def users_text() -> str:
    return "".join(f'[users.{name}]\nrole = "{role}"\npassword_hash = "{hash_password(f"{name}-password")}"\n\n'
                   for name, role in [("alice", "lead"), ("rita", "reviewer"), ("sam", "stakeholder")])


@pytest.fixture
def users_file(app_env, tmp_path, monkeypatch, users_text):
    path = tmp_path / "users.toml"
    path.write_text(users_text, encoding="utf-8")
    monkeypatch.setenv("QUALITY_USERS_FILE", str(path))
    return path


@pytest.fixture
def local_mode(app_env, tmp_path, monkeypatch):
    path = tmp_path / "no-users.toml"
    path.write_text("", encoding="utf-8")
    monkeypatch.setenv("QUALITY_USERS_FILE", str(path))
    monkeypatch.delenv("QUALITY_USER", raising=False)
    return path


@pytest.fixture(autouse=True)
def _fresh_login_state(monkeypatch):
    """Nobody locked out, nobody logged out: the throttle and the revocations are process state."""
    monkeypatch.setattr(auth, "LOGIN_THROTTLE", auth.LoginThrottle())
    monkeypatch.setattr(sessions, "REVOKED", sessions.Revocations())
    monkeypatch.delenv("QUALITY_SECRET", raising=False)


@pytest.fixture
def server_navigation(monkeypatch):
    """Every run starts with app.py, as on a real server after its first run.

    AppTest switches Streamlit back to its legacy ``pages/``-folder mode before each run (where
    a page URL runs the page file alone); a real server leaves that mode for good when app.py's
    ``st.navigation`` first runs. Deep links and the login that follows need the server's way.
    """
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def at_url(path: str) -> AppTest:
    """A new browser session opening ``/path`` (a deep link or a reload)."""
    from streamlit.navigation.page import calc_hash

    at = AppTest.from_file(APP, default_timeout=120)
    at._page_hash = calc_hash(path)
    at.run()
    assert not at.exception, at.exception
    return at


def with_cookie(monkeypatch, token: str | None) -> None:
    """The browser sends ``token`` as the session cookie (AppTest cannot send cookies)."""
    import ui.session

    monkeypatch.setattr(ui.session, "read_session_cookie", lambda: token)


def cookie_scripts(at: AppTest) -> list[str]:
    return [h.proto.body for h in at.get("html") if "quality_session=" in h.proto.body]


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def signed_in(at: AppTest) -> str:
    return " ".join(t for t in texts(at.sidebar.markdown) if t.startswith("Signed in as"))


def registered(at: AppTest) -> set[str]:
    """Page files st.navigation offered in the last run (relative to the app)."""
    out = set()
    for info in at._registered_pages.values():
        script = info.get("script_path")
        if script:
            out.add(Path(str(script)).resolve().relative_to(ROOT).as_posix())
    return out


def rerun_from_app(at: AppTest) -> AppTest:
    """Rerun starting with app.py, as a real server does on every rerun.

    AppTest resets Streamlit's legacy ``pages/``-folder mode before each run, so after the first
    run it reruns only the current page; the sidebar of app.py (logout) needs app.py to run.
    """
    at._page_hash = ""
    at._finished_page_script_hash = ""
    at.run()
    assert not at.exception, at.exception
    return at


def log_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    [button] = [b for b in at.button if b.label == "Log in"]
    button.click()
    return rerun_from_app(at)


def test_login_form_appears_and_nothing_else(users_file):
    at = run_page()
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert any(b.label == "Log in" for b in at.button)
    assert registered(at) == set()           # only the login page: no data page is reachable
    assert not at.selectbox and not at.metric  # no dataset picker, no KPI cards
    with pytest.raises(ValueError):
        at.switch_page("pages/overview.py")


def test_login_form_preloads_the_browsers_chart_and_table_code_with_no_data(users_file):
    """The login form draws one tiny chart and table off-screen (ui.warmup.preload_browser_assets) so the
    browser loads their code while the user types; they hold a placeholder, nothing of the store."""
    at = run_page()
    [chart] = at.get("plotly_chart")
    [frame] = at.dataframe
    assert frame.value.shape == (1, 1)
    assert '"y":["a"]' in chart.proto.spec.replace(" ", "")
    assert registered(at) == set()


def test_wrong_password_shows_an_error(users_file):
    at = log_in(run_page(), "sam", "not-the-password")
    assert "Wrong user name or password." in texts(at.error)
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert "auth_user" not in at.session_state
    at = log_in(at, "nobody", "sam-password")
    assert "Wrong user name or password." in texts(at.error)


def test_stakeholder_sees_only_read_only_pages(users_file):
    at = log_in(run_page(), "sam", "sam-password")
    assert at.session_state["auth_user"] == "sam" and at.session_state["auth_role"] == "stakeholder"
    assert not at.error
    pages = registered(at)
    assert pages == READ_ONLY & set(EXISTING)
    assert not pages & {"pages/import_data.py", "pages/review.py", "pages/selection.py"}
    assert any("Signed in as **sam** (stakeholder)" in t for t in texts(at.sidebar.markdown))
    for page in ["pages/import_data.py", "pages/review.py"]:
        with pytest.raises(ValueError):
            at.switch_page(page)
    at.switch_page("pages/overview.py").run()
    assert not at.exception


def test_reviewer_sees_everything_but_import_and_lead_sees_all(users_file):
    at = log_in(run_page(), "rita", "rita-password")
    assert registered(at) == set(EXISTING) - {"pages/import_data.py"}
    at = log_in(run_page(), "alice", "alice-password")
    assert registered(at) == set(EXISTING)
    at.switch_page("pages/import_data.py").run()
    assert not at.exception


def test_logout_returns_to_the_login_form(users_file):
    at = rerun_from_app(log_in(run_page(), "rita", "rita-password"))
    [logout] = [b for b in at.sidebar.button if b.label == "Log out"]
    logout.click()
    rerun_from_app(at)
    assert "auth_user" not in at.session_state
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert registered(at) == set()


def test_a_user_removed_from_the_file_is_logged_out(users_file, users_text):
    at = log_in(run_page(), "sam", "sam-password")
    users_file.write_text(users_text.split("[users.sam]")[0] + "\n", encoding="utf-8")
    at.run()
    assert "auth_user" not in at.session_state
    assert [t.label for t in at.text_input] == ["User name", "Password"]


def test_a_page_run_without_login_stops_and_shows_the_login_form(users_file):
    """Streamlit's legacy pages/ mode can run a page without app.py; the page then refuses."""
    at = log_in(run_page(), "sam", "sam-password")
    del at.session_state["auth_user"]
    at.run()  # AppTest reruns the current page (Overview) without app.py
    assert not at.exception
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert not at.metric


def test_a_broken_users_file_shows_an_error_and_no_pages(app_env, tmp_path, monkeypatch):
    path = tmp_path / "broken.toml"
    path.write_text('[users.sam]\nrole = "boss"\npassword_hash = "x"\n', encoding="utf-8")
    monkeypatch.setenv("QUALITY_USERS_FILE", str(path))
    at = run_page()
    assert any("role must be one of" in t for t in texts(at.error))
    assert registered(at) == set()
    assert not at.text_input


def test_no_users_configured_opens_as_local_lead(local_mode):
    at = run_page()
    assert not at.exception
    assert not [b for b in at.button if b.label == "Log in"]
    assert registered(at) == set(EXISTING)   # the local lead sees every page
    [name] = [t for t in at.sidebar.text_input if t.label == "Your name (audit trail)"]
    assert name.value == "local-lead"
    name.input("Dana").run()
    assert at.session_state["user_name"] == "Dana"
    at.switch_page("pages/import_data.py").run()
    assert not at.exception
    # Asked once: the name stays for the rest of the session, on every page.
    assert at.session_state["user_name"] == "Dana"
    [name] = [t for t in rerun_from_app(at).sidebar.text_input if t.label == "Your name (audit trail)"]
    assert name.value == "Dana"


def test_local_mode_name_defaults_from_env_and_is_used_for_writes(local_mode, app_env, monkeypatch, tmp_path):
    import json

    from core.ingest import import_file
    from core.store import open_store

    monkeypatch.setenv("QUALITY_USER", "lee")
    store = open_store(app_env)
    f = tmp_path / "a.jsonl"
    f.write_text("\n".join(json.dumps({"id": f"s{i}", "text": "t", "annotator": "x", "label": "a"})
                           for i in range(3)), encoding="utf-8")
    import_file(store, f, "ds", labels=["a", "b"])
    at = run_page()
    [name] = [t for t in at.sidebar.text_input if t.label == "Your name (audit trail)"]
    assert name.value == "lee"
    if (ROOT / "pages/review.py").exists():
        store.enqueue("ds", ["s1"], "manual", "system:test")
        at.switch_page("pages/review.py").run()
        [claim] = [b for b in at.button if b.label == "Claim next"]
        claim.click().run()
        assert not at.exception
        assert store.queue("ds").row(0, named=True)["claimed_by"] == "lee"


# -- sessions: cookie, reload, deep links, logout, lockout -------------------------------------------
def submit_login(at: AppTest, name: str, password: str, path: str) -> AppTest:
    """Fill and submit the login form shown at ``/path``."""
    from streamlit.navigation.page import calc_hash

    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    [button] = [b for b in at.button if b.label == "Log in"]
    button.click()
    at._page_hash = calc_hash(path)
    at.run()
    assert not at.exception, at.exception
    return at


def test_a_deep_link_shows_the_login_form_and_then_the_page_asked_for(users_file, server_navigation):
    at = at_url("review")
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert registered(at) == set() and titles(at) == ["Annotation quality"]
    submit_login(at, "rita", "rita-password", "review")
    assert titles(at) == ["Review"]
    assert signed_in(at) == "Signed in as **rita** (reviewer)"
    # the new token goes to the browser: SameSite=Strict, for the whole app, until it expires
    [script] = cookie_scripts(at)
    token = at.session_state["auth_token"]
    assert f"quality_session={token}; Path=/; Max-Age=" in script and "SameSite=Strict" in script
    assert "'https:' ? '; Secure'" in script
    max_age = int(script.split("Max-Age=")[1].split(";")[0])
    assert sessions.SESSION_SECONDS - 60 <= max_age <= sessions.SESSION_SECONDS


def test_a_deep_link_to_a_page_of_another_role_opens_the_default_page(users_file, server_navigation):
    at = submit_login(at_url("import_data"), "sam", "sam-password", "import_data")
    assert titles(at) == ["Overview"]
    assert "pages/import_data.py" not in registered(at)


def test_a_valid_cookie_restores_the_session_on_a_reload_or_deep_link(users_file, server_navigation, monkeypatch):
    users = auth.load_users()
    token = sessions.sign(users["rita"], sessions.session_secret().key, __import__("time").time())
    with_cookie(monkeypatch, token)
    at = at_url("review")
    assert not [t for t in at.text_input if t.key == "login_name"]
    assert titles(at) == ["Review"] and signed_in(at) == "Signed in as **rita** (reviewer)"
    assert at.session_state["auth_token"] == token
    assert at_url("agreement").title[0].value == "Agreement"


@pytest.mark.parametrize("how", ["tampered", "expired", "other secret", "revoked", "role changed"])
def test_a_refused_cookie_shows_the_login_form_and_is_cleared(users_file, users_text, server_navigation,
                                                              monkeypatch, how):
    import time

    users = auth.load_users()
    key = sessions.session_secret().key
    token = sessions.sign(users["rita"], key, time.time())
    if how == "tampered":
        token = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    elif how == "expired":
        token = sessions.sign(users["rita"], key, time.time() - sessions.SESSION_SECONDS - 1)
    elif how == "other secret":
        token = sessions.sign(users["rita"], b"x" * 32, time.time())
    elif how == "revoked":
        sessions.REVOKED.revoke(token)
    else:
        users_file.write_text(users_text.replace('[users.rita]\nrole = "reviewer"', '[users.rita]\nrole = "lead"'),
                              encoding="utf-8")
    with_cookie(monkeypatch, token)
    at = at_url("review")
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert "auth_user" not in at.session_state
    [script] = cookie_scripts(at)
    assert "quality_session=; Path=/; Max-Age=0; SameSite=Strict" in script


def test_logout_clears_the_cookie_and_this_session_ignores_it(users_file, server_navigation, monkeypatch):
    users = auth.load_users()
    token = sessions.sign(users["rita"], sessions.session_secret().key, __import__("time").time())
    with_cookie(monkeypatch, token)  # st.context.cookies keeps the cookie for the whole session
    at = at_url("review")
    [logout] = [b for b in at.sidebar.button if b.label == "Log out"]
    logout.click().run()
    assert not at.exception, at.exception
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert "auth_user" not in at.session_state
    [script] = cookie_scripts(at)
    assert "Max-Age=0" in script
    at.run()  # still logged out, although the (stale) cookie is still "sent"
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert sessions.REVOKED.is_revoked(token)  # a copy of the cookie is refused too
    assert at_url("review").text_input[0].label == "User name"


def test_an_open_session_ends_when_its_token_expires_or_the_role_changes(users_file, users_text,
                                                                          server_navigation, monkeypatch):
    import time

    import ui.session

    at = submit_login(at_url("review"), "rita", "rita-password", "review")
    assert titles(at) == ["Review"]

    class Clock:
        offset = 0.0

        @classmethod
        def time(cls) -> float:
            return time.time() + cls.offset

    monkeypatch.setattr(ui.session, "time", Clock)
    Clock.offset = sessions.SESSION_SECONDS + 1
    at.run()
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert any("session has ended" in t for t in texts(at.info))

    Clock.offset = 0.0
    at = submit_login(at, "rita", "rita-password", "review")
    assert titles(at) == ["Review"]
    users_file.write_text(users_text.replace('[users.rita]\nrole = "reviewer"', '[users.rita]\nrole = "lead"'),
                          encoding="utf-8")
    at.run()
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    at = submit_login(at, "rita", "rita-password", "review")
    assert signed_in(at) == "Signed in as **rita** (lead)"


def test_five_wrong_passwords_lock_the_form_and_the_lockout_is_audited(users_file, server_navigation, app_env):
    from core.store import open_store

    at = at_url("review")
    for _ in range(5):
        submit_login(at, "rita", "not-her-password", "review")
        assert "Wrong user name or password." in texts(at.error) or "Too many" in " ".join(texts(at.error))
    assert any("Too many failed logins" in t for t in texts(at.error))
    submit_login(at, "rita", "rita-password", "review")  # the right password, refused for a minute
    assert any("Too many failed logins" in t for t in texts(at.error))
    assert "auth_user" not in at.session_state
    log = open_store(app_env).audit_log(action="auth.lockout")
    assert log["actor"].to_list() == ["system:auth"] and log["new_value"].to_list() == ["rita"]
