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


def _caption(found: Any, stale: bool, recomputing: bool = True) -> None:
    when = f"{found.computed_at:%Y-%m-%d %H:%M:%S} UTC"
    took = f" ({found.seconds:.1f} s)" if found.seconds is not None else ""
    if stale:
        then = "recomputing…" if recomputing else "run it again for the current data"
        st.caption(f":orange[Computed at {when}{took} on an earlier version of the data; {then}]")
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


def job_result(dataset: str, name: str, params: dict | None = None, *, key: str, quiet: bool = False,
               start: bool = True) -> Any | None:
    """The job's current result value (or a stale one while it recomputes), None while there is none yet.

    Draws the "computed at" caption, the progress bar and, for leads, the Recompute button (widget keys
    start with ``key``; ``quiet``: progress only, no caption or button). On None the caller stops the page
    (:func:`st.stop`) or shows a placeholder. ``start=False``: an on-demand job (the page submits it on
    request, :func:`submit`): nothing is started here, a stored result is shown (stale ones marked) and a
    running task's progress polled. See :func:`job_stored` for the stored result with its version.
    """
    found = job_stored(dataset, name, params, key=key, quiet=quiet, start=start)
    return None if found is None else found.value


def peek(dataset: str, name: str, params: dict | None = None) -> Any | None:
    """The stored result of a job (current or not) as a :class:`core.store.StoredResult`, or None; draws,
    submits and waits for nothing (a page's header reads what a section below shows with :func:`job_result`)."""
    store: Store = session.get_store()
    resolved = JOBS[name].resolve(params)
    with shown_errors(stop=True):
        info = store.result_info(dataset, name, resolved)
        if info is None:
            return None
        return _load(str(store.path), dataset, name, resolved, info["data_version"], info["computed_at"])


def submit(dataset: str, name: str, params: dict | None = None) -> Task:
    """Queue job ``name`` on the worker now, for an on-demand job a user asked for (as that user when they may
    run analyses, else as the server: computing a derived result is the server's business), and wait at
    most :data:`WAIT_S` seconds for it; the caller reruns the page, which shows the result or the progress."""
    actor = session.current_user() if session.can(Action.ANALYZE) else SYSTEM_ACTOR
    task = worker_for(session.get_store()).submit(dataset, name, JOBS[name].resolve(params), actor=actor)
    task.wait(_wait_s())
    return task


def job_stored(dataset: str, name: str, params: dict | None = None, *, key: str, quiet: bool = False,
               start: bool = True) -> Any | None:
    """:func:`job_result` as the :class:`core.store.StoredResult` (value, data version, computed at), or None;
    the object is shared by every session reading it: never change it."""
    store: Store = session.get_store()
    job = JOBS[name]
    resolved = job.resolve(params)
    worker = worker_for(store)
    with shown_errors(stop=True):
        version = store.data_version(dataset, job.depends)
        info = store.result_info(dataset, name, resolved)
    current = info is not None and info["data_version"] == version
    task: Task | None = worker.task(dataset, name, resolved)
    if start and not current and task is not None and task.state == CANCELLED:
        st.info(f"{job.title} was cancelled.")
        if st.button(f"Compute {job.title.lower()}", key=f"{key}_start", icon=":material/play_arrow:"):
            task = None
    if start and not current and (task is None or task.finished and task.state not in (FAILED, CANCELLED)):
        task = worker.submit(dataset, name, resolved, actor=SYSTEM_ACTOR)
    # a task in flight (just submitted, queued by an import, started by another session): wait a little too
    if not current and task is not None and not task.finished and task.wait(_wait_s()) and task.state != FAILED:
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
        _caption(found, stale=not current, recomputing=start or running)
        if current and not running and session.can(Action.ANALYZE) and st.button(
                "Recompute", key=f"{key}_recompute", icon=":material/refresh:",
                help="Run this analysis again now (it is recomputed by itself when the data changes)."):
            worker.submit(dataset, name, resolved, actor=session.current_user())
            st.rerun()
    return found
