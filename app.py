"""Entry point: page config, demo data on first start, dataset picker, navigation."""

import os

import streamlit as st

from core.auth import AuthConfigError, authenticate, load_users
from pages.common import current_role, get_store, show_store_error

st.set_page_config(page_title="Annotation quality", page_icon=":material/fact_check:", layout="wide")


@st.cache_resource(show_spinner="Loading the demo dataset (first start only)…")
def _ensure_demo(db_path: str) -> bool:
    """Load the bundled demo data into an empty store, once per server process and store."""
    store = get_store()
    if os.environ.get("QUALITY_DEMO", "1") == "0" or store.dataset_names():
        return False
    from core.seed import load_demo

    return bool(load_demo(store))


# -- identity: a login form when users are configured, else a single local lead ---------------
def _md(text: str) -> str:
    """``text`` with markdown punctuation escaped (user names are shown in markdown)."""
    return "".join("\\" + ch if ch in "\\`*_{}[]()#+-.!|<>~:$" else ch for ch in text)


def _stop_with(page_fn) -> None:
    """Show only ``page_fn`` (no other page is reachable) and end this run."""
    st.navigation([st.Page(page_fn, title="Annotation quality", icon=":material/fact_check:")],
                  position="hidden").run()
    st.stop()


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
    with st.sidebar:
        st.markdown(f"Signed in as **{_md(_name)}** ({_users[_name].role})")
        if st.button("Log out", icon=":material/logout:", key="logout"):
            st.session_state.clear()
            st.rerun()
else:
    # No users configured: one local lead (the server is bound to 127.0.0.1), asked once per
    # session for the name recorded in the audit trail.
    # "user_name" is a plain session key (a widget's own key would be dropped on a run that
    # does not draw the widget); the text input edits it through its callback.
    _default_name = os.environ.get("QUALITY_USER", "").strip() or "local-lead"
    if not str(st.session_state.get("user_name") or "").strip():
        st.session_state["user_name"] = _default_name
    st.session_state["user_name_input"] = st.session_state["user_name"]

    def _set_user_name() -> None:
        st.session_state["user_name"] = st.session_state["user_name_input"].strip() or _default_name

    st.sidebar.text_input("Your name (audit trail)", key="user_name_input", max_chars=64,
                          on_change=_set_user_name,
                          help="No users are configured: you work as the local lead. "
                               "This name is recorded with every change you make.")

try:
    store = get_store()
    _ensure_demo(store.path)
    names = store.dataset_names()
except Exception as exc:  # a busy or unreadable store: say so instead of a traceback
    show_store_error(exc)
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

# Every page of the app, by section (a new page adds its line here).
_PAGES = {
    "Quality": [
        ("pages/overview.py", "Overview", ":material/dashboard:"),
        ("pages/agreement.py", "Agreement", ":material/groups:"),
        ("pages/drift.py", "Drift", ":material/ssid_chart:"),
        ("pages/data_quality.py", "Data quality", ":material/rule:"),
        ("pages/iterations.py", "Iterations", ":material/trending_up:"),
    ],
    "Labeling": [
        ("pages/review.py", "Review", ":material/edit_note:"),
        ("pages/selection.py", "Active learning", ":material/target:"),
        ("pages/audit.py", "Audit", ":material/history:"),
    ],
    "Data": [
        ("pages/import_data.py", "Import", ":material/upload:"),
    ],
}
# Pages each role sees (st.navigation only reaches listed pages): stakeholders the read-only
# pages, reviewers everything but Import, leads everything. Writes are refused in core as well.
_STAKEHOLDER_PAGES = {"pages/overview.py", "pages/agreement.py", "pages/drift.py", "pages/data_quality.py",
                      "pages/iterations.py", "pages/audit.py"}


def _page_allowed(role: str, path: str) -> bool:
    if role in ("lead", "system"):
        return True
    if role == "reviewer":
        return path != "pages/import_data.py"
    return role == "stakeholder" and path in _STAKEHOLDER_PAGES


_role = current_role()
pages = {
    section: [st.Page(path, title=title, icon=icon, default=(path == "pages/overview.py"))
              for path, title, icon in entries if _page_allowed(_role, path)]
    for section, entries in _PAGES.items()
}
st.navigation({section: entries for section, entries in pages.items() if entries}).run()
