"""Entry point: page config, login, navigation (before any slow work), demo data, dataset picker."""

import os
from pathlib import Path

import streamlit as st

from core.auth import LOGIN_THROTTLE, AuthConfigError, authenticate, load_users
from core.sessions import session_secret
from ui import warmup
from ui.errors import show_error
from ui.format import md_escape
from ui.navigation import DEFAULT_PAGE, PAGES, pages_for
from ui.session import (
    audit_login_lockout,
    current_role,
    draw_session_cookie,
    end_session,
    get_store,
    session_user,
    start_session,
)

st.set_page_config(page_title="Annotation quality", page_icon=":material/fact_check:", layout="wide")


def _url_path(spec) -> str:
    """A page's URL path (``/review``): set explicitly, so the login form can stand in for it."""
    return Path(spec.path).stem


def _stop_with(page_fn) -> None:
    """Show only ``page_fn`` (no other page is reachable) and end this run."""
    st.navigation([st.Page(page_fn, title="Annotation quality", icon=":material/fact_check:")],
                  position="hidden").run()
    warmup.start()
    st.stop()


# -- identity: a login form when users are configured, else a single local lead ---------------
try:
    _users = load_users()
    if _users:
        session_secret()  # a QUALITY_SECRET that is too short stops here, with the reason
except AuthConfigError as _exc:
    _config_error = str(_exc)

    def users_file_error() -> None:
        st.title("Annotation quality")
        st.error(f"The users file cannot be used, so nobody can log in: {_config_error}")

    _stop_with(users_file_error)

if _users:
    _user = session_user(_users)  # this session's user, or one restored from a valid session cookie
    _name = _user.name if _user is not None else None
    if _name is None:
        # The login form stands in for every page, at the page's own URL: a deep link such as
        # /review shows the form (no "Page not found"), and after login the same URL opens the
        # real page (a page's identity is its URL path).
        _requested = {}

        def log_in() -> None:
            st.title("Annotation quality")
            notice = st.session_state.pop("auth_notice", None)
            if notice:
                st.info(notice)
            with st.form("login"):
                st.subheader("Log in")
                name = st.text_input("User name", key="login_name", autocomplete="username")
                password = st.text_input("Password", type="password", key="login_password",
                                         autocomplete="current-password")
                submitted = st.form_submit_button("Log in", type="primary", icon=":material/login:")
            draw_session_cookie()  # clears a refused cookie, or the cookie after a logout
            if submitted:
                user = authenticate(name, password, _users, on_lockout=audit_login_lockout)
                if user is None:
                    if LOGIN_THROTTLE.is_locked((name or "").strip()):
                        st.error("Too many failed logins for this name: try again in a minute.")
                    else:
                        st.error("Wrong user name or password.")
                    return
                start_session(user)
                spec = _requested.get("spec")
                if spec is not None and user.role not in spec.roles:
                    st.switch_page(_requested["default"])  # a page this role cannot open: the default
                st.rerun()  # the same URL, now the real page

        _stand_ins = {}
        for _spec in PAGES:
            _stand_ins[_url_path(_spec)] = (_spec, st.Page(log_in, title=_spec.title, url_path=_url_path(_spec),
                                                          default=_spec.path == DEFAULT_PAGE))
        _requested["default"] = next(p for s, p in _stand_ins.values() if s.path == DEFAULT_PAGE)
        _page = st.navigation([p for _s, p in _stand_ins.values()], position="hidden")
        _requested["spec"] = _stand_ins.get(_page.url_path, (None,))[0]
        _page.run()
        # the pages' imports on a background thread, once per server, while the user logs in: only now, with the
        # navigation set and the form drawn (an import competing for the GIL earlier let the browser show
        # Streamlit's default menu of raw file names for a moment)
        warmup.preload_browser_assets()  # the browser's chart and table code, loaded while the user types
        # (after the preload: the script thread imports nothing while the warm-up does)
        warmup.start(_requested["spec"].path if _requested["spec"] is not None else DEFAULT_PAGE)
        st.stop()

# -- navigation first: the menu never shows raw file names, whatever runs slowly afterwards ----
_sections: dict[str, list] = {}
for _spec in pages_for(current_role()):
    _sections.setdefault(_spec.section, []).append(
        st.Page(_spec.path, title=_spec.title, icon=_spec.icon, url_path=_url_path(_spec),
                default=_spec.path == DEFAULT_PAGE))
page = st.navigation(_sections)
warmup.start()  # (no-op after the first run) a server without users skips the login form

with st.sidebar:
    if _users:
        st.markdown(f"Signed in as **{md_escape(_name)}** ({_users[_name].role})")
        if st.button("Log out", icon=":material/logout:", key="logout"):
            end_session()
            st.rerun()
        draw_session_cookie()  # keeps the browser's session cookie (reloads, deep links, new tabs)
    else:
        # No users configured: one local lead (the server is bound to 127.0.0.1), asked once per
        # session for the name recorded in the audit trail. "user_name" is a plain session key (a
        # widget's own key would be dropped on a run that does not draw the widget).
        _default_name = os.environ.get("QUALITY_USER", "").strip() or "local-lead"
        if not str(st.session_state.get("user_name") or "").strip():
            st.session_state["user_name"] = _default_name
        st.session_state["user_name_input"] = st.session_state["user_name"]

        def _set_user_name() -> None:
            st.session_state["user_name"] = st.session_state["user_name_input"].strip() or _default_name

        st.text_input("Your name (audit trail)", key="user_name_input", max_chars=64, on_change=_set_user_name,
                      help="No users are configured: you work as the local lead. "
                           "This name is recorded with every change you make.")


@st.cache_resource(show_spinner=False)
def _ensure_demo(db_path: str) -> bool:
    """Load the bundled demo data into an empty store, once per server process and store."""
    store = get_store()
    if os.environ.get("QUALITY_DEMO", "1") == "0" or store.dataset_names():
        return False
    from core.seed import load_demo

    return bool(load_demo(store))


with warmup.page_running():  # (the demo's first load imports the importer: no warm-up import beside it)
    try:
        store = get_store()
        with st.spinner("Loading the demo dataset (first start only)…"):
            _ensure_demo(str(store.path))
        names = store.dataset_names()
    except Exception as exc:  # noqa: BLE001 - a busy or unreadable store: say so instead of a traceback
        show_error(exc)
        st.stop()

with st.sidebar:
    if names:
        # A page that creates a dataset asks for it via "dataset_next" (a widget's own key
        # cannot be changed once the widget has been drawn in a run).
        wanted = st.session_state.pop("dataset_next", None)
        if wanted in names:
            st.session_state["dataset_picker"] = wanted
        elif st.session_state.get("dataset_picker") not in names:
            st.session_state["dataset_picker"] = names[0]
        st.session_state["dataset"] = st.selectbox("Dataset", names, key="dataset_picker")
    else:
        st.session_state["dataset"] = None
        st.caption("No dataset yet.")

with warmup.page_running():  # no warm-up import beside the page's own (ui.warmup.page_running says why)
    page.run()
