"""Entry point: page config, login, navigation (before any slow work), demo data, dataset picker."""

import os

import streamlit as st

from core.auth import AuthConfigError, authenticate, load_users
from ui.errors import show_error
from ui.format import md_escape
from ui.navigation import DEFAULT_PAGE, pages_for
from ui.session import current_role, get_store

st.set_page_config(page_title="Annotation quality", page_icon=":material/fact_check:", layout="wide")


def _stop_with(page_fn) -> None:
    """Show only ``page_fn`` (no other page is reachable) and end this run."""
    st.navigation([st.Page(page_fn, title="Annotation quality", icon=":material/fact_check:")],
                  position="hidden").run()
    st.stop()


# -- identity: a login form when users are configured, else a single local lead ---------------
try:
    _users = load_users()
except AuthConfigError as _exc:
    _config_error = str(_exc)

    def users_file_error() -> None:
        st.title("Annotation quality")
        st.error(f"The users file cannot be used, so nobody can log in: {_config_error}")

    _stop_with(users_file_error)

if _users:
    _name = st.session_state.get("auth_user")
    if _name is not None and _name not in _users:  # removed from the users file: log out
        for _key in ("auth_user", "auth_role"):
            st.session_state.pop(_key, None)
        _name = None
    if _name is None:
        def log_in() -> None:
            st.title("Annotation quality")
            with st.form("login"):
                st.subheader("Log in")
                name = st.text_input("User name", key="login_name", autocomplete="username")
                password = st.text_input("Password", type="password", key="login_password",
                                         autocomplete="current-password")
                submitted = st.form_submit_button("Log in", type="primary", icon=":material/login:")
            if submitted:
                user = authenticate(name, password, _users)
                if user is None:
                    st.error("Wrong user name or password.")
                else:
                    st.session_state["auth_user"] = user.name
                    st.session_state["auth_role"] = user.role
                    st.rerun()

        _stop_with(log_in)
    st.session_state["auth_role"] = _users[_name].role  # role changes in the file apply at once

# -- navigation first: the menu never shows raw file names, whatever runs slowly afterwards ----
_sections: dict[str, list] = {}
for _spec in pages_for(current_role()):
    _sections.setdefault(_spec.section, []).append(
        st.Page(_spec.path, title=_spec.title, icon=_spec.icon, default=_spec.path == DEFAULT_PAGE))
page = st.navigation(_sections)

with st.sidebar:
    if _users:
        st.markdown(f"Signed in as **{md_escape(_name)}** ({_users[_name].role})")
        if st.button("Log out", icon=":material/logout:", key="logout"):
            st.session_state.clear()
            st.rerun()
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

page.run()
