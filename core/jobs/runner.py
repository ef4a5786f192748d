"""Running a job: compute on the current data version, persist, and find a persisted result that is still current."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.auth import authorize
from core.jobs import JOBS, ordered
from core.jobs.base import Job, Progress, no_progress
from core.roles import Action
from core.store import Store, StoredResult

#: The actor of jobs the server starts by itself (a page opened on data without a current result).
SYSTEM_ACTOR = "system:jobs"


def job(name: str) -> Job:
    """The registered job ``name`` (ValueError naming the registered ones)."""
    try:
        return JOBS[name]
    except KeyError:
        raise ValueError(f"unknown job {name!r}: expected one of {', '.join(JOBS)}") from None


@dataclass(frozen=True)
class Lookup:
    """A persisted result (None: never computed) and whether it is current (computed on the data version
    in force for what the job depends on)."""

    result: StoredResult | None
    version: int

    @property
    def current(self) -> bool:
        return self.result is not None and self.result.data_version == self.version

    @property
    def stale(self) -> bool:
        return self.result is not None and self.result.data_version != self.version


def lookup(store: Store, dataset: str, name: str, params: dict[str, Any] | None = None) -> Lookup:
    """The persisted result of ``name`` with ``params`` (defaults filled in) and whether it is current."""
    j = job(name)
    resolved = j.resolve(params)
    version = store.data_version(dataset, j.depends)
    return Lookup(store.get_result(dataset, name, resolved), version)


def get_or_none(store: Store, dataset: str, name: str, params: dict[str, Any] | None = None) -> StoredResult | None:
    """The persisted result if it is current, else None (:func:`lookup` also returns a stale one, flagged)."""
    found = lookup(store, dataset, name, params)
    return found.result if found.current else None


def run_job(store: Store, dataset: str, name: str, params: dict[str, Any] | None = None, *, actor: str,
            progress: Progress | None = None) -> StoredResult:
    """Compute job ``name`` on ``dataset`` and persist the result (``actor`` must be allowed to run analyses).

    The data version is read *before* computing: a write that lands while the job runs leaves the stored
    result stale at once, never wrongly current.
    """
    authorize(actor, Action.ANALYZE)
    j = job(name)
    resolved = j.resolve(params)
    store.get_dataset(dataset)  # a clear error for an unknown dataset before any work
    version = store.data_version(dataset, j.depends)
    report = progress or no_progress
    t0 = time.perf_counter()
    report(j.title, 0.0)
    value = j.run(store, dataset, resolved, report)
    seconds = time.perf_counter() - t0
    computed_at = store.put_result(dataset, name, resolved, value, data_version=version, seconds=seconds,
                                   actor=actor)
    report("done", 1.0)
    return StoredResult(dataset, name, resolved, version, computed_at, seconds, value)


@dataclass(frozen=True)
class Outcome:
    """One job of :func:`analyze`: ``error`` is None when it succeeded."""

    dataset: str
    job: str
    seconds: float
    error: str | None = None
    skipped: bool = False


def analyze(store: Store, datasets: Sequence[str] | None = None, jobs: Sequence[str] | None = None, *,
            actor: str, force: bool = True, progress: Callable[[str, str, str, float], Any] | None = None,
            done: Callable[[Outcome], Any] | None = None) -> list[Outcome]:
    """Run ``jobs`` (default: every ``in_analyze`` job) with their default parameters on ``datasets``
    (default: all). A failing job is reported in its :class:`Outcome` and the others still run.

    ``force=False`` skips a job whose result is current. ``progress(dataset, job, stage, fraction)`` reports
    inside a job; ``done(outcome)`` after each.
    """
    authorize(actor, Action.ANALYZE)
    chosen = ordered(list(jobs) if jobs is not None else None)
    names = list(datasets) if datasets is not None else store.list_datasets()["name"].to_list()
    for name in names:
        store.get_dataset(name)  # unknown dataset: an error before anything runs
    outcomes = []
    for dataset in names:
        for j in chosen:
            t0 = time.perf_counter()
            if not force and get_or_none(store, dataset, j.name) is not None:
                outcome = Outcome(dataset, j.name, 0.0, skipped=True)
            else:
                def report(stage: str, fraction: float, _d: str = dataset, _j: str = j.name) -> None:
                    if progress:
                        progress(_d, _j, stage, fraction)

                try:
                    run_job(store, dataset, j.name, actor=actor, progress=report)
                    outcome = Outcome(dataset, j.name, time.perf_counter() - t0)
                except Exception as exc:  # noqa: BLE001 - reported per job; the CLI exits non-zero
                    outcome = Outcome(dataset, j.name, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
            outcomes.append(outcome)
            if done:
                done(outcome)
    return outcomes


def after_import(store: Store, dataset: str, worker: Any | None = None) -> list[str]:
    """What an import calls: the names of ``dataset``'s jobs its results are now stale for; with a
    ``worker`` (:class:`core.jobs.worker.Worker`) they are queued to recompute with their default parameters."""
    stale = [j.name for j in ordered() if not lookup(store, dataset, j.name).current]
    if worker is not None:
        for name in stale:
            worker.submit(dataset, name)
    return stale
