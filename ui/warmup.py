"""Server warm-up: import what the pages need on a background thread as soon as the server runs its first
script (usually the login form), so the first open of each page does not pay for it.

Measured on the 100k benchmark store (issue 18): a page's first open after a server start spent most of its
4-5 s importing (scikit-learn's metrics alone ~2 s, then scipy, the job registry, plotly's figure validators),
not computing: its results were stored. Imports are idempotent and guarded by Python's import lock, so a page
that needs a module while the thread is still importing it simply waits for that one.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

log = logging.getLogger(__name__)

#: Modules the pages import (directly or through core): first what the app shell and the first page (Overview)
#: need, since a user who logs in quickly opens it while this runs, then the heavy ones of the other pages. Not
#: the embedding models (torch, sentence-transformers): hundreds of MB, loaded only when someone asks for them.
MODULES: tuple[str, ...] = (
    "core.store", "core.auth", "plotly.express", "plotly.graph_objects", "pandas", "ui.format", "ui.session",
    "sklearn.metrics", "scipy.stats",
    "core.agreement", "core.jobs", "core.jobs.runner", "core.jobs.worker", "core.analyses.agreement",
    "core.analyses.annotators", "core.analyses.drift", "core.analyses.iterations", "core.quality_report",
    "core.active_learning", "core.selection", "core.consensus", "core.gold", "core.export", "core.review",
    "core.queue", "core.ingest", "core.records", "core.metrics", "core.drift", "core.privacy",
    "ui.jobs", "ui.records", "ui.report", "ui.format", "ui.privacy",
)


#: Page runs going on now, across sessions (:func:`page_running`); the warm-up imports only while there are none.
_RUNS = 0
_RUNS_CHANGED = threading.Condition()
#: The longest the warm-up waits for the page runs to end before importing anyway (a run left hanging).
MAX_WAIT_S = 10.0


@contextmanager
def page_running() -> Iterator[None]:
    """Around a page's script run: the warm-up waits between imports until no page is running, so the first page
    after login does not share the GIL with imports it does not need (measured at 1M samples with an instant
    login: Overview's first open took 1.5-3.6 s while the warm-up was importing scikit-learn beside it)."""
    global _RUNS
    with _RUNS_CHANGED:
        _RUNS += 1
    try:
        yield
    finally:
        with _RUNS_CHANGED:
            _RUNS -= 1
            _RUNS_CHANGED.notify_all()


def _wait_for_idle(timeout: float | None = None) -> bool:
    """Until no page runs (True), or ``timeout`` (default :data:`MAX_WAIT_S`) has passed (False)."""
    with _RUNS_CHANGED:
        return _RUNS_CHANGED.wait_for(lambda: _RUNS == 0, timeout=MAX_WAIT_S if timeout is None else timeout)


def _warm() -> None:
    for name in MODULES:
        _wait_for_idle()
        try:
            importlib.import_module(name)
        except Exception:
            log.warning("warm-up: importing %s failed", name, exc_info=True)
    _wait_for_idle()
    try:  # plotly loads a property validator on first use: build one small figure of the kinds the pages draw
        import plotly.express as px

        px.bar(x=[1, 2], y=["a", "b"], orientation="h").update_layout(height=200, margin={"l": 1, "r": 1})
    except Exception:
        log.warning("warm-up: plotly figure failed", exc_info=True)


#: The container of :func:`preload_browser_assets`, drawn off-screen and hidden from people and screen readers.
PRELOAD_KEY = "browser-asset-preload"


def preload_browser_assets() -> None:
    """Draw a tiny chart and table that nobody sees, so the browser fetches and compiles its chart and table
    code while the user types a password instead of after the first page's run.

    Streamlit's frontend loads the code of a Plotly chart (several MB) and of a data grid on first use. Measured
    on the 100k benchmark store, Overview's first open after login was 3.9 s of which 1.7 s came after its run
    was over: the browser fetching and compiling those two modules before drawing. The elements sit in a keyed
    container that is positioned off-screen and ``visibility: hidden`` (laid out with a real size, as a chart
    needs, but not shown or read out).
    """
    import plotly.graph_objects as go  # (a polars frame, not pandas: importing pandas here would hold up a quick login)
    import polars as pl

    st.html(f"<style>.st-key-{PRELOAD_KEY} {{position: absolute; left: -10000px; top: 0; width: 320px; "
            "height: 160px; overflow: hidden; visibility: hidden; pointer-events: none;}</style>")
    with st.container(key=PRELOAD_KEY):
        fig = go.Figure(go.Bar(x=[1], y=["a"], orientation="h"))
        fig.update_layout(height=120, width=300, margin={"l": 1, "r": 1, "t": 1, "b": 1})
        st.plotly_chart(fig, width=300, key=f"{PRELOAD_KEY}-chart")
        st.dataframe(pl.DataFrame({"a": [1]}), width=300, height=80, key=f"{PRELOAD_KEY}-table")


@st.cache_resource(show_spinner=False)
def start() -> threading.Thread:
    """Start the warm-up once per server process (a daemon thread: it never holds up a shutdown)."""
    thread = threading.Thread(target=_warm, name="quality-warmup", daemon=True)
    thread.start()
    return thread
