"""Persisted analysis results on a page: read the current one, else compute it in the background worker.

A page asks :func:`job_result` for a job's result. A current result is read (and kept in memory by its
key and version); a missing or stale one is submitted to the process's worker
(:func:`core.jobs.worker.worker_for`) as the system actor ``system:jobs`` — computing a derived result
is the server's business, whoever looks — and the page waits at most :data:`WAIT_S` seconds (small data
is done by then). Longer work shows a progress bar that polls the worker every second (``st.fragment``
with ``run_every``) and reruns the page when the job is done; a stale result is shown meanwhile, marked.
Leads get a Recompute button. ``$QUALITY_JOBS_WAIT`` overrides the wait (tests make it long, so a page
run is deterministic).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import streamlit as st

from core.ingest import AFTER_IMPORT_HOOKS
from core.jobs import JOBS
from core.jobs.runner import SYSTEM_ACTOR
from core.jobs.worker import CANCELLED, FAILED, Task, enqueue_after_import, worker_for
from core.roles import Action
from core.store import Store
from ui import session
from ui.errors import shown_errors

# In the server, an import queues the dataset's analyses at once (on stores whose worker runs).
if enqueue_after_import not in AFTER_IMPORT_HOOKS:
    AFTER_IMPORT_HOOKS.append(enqueue_after_import)

#: How long a page run waits for a job it just submitted before showing progress instead.
WAIT_S = 0.8


def _wait_s() -> float:
    try:
        return float(os.environ.get("QUALITY_JOBS_WAIT", WAIT_S))
    except ValueError:
        return WAIT_S


@st.cache_resource(show_spinner=False, max_entries=24)
def _load(path: str, dataset: str, name: str, params: dict, version: int, computed_at: datetime) -> Any:
    """A stored result (shared, not copied: pages must not change it), keyed by its version and when it was stored."""
    return session.get_store().get_result(dataset, name, params)


def _caption(found: Any, stale: bool) -> None:
    when = f"{found.computed_at:%Y-%m-%d %H:%M:%S} UTC"
    took = f" ({found.seconds:.1f} s)" if found.seconds is not None else ""
    if stale:
        st.caption(f":orange[Computed at {when}{took} on an earlier version of the data; recomputing…]")
    else:
        st.caption(f"Computed at {when}{took} on data version {found.data_version}.")


@st.fragment(run_every=1.0)
def _progress(dataset: str, name: str, params: dict, key: str) -> None:
    task = worker_for(session.get_store()).task(dataset, name, params)
    if task is None or task.finished:
        if task is not None and task.state == FAILED:
            st.error(f"{JOBS[name].title} failed: {task.error}")
            if st.button("Try again", key=f"{key}_retry", icon=":material/refresh:"):
                worker_for(session.get_store()).submit(dataset, name, params)
                st.rerun()
            return
        st.rerun()  # done (or cancelled): the whole page reads the new state
    st.progress(task.fraction, text=f"{JOBS[name].title}: {task.stage} · {task.elapsed:.0f} s")
    if st.button("Cancel", key=f"{key}_cancel", icon=":material/stop:"):
        task.cancel()


def job_result(dataset: str, name: str, params: dict | None = None, *, key: str, quiet: bool = False) -> Any | None:
    """The job's current result value (or a stale one while it recomputes), None while there is none yet.

    Draws the "computed at" caption, the progress bar and, for leads, the Recompute button (widget keys
    start with ``key``; ``quiet``: progress only, no caption or button). On None the caller stops the page
    (:func:`st.stop`) or shows a placeholder.
    """
    store: Store = session.get_store()
    job = JOBS[name]
    resolved = job.resolve(params)
    worker = worker_for(store)
    with shown_errors(stop=True):
        version = store.data_version(dataset, job.depends)
        info = store.result_info(dataset, name, resolved)
    current = info is not None and info["data_version"] == version
    task: Task | None = worker.task(dataset, name, resolved)
    if not current and task is not None and task.state == CANCELLED:
        st.info(f"{job.title} was cancelled.")
        if st.button(f"Compute {job.title.lower()}", key=f"{key}_start", icon=":material/play_arrow:"):
            task = None
    if not current and (task is None or task.finished and task.state not in (FAILED, CANCELLED)):
        task = worker.submit(dataset, name, resolved, actor=SYSTEM_ACTOR)
        if task.wait(_wait_s()) and task.state != FAILED:
            with shown_errors(stop=True):
                info = store.result_info(dataset, name, resolved)
            current = info is not None and info["data_version"] == version
    found = None
    if info is not None:
        with shown_errors(stop=True):
            found = _load(str(store.path), dataset, name, resolved, info["data_version"], info["computed_at"])
    running = task is not None and not task.finished
    if running or not current and task is not None and task.state == FAILED:
        _progress(dataset, name, resolved, key)
    if found is not None and not quiet:
        _caption(found, stale=not current)
        if current and not running and session.can(Action.ANALYZE) and st.button(
                "Recompute", key=f"{key}_recompute", icon=":material/refresh:",
                help="Run this analysis again now (it is recomputed by itself when the data changes)."):
            worker.submit(dataset, name, resolved, actor=session.current_user())
            st.rerun()
    return None if found is None else found.value
