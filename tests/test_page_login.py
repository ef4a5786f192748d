"""AppTest: the login form, role-based navigation, logout, and the single local lead mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apptest_helpers import APP, run_page, texts
from core.auth import hash_password

ROOT = Path(APP).parent
ALL_PAGES = ["pages/overview.py", "pages/agreement.py", "pages/drift.py", "pages/data_quality.py",
             "pages/iterations.py", "pages/review.py", "pages/selection.py", "pages/audit.py",
             "pages/import_data.py"]
READ_ONLY = {"pages/overview.py", "pages/agreement.py", "pages/drift.py", "pages/data_quality.py",
             "pages/iterations.py", "pages/audit.py"}
EXISTING = [p for p in ALL_PAGES if (ROOT / p).exists()]


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
    button.click().run()
    assert not at.exception, at.exception
    return at


def test_login_form_appears_and_nothing_else(users_file):
    at = run_page()
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert any(b.label == "Log in" for b in at.button)
    assert registered(at) == set()           # only the login page: no data page is reachable
    assert not at.selectbox and not at.metric  # no dataset picker, no KPI cards
    with pytest.raises(ValueError):
        at.switch_page("pages/overview.py")


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
