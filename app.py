"""Entry point: page config, demo data on first start, dataset picker, navigation."""

import os
from pathlib import Path

import streamlit as st

from pages.common import get_store, show_store_error

st.set_page_config(page_title="Annotation quality", page_icon=":material/fact_check:", layout="wide")


@st.cache_resource(show_spinner="Loading the demo dataset (first start only)…")
def _ensure_demo(db_path: str) -> bool:
    """Load the bundled demo data into an empty store, once per server process and store."""
    store = get_store()
    if os.environ.get("QUALITY_DEMO", "1") == "0" or store.dataset_names():
        return False
    from core.seed import load_demo

    return bool(load_demo(store))


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

# Pages that exist on disk are shown; a page file is the only thing a new page has to add.
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
_ROOT = Path(__file__).parent
pages = {
    section: [st.Page(path, title=title, icon=icon, default=(path == "pages/overview.py"))
              for path, title, icon in entries if (_ROOT / path).exists()]
    for section, entries in _PAGES.items()
}
st.navigation(pages).run()
