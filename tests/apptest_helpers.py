"""Helpers for AppTest-based page tests."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def run_page(page: str | None = None, session: dict | None = None, timeout: float = 120) -> AppTest:
    """Run the app (and then ``page``, e.g. ``"pages/import_data.py"``) headless."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in (session or {}).items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page)
        at.run()
    return at


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]
