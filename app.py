"""Entry point: page config, demo data on first start, dataset picker, navigation."""

import os

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

pages = {
    "Quality": [
        st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    ],
    "Data": [
        st.Page("pages/import_data.py", title="Import", icon=":material/upload:"),
    ],
}
st.navigation(pages).run()
