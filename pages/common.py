"""Shared view helpers for the pages: the store, the chosen dataset, the acting user, errors."""

from __future__ import annotations

import os

import streamlit as st

from core.store import Store, StoreBusy, StoreError, default_db_path, open_store

BAND_GOOD = 0.8
BAND_RETRAIN = 0.6


@st.cache_resource(show_spinner=False)
def _store_at(path: str) -> Store:
    return open_store(path)


def get_store() -> Store:
    """One Store per database path and server process (it opens the file only while working)."""
    return _store_at(str(default_db_path()))


def current_user() -> str:
    """The name recorded in the audit trail for this session."""
    return st.session_state.get("user_name") or os.environ.get("QUALITY_USER", "local-lead")


def can_write() -> bool:
    """Whether this session may write (save reviews, fill the queue); a read-only role gets False."""
    return True


def current_dataset() -> str | None:
    return st.session_state.get("dataset")


def require_dataset() -> str:
    """The dataset chosen in the sidebar, or stop the page with a helpful empty state."""
    name = current_dataset()
    if not name:
        st.info("No dataset yet. Import one on the **Import** page, or run `python -m core demo`.")
        st.stop()
    return name


def show_store_error(exc: Exception) -> None:
    """Show a store or input error as a plain message (never a traceback)."""
    if isinstance(exc, StoreBusy):
        st.warning(f"{exc}")
    elif isinstance(exc, (StoreError, ValueError)):
        st.error(str(exc))
    else:
        st.error(f"Unexpected error: {type(exc).__name__}: {exc}")


def refresh_after_write() -> None:
    """Clear cached query results after a write so every page shows the new state."""
    st.cache_data.clear()


def band_color(value: float) -> str:
    """Traffic-light colour of an agreement value (≥ 0.8 good, 0.6–0.8 fair, < 0.6 retrain)."""
    if value != value:  # NaN
        return "gray"
    if value >= BAND_GOOD:
        return "green"
    if value >= BAND_RETRAIN:
        return "orange"
    return "red"
