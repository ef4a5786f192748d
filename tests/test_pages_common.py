"""Common page tests over the page table (ui.navigation.PAGES), like scikit-learn's common tests:
every page in an empty store, every page a read-only stakeholder may open, every page with a busy store,
and the menu each role gets."""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest_helpers import APP, run_page, texts
from factories import import_rows, store_held_by_another_process
from streamlit.testing.v1 import AppTest

from core.auth import hash_password
from core.store import open_store
from ui.navigation import DEFAULT_PAGE, PAGES, pages_for

ROOT = Path(APP).parent
PATHS = [p.path for p in PAGES]
_TABLES = ["datasets", "samples", "annotations", "predictions", "reviews", "review_queue", "audit_log", "imports"]


def test_the_page_table_names_real_files_and_each_role_its_pages():
    for spec in PAGES:
        assert (ROOT / spec.path).is_file(), spec.path
    assert DEFAULT_PAGE in PATHS
    assert [p.path for p in pages_for("lead")] == PATHS
    assert "pages/import_data.py" not in [p.path for p in pages_for("reviewer")]
    stakeholder = [p.path for p in pages_for("stakeholder")]
    assert "pages/review.py" not in stakeholder and "pages/selection.py" not in stakeholder
    assert pages_for("none") == []
    # no page module of pages/ is left out of the table (a helper there would be listed as a page)
    assert sorted(p.as_posix() for p in (ROOT / "pages").glob("*.py")) == sorted((ROOT / p).as_posix()
                                                                                  for p in PATHS)


def _rows() -> list[dict]:
    rows = []
    for i in range(12):
        text = f"请帮我取消订单 {i}" if i % 2 else f"Please cancel my order number {i}"
        for ann, lab in (("alice", "cancel"), ("bo", "cancel" if i % 3 else "refund")):
            rows.append({"id": f"s{i:02d}", "text": text, "annotator": ann, "label": lab, "batch": f"b{i % 2}",
                         "round": 1 + i % 2, "prediction": "cancel", "pred_confidence": 0.5 + i / 30})
    return rows


@pytest.fixture
def filled(app_env, tmp_path):
    store = open_store(app_env)
    import_rows(store, tmp_path, _rows(), name="ds", labels=["cancel", "refund"], pred_round=1)
    return store


def _snapshot(store) -> dict:
    return {t: store.query_df(f"SELECT count(*) AS n FROM {t}")["n"][0] for t in _TABLES}


@pytest.mark.parametrize("path", PATHS)
def test_every_page_opens_on_an_empty_store_with_a_helpful_message(app_env, path):
    at = run_page(path)
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    shown = " ".join(texts(at.info) + texts(at.caption) + texts(at.markdown))
    if path != "pages/import_data.py":  # the Import page is where a first dataset comes from
        assert "No dataset yet" in shown or "Import" in shown, shown[:300]


@pytest.fixture
def team(app_env, tmp_path, monkeypatch):
    users = "".join(f'[users.{name}]\nrole = "{role}"\npassword_hash = "{hash_password(name + "-password")}"\n\n'
                    for name, role in (("alice", "lead"), ("rita", "reviewer"), ("sam", "stakeholder")))
    path = tmp_path / "users.toml"
    path.write_text(users, encoding="utf-8")
    monkeypatch.setenv("QUALITY_USERS_FILE", str(path))
    return path


@pytest.mark.parametrize("path", [p.path for p in pages_for("stakeholder")])
def test_a_stakeholder_opens_every_read_only_page_and_changes_nothing(filled, team, path):
    before = _snapshot(filled)
    at = run_page(path, session={"auth_user": "sam"})
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert _snapshot(filled) == before


@pytest.mark.parametrize("role, user", [("stakeholder", "sam"), ("reviewer", "rita"), ("lead", "alice")])
def test_the_menu_holds_exactly_the_pages_of_the_role(filled, team, role, user):
    """st.navigation lists only the role's pages: AppTest (like the browser) cannot reach another."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["auth_user"] = user
    at.run()
    assert not at.exception, at.exception
    allowed = pages_for(role)
    for spec in PAGES:
        if spec not in allowed:
            with pytest.raises(ValueError, match="Could not find a navigation page"):
                at.switch_page(spec.path)
    for spec in allowed:
        at.switch_page(spec.path).run()
        assert not at.exception, (spec.path, at.exception)


@pytest.mark.parametrize("path", PATHS)
def test_every_page_says_store_busy_instead_of_a_traceback(filled, monkeypatch, path):
    # One store per process, as in the app: the test's own connection is closed first (closing a second
    # connection to the file later would drop this process's lock on it under POSIX rules).
    filled.close()
    monkeypatch.setenv("QUALITY_DB_BUSY_TIMEOUT", "0.3")
    at = run_page(path)
    with store_held_by_another_process(Path(filled.path)):
        at.run()  # AppTest reruns only the page: reads it has cached may still be drawn
        assert not at.exception, at.exception
        problems = texts(at.warning) + texts(at.error)
        assert all("busy" in t.lower() for t in problems), problems
        fresh = AppTest.from_file(APP, default_timeout=120)
        fresh.run()
        assert not fresh.exception, fresh.exception
        assert any("busy" in t.lower() for t in texts(fresh.warning)), texts(fresh.warning) + texts(fresh.error)
