"""Shared view helpers for the pages: the store, the chosen dataset, the acting user, errors."""

from __future__ import annotations

import os

import streamlit as st
from streamlit.errors import StreamlitAPIException

from core.auth import NO_ROLE, AuthConfigError, PermissionDenied, load_users, role_of
from core.store import ROLES_THAT_WRITE, Store, StoreBusy, StoreError, default_db_path, open_store

BAND_GOOD = 0.8
BAND_RETRAIN = 0.6


@st.cache_resource(show_spinner=False)
def _store_at(path: str) -> Store:
    return open_store(path)


def get_store() -> Store:
    """One Store per database path and server process (it opens the file only while working)."""
    require_login()
    return _store_at(str(default_db_path()))


def require_login() -> None:
    """Stop a page that runs without the app's login (users configured, nobody logged in).

    app.py logs users in before any page runs. But while no script of the server process has
    called ``st.navigation`` yet, Streamlit runs a page of the ``pages/`` folder requested by URL
    directly (its legacy multipage mode), without app.py: this stops such a page.
    """
    users = _configured_users()
    if users == {} or (users and st.session_state.get("auth_user") in users):
        return
    st.warning("Please log in first.")
    try:
        st.switch_page("app.py")  # the login form (reachable in the legacy mode only)
    except StreamlitAPIException:
        pass
    st.stop()


def _configured_users() -> dict | None:
    """The configured users ({} = single local lead mode); None if the users file is unusable."""
    try:
        return load_users()
    except AuthConfigError:
        return None


def current_user() -> str:
    """The name recorded in the audit trail for this session.

    With users configured: the logged-in user ("" before login). Without: the display name
    given in the sidebar, else ``$QUALITY_USER``, else ``local-lead``.
    """
    users = _configured_users()
    if users is None or users:
        return st.session_state.get("auth_user") or ""
    name = str(st.session_state.get("user_name") or "").strip()
    return name or os.environ.get("QUALITY_USER", "").strip() or "local-lead"


def current_role() -> str:
    """The role of :func:`current_user` as ``core.auth.role_of`` sees it (``none`` if unknown)."""
    try:
        return role_of(current_user())
    except AuthConfigError:
        return NO_ROLE


def can_write() -> bool:
    """Whether this session may write (save reviews, fill the queue); a read-only role gets False.

    The same rule ``core`` enforces on every write (``core.auth.require_write``).
    """
    return current_role() in ROLES_THAT_WRITE


def current_dataset() -> str | None:
    return st.session_state.get("dataset")


def require_dataset() -> str:
    """The dataset chosen in the sidebar, or stop the page with a helpful empty state."""
    require_login()
    name = current_dataset()
    if not name:
        st.info("No dataset yet. Import one on the **Import** page, or run `python -m core demo`.")
        st.stop()
    return name


def show_store_error(exc: Exception) -> None:
    """Show a store or input error as a plain message (never a traceback)."""
    if isinstance(exc, StoreBusy):
        st.warning(f"{exc}")
    elif isinstance(exc, (StoreError, ValueError, PermissionDenied)):
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
