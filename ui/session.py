"""The session's store, user, role and dataset; the permission switches pages use (failing closed)."""

from __future__ import annotations

import os

import streamlit as st
from streamlit.errors import StreamlitAPIException

from core import roles
from core.auth import AuthConfigError, load_users, role_of
from core.roles import Action
from core.store import Store, default_db_path, open_store


@st.cache_resource(show_spinner=False)
def _store_at(path: str) -> Store:
    return open_store(path)


def get_store() -> Store:
    """One Store per database path and server process (it opens the file only while working)."""
    require_login()
    return _store_at(str(default_db_path()))


def configured_users() -> dict | None:
    """The configured users ({} = single local lead mode); None if the users file is unusable."""
    try:
        return load_users()
    except AuthConfigError:
        return None


def require_login() -> None:
    """Stop a page that runs without the app's login (users configured, nobody logged in).

    app.py calls ``st.navigation`` first in every run, so a page never runs without it; this is
    the second lock on the door (a page run some other way stops here).
    """
    users = configured_users()
    if users == {} or (users and st.session_state.get("auth_user") in users):
        return
    st.warning("Please log in first.")
    try:
        st.switch_page("app.py")
    except StreamlitAPIException:
        pass
    st.stop()


def current_user() -> str:
    """The name recorded in the audit trail for this session.

    With users configured: the logged-in user ("" before login). Without: the display name
    given in the sidebar, else ``$QUALITY_USER``, else ``local-lead``.
    """
    users = configured_users()
    if users is None or users:
        return st.session_state.get("auth_user") or ""
    name = str(st.session_state.get("user_name") or "").strip()
    return name or os.environ.get("QUALITY_USER", "").strip() or "local-lead"


def current_role() -> str:
    """The role of :func:`current_user` as ``core.auth.role_of`` sees it (``none`` if unknown)."""
    try:
        return role_of(current_user())
    except AuthConfigError:
        return roles.NO_ROLE


def can_write() -> bool:
    """Whether this session may change anything at all (False on any doubt: fails closed)."""
    try:
        return roles.may_write(current_role())
    except Exception:  # noqa: BLE001 - a switch that hides controls must fail closed, whatever broke
        return False


def can(action: Action) -> bool:
    """Whether this session may take ``action``: the rule core enforces (``core.roles.ALLOWED``)."""
    try:
        return roles.allowed(current_role(), action)
    except Exception:  # noqa: BLE001 - fails closed
        return False


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


def refresh_after_write() -> None:
    """Clear cached query results after a write so every page shows the new state."""
    st.cache_data.clear()
