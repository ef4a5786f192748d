"""Server warm-up: import what the pages need on a background thread as soon as the server runs its first
script (usually the login form), so the first open of each page does not pay for it.

Measured on the 100k benchmark store (issue 18): a page's first open after a server start spent most of its
4-5 s importing (scikit-learn's metrics alone ~2 s, then scipy, the job registry, plotly's figure validators),
not computing: its results were stored. The warm-up never imports while a page runs (:func:`page_running`):
Python's per-module import locks let two threads import the same module, but not modules that import each other.
"""

from __future__ import annotations

import ast
import importlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]

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
    "ui.jobs", "ui.records", "ui.report", "ui.privacy",
)


#: Page runs going on now, across sessions (:func:`page_running`): the warm-up starts an import only while there
#: are none, and holds ``_IMPORTING`` during it, which a page run starting meanwhile waits for.
_RUNS = 0
_RUNS_CHANGED = threading.Condition()
_IMPORTING = threading.Lock()


@contextmanager
def page_running() -> Iterator[None]:
    """Around a page's script run: no warm-up import runs beside it.

    Two reasons. Speed: the first page after login does not share the GIL with imports it does not need (at 1M
    samples with an instant login, Overview's first open took 1.5-3.6 s while the warm-up imported scikit-learn
    beside it). Correctness: two threads importing modules that import each other (``core.jobs`` and its job
    modules, ``core.quality_report``) deadlock; Python breaks the cycle by failing one import, which left the
    Data quality page with ``KeyError: 'core.jobs'`` when it opened while the warm-up was importing ``core.jobs``.
    The run counts itself first (no new import starts from then on), then waits for the one under way, if any.
    """
    global _RUNS
    with _RUNS_CHANGED:
        _RUNS += 1
    try:
        with _IMPORTING:
            pass
        yield
    finally:
        with _RUNS_CHANGED:
            _RUNS -= 1
            _RUNS_CHANGED.notify_all()


def _when_idle(step) -> None:
    """Run ``step`` once no page runs; a page run starting meanwhile waits for it (and only it) to end."""
    with _RUNS_CHANGED:
        _RUNS_CHANGED.wait_for(lambda: _RUNS == 0)
        _IMPORTING.acquire()  # under the runs lock: no run can count itself between the check and this
    try:
        step()
    finally:
        _IMPORTING.release()


def _import(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception:
        log.warning("warm-up: importing %s failed", name, exc_info=True)


def _plotly_figure() -> None:
    try:  # plotly loads a property validator on first use: build one small figure of the kinds the pages draw
        import plotly.express as px

        px.bar(x=[1, 2], y=["a", "b"], orientation="h").update_layout(height=200, margin={"l": 1, "r": 1})
    except Exception:
        log.warning("warm-up: plotly figure failed", exc_info=True)


def page_modules(path: str | Path) -> list[str]:
    """The modules a page script imports at its top level (absolute imports, in order; [] if unreadable)."""
    path = Path(path)
    if not path.is_absolute():
        path = ROOT / path
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            # ``from core import privacy``: a submodule of this project (not a function) is a module too
            names += [f"{node.module}.{a.name}" for a in node.names
                      if (ROOT / node.module.replace(".", "/") / f"{a.name}.py").is_file()
                      or (ROOT / node.module.replace(".", "/") / a.name / "__init__.py").is_file()]
    return [n for n in dict.fromkeys(names) if n != "__future__" and n.split(".")[0] != "streamlit"]


def _warm(first_page: str | None = None) -> None:
    # the page the user asked for first: a quick login then waits only for imports that page needs anyway
    for name in dict.fromkeys([*(page_modules(first_page) if first_page else []), *MODULES]):
        _when_idle(lambda name=name: _import(name))
    _when_idle(_plotly_figure)


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
def start(_first_page: str | None = None) -> threading.Thread:
    """Start the warm-up once per server process (a daemon thread: it never holds up a shutdown), with the
    modules of ``_first_page`` (the page a login form stands in for) first."""
    thread = threading.Thread(target=_warm, args=(_first_page,), name="quality-warmup", daemon=True)
    thread.start()
    return thread
