"""Shared fixtures: a temporary store per test, and the app's environment pointing at it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _no_configured_users(tmp_path_factory, monkeypatch):
    """Run every test in single-local-lead mode unless it configures users itself.

    A developer's real .streamlit/secrets.toml must not change what the tests see.
    """
    empty = tmp_path_factory.getbasetemp() / "no-users.toml"
    empty.touch()
    monkeypatch.setenv("QUALITY_USERS_FILE", str(empty))


@pytest.fixture
def store(tmp_path):
    from core.store import open_store

    return open_store(tmp_path / "store.duckdb")


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """Point the app at a fresh store without demo data; returns the store path."""
    import streamlit as st

    # Cached query results are process-wide: a page test must not see another test's data.
    st.cache_data.clear()
    db = tmp_path / "app.duckdb"
    monkeypatch.setenv("QUALITY_DB", str(db))
    monkeypatch.setenv("QUALITY_DEMO", "0")
    monkeypatch.chdir(ROOT)
    return db
