"""The session's store, user, role and dataset; the login session and its cookie; the permission
switches pages use (failing closed)."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import TYPE_CHECKING

import streamlit as st
from streamlit.errors import StreamlitAPIException

from core import roles, sessions
from core.auth import AuthConfigError, User, audit_lockout, load_users, role_of
from core.roles import Action

if TYPE_CHECKING:  # core.store (DuckDB, polars) loads on first use: app.py reaches st.navigation first
    from core.store import Store


@st.cache_resource(show_spinner=False)
def _store_at(path: str) -> Store:
    from core.store import open_store

    return open_store(path)


def _db_path() -> str:
    from core.store import default_db_path

    return str(default_db_path())


def get_store() -> Store:
    """One Store per database path and server process (it opens the file only while working)."""
    require_login()
    return _store_at(_db_path())


def system_store() -> Store:
    """The same store without the login check: only for system writes made before anyone logged in
    (the audit row of a login lockout)."""
    return _store_at(_db_path())


def audit_login_lockout(name: str) -> None:
    """``authenticate``'s ``on_lockout``: audit the lockout as ``system:auth`` (a busy store is logged,
    the login form still answers)."""
    try:
        audit_lockout(system_store(), name)
    except Exception:  # noqa: BLE001 - the visitor still gets the form's answer; the server log keeps the error
        logging.getLogger(__name__).exception("could not audit the login lockout of %r", name)


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
    _run_app_at_this_url()


def _run_app_at_this_url() -> None:
    """Rerun with app.py (login, navigation) at the URL that was asked for.

    A page runs without app.py only in Streamlit's legacy ``pages/`` folder mode, which a fresh
    server uses for its very first script run (until app.py's ``st.navigation`` has run once).
    Leaving that mode, as ``st.navigation`` itself does, and rerunning keeps the URL (``/review``),
    so app.py shows the login form there, or restores the session from its cookie, and then
    opens that page. ``st.switch_page("app.py")`` would land on the default page instead.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager

        left_legacy_mode = bool(PagesManager.uses_pages_directory)
        PagesManager.uses_pages_directory = False
    except (ImportError, AttributeError):  # another Streamlit version: the old way still locks the door
        left_legacy_mode = False
    if left_legacy_mode:
        st.rerun()
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
    """Whether this session may take ``action``: the rule core enforces (``core.roles.ALLOWED``).

    Never more than :func:`can_write` (a session that may not write may take no action)."""
    try:
        return can_write() and roles.allowed(current_role(), action)
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


# ---------------------------------------------------------------------------------------------
# The login session and its cookie (core.sessions signs and checks the token)
# ---------------------------------------------------------------------------------------------
_SESSION_KEYS = ("auth_user", "auth_role", "auth_token")


def read_session_cookie() -> str | None:
    """The session cookie the browser sent when this session's connection opened (None if none).

    ``st.context.cookies`` is read-only and fixed for the whole session: it still holds the
    cookie after a logout in this session, hence the ``auth_logged_out`` flag.
    """
    try:
        value = st.context.cookies.get(sessions.COOKIE_NAME)
    except Exception:  # noqa: BLE001 - no browser (AppTest, bare mode): no cookie
        return None
    return value if isinstance(value, str) and value else None


def start_session(user: User) -> None:
    """Log ``user`` in for this browser session with a fresh signed token (written to the cookie by
    :func:`draw_session_cookie` on the next run)."""
    token = sessions.sign(user, sessions.session_secret().key, time.time())
    st.session_state.pop("auth_logged_out", None)
    st.session_state.update(auth_user=user.name, auth_role=user.role, auth_token=token)


def _drop_session(notice: str | None = None) -> None:
    for key in _SESSION_KEYS:
        st.session_state.pop(key, None)
    if notice:
        st.session_state["auth_notice"] = notice


def _checked(token: str, users: dict[str, User]) -> User:
    user = sessions.verify(token, users, sessions.session_secret().key, time.time())
    if sessions.REVOKED.is_revoked(token):
        raise sessions.InvalidSession("logged out")
    return user


def session_user(users: dict[str, User]) -> User | None:
    """The logged-in user of this browser session, or None (show the login form).

    A session that is logged in keeps its user while its token stays valid (not expired, user
    still configured with the same role and password). A new session (a reload, a deep link, a
    second tab) takes the user from a valid session cookie, unless this session logged out.
    """
    name = st.session_state.get("auth_user")
    token = st.session_state.get("auth_token")
    if name is not None:
        if token is None:  # logged in by other code of this process (tests): give it a token
            if name not in users:
                _drop_session()
                return None
            start_session(users[name])
            return users[name]
        try:
            return _checked(token, users)
        except sessions.InvalidSession as exc:
            logging.getLogger(__name__).info("session of %r ended: %s", name, exc)
            _drop_session("Your session has ended (it expired, or your account changed): please log in again.")
            st.session_state["auth_cookie_stale"] = True
            return None
    if st.session_state.get("auth_logged_out"):
        return None
    cookie = read_session_cookie()
    if not cookie:
        return None
    try:
        user = _checked(cookie, users)
    except sessions.InvalidSession as exc:
        logging.getLogger(__name__).info("session cookie refused: %s", exc)
        st.session_state["auth_cookie_stale"] = True
        return None
    st.session_state.update(auth_user=user.name, auth_role=user.role, auth_token=cookie)
    return user


def end_session() -> None:
    """Log out: the token is revoked in this process, the session state cleared, and the cookie
    cleared by :func:`draw_session_cookie` on the login form's run."""
    token = st.session_state.get("auth_token")
    if token:
        sessions.REVOKED.revoke(token)
    st.session_state.clear()
    st.session_state["auth_logged_out"] = True


def _cookie_path() -> str:
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    return "/" + base if base else "/"


def cookie_script(token: str | None, now: float | None = None) -> str:
    """A script that writes the session cookie (``token``) or deletes it (None).

    Streamlit 1.67 has no API to set a cookie from a script run (``st.context.cookies`` is
    read-only), so the browser writes it: ``st.html`` runs this in the page itself, not in an
    iframe. HttpOnly is impossible from JavaScript; SameSite=Strict, Secure on https.
    """
    if token is None:
        value, max_age = "", 0
    else:
        exp = sessions.expiry(token) or 0
        value, max_age = token, max(0, int(exp - (time.time() if now is None else now)))
    cookie = f"{sessions.COOKIE_NAME}={value}; Path={_cookie_path()}; Max-Age={max_age}; SameSite=Strict"
    return ("<script>(() => { const secure = window.location.protocol === 'https:' ? '; Secure' : ''; "
            f"document.cookie = {json.dumps(cookie)} + secure; }})();</script>")


def draw_session_cookie() -> None:
    """Bring the browser's cookie in line with this session: write the token while logged in,
    delete it after a logout or when the cookie it sent was refused. Draws an empty element."""
    token = st.session_state.get("auth_token")
    if token:
        st.html(cookie_script(token), unsafe_allow_javascript=True)
    elif st.session_state.get("auth_logged_out") or st.session_state.get("auth_cookie_stale"):
        st.html(cookie_script(None), unsafe_allow_javascript=True)
