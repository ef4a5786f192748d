"""The background worker: a thread that runs queued jobs one at a time, with progress and cancel.

One worker per store and process (:func:`worker_for`): the Streamlit server's pages submit jobs to it and
poll their :class:`Task`, so a job survives page navigation and a page run never waits for it; the CLI
can use it too. A job already queued or running for the same dataset, job and parameters is not queued
twice: :meth:`Worker.submit` returns the task in flight. Tasks that finished stay readable
(:meth:`Worker.task`) until the same job is submitted again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from core.jobs.base import JobCancelled
from core.jobs.runner import SYSTEM_ACTOR, job, run_job
from core.store import Store
from core.store.results import params_key

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


@dataclass
class Task:
    """One submitted job: its state, the stage and fraction its progress last reported, its error."""

    dataset: str
    job: str
    params: dict[str, Any]
    actor: str
    state: str = QUEUED
    stage: str = "queued"
    fraction: float = 0.0
    error: str | None = None
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dataset, self.job, params_key(self.params))

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.time()) - self.started_at

    def cancel(self) -> None:
        """Ask the job to stop (at its next progress report; a queued task never starts)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the task finished; False when ``timeout`` seconds passed first."""
        return self._finished.wait(timeout)

    def _progress(self, stage: str, fraction: float) -> None:
        if self._cancel.is_set():
            raise JobCancelled(f"{self.job} on {self.dataset} was cancelled")
        self.stage, self.fraction = stage, max(0.0, min(1.0, float(fraction)))


class Worker:
    """Runs submitted jobs on ``threads`` daemon threads (default one: a job may use every core itself)."""

    def __init__(self, store: Store, threads: int = 1):
        self.store = store
        self._queue: queue.Queue[Task | None] = queue.Queue()
        self._tasks: dict[tuple[str, str, str], Task] = {}
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, name=f"jobs-worker-{i}", daemon=True)
                         for i in range(max(1, threads))]
        for t in self._threads:
            t.start()

    def submit(self, dataset: str, name: str, params: dict[str, Any] | None = None,
               actor: str = SYSTEM_ACTOR) -> Task:
        """Queue job ``name`` on ``dataset`` (the task in flight for the same key, if there is one)."""
        resolved = job(name).resolve(params)
        task = Task(dataset, name, resolved, actor)
        with self._lock:
            running = self._tasks.get(task.key)
            if running is not None and not running.finished:
                return running
            self._tasks[task.key] = task
        self._queue.put(task)
        return task

    def task(self, dataset: str, name: str, params: dict[str, Any] | None = None) -> Task | None:
        """The latest task of this job and parameters (in flight or finished), or None."""
        key = (dataset, name, params_key(job(name).resolve(params)))
        with self._lock:
            return self._tasks.get(key)

    def tasks(self) -> list[Task]:
        with self._lock:
            return list(self._tasks.values())

    def cancel(self, dataset: str, name: str, params: dict[str, Any] | None = None) -> bool:
        """Cancel the task of this job in flight; False when there is none."""
        task = self.task(dataset, name, params)
        if task is None or task.finished:
            return False
        task.cancel()
        return True

    def idle(self) -> bool:
        return all(t.finished for t in self.tasks())

    def shutdown(self, cancel: bool = True, timeout: float | None = 10.0) -> None:
        """Stop the threads (cancelling tasks in flight unless ``cancel`` is False)."""
        if cancel:
            for t in self.tasks():
                t.cancel()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout)

    def _loop(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            try:
                self._run(task)
            finally:
                task._finished.set()

    def _run(self, task: Task) -> None:
        if task._cancel.is_set():
            task.state, task.stage, task.finished_at = CANCELLED, "cancelled", time.time()
            return
        task.state, task.started_at = RUNNING, time.time()
        try:
            run_job(self.store, task.dataset, task.job, task.params, actor=task.actor, progress=task._progress)
        except JobCancelled:
            task.state, task.stage = CANCELLED, "cancelled"
        except Exception as exc:  # noqa: BLE001 - kept on the task for the page to show; logged with its trace
            task.state, task.error = FAILED, f"{type(exc).__name__}: {exc}"
            log.error("job %s on %s failed:\n%s", task.job, task.dataset, traceback.format_exc())
        else:
            task.state, task.stage, task.fraction = DONE, "done", 1.0
        finally:
            task.finished_at = time.time()


_WORKERS: dict[str, Worker] = {}
_WORKERS_LOCK = threading.Lock()


def worker_for(store: Store) -> Worker:
    """The process's worker for ``store`` (one per store path, started on first use)."""
    key = f"{store.path}#{id(store)}" if store.in_memory else str(store.path)
    with _WORKERS_LOCK:
        worker = _WORKERS.get(key)
        if worker is None:
            worker = _WORKERS[key] = Worker(store)
        elif worker.store is not store:
            worker.store = store  # a new Store object for the same file (e.g. after a cache clear)
        return worker


def existing_worker(store: Store) -> Worker | None:
    """The process's worker for ``store`` if one was started (None: nobody runs jobs on it here)."""
    key = f"{store.path}#{id(store)}" if store.in_memory else str(store.path)
    with _WORKERS_LOCK:
        return _WORKERS.get(key)


def enqueue_after_import(store: Store, dataset: str, result: Any = None) -> list[str]:
    """An after-import hook (:data:`core.ingest.AFTER_IMPORT_HOOKS`): queue ``dataset``'s stale jobs on the
    store's worker, when this process runs one (the Streamlit server once a page used jobs); else nothing."""
    from core.jobs.runner import after_import

    worker = existing_worker(store)
    return after_import(store, dataset, worker) if worker is not None else []
