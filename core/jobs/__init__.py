"""The job registry: every expensive analysis a page shows, run in the background and persisted in the store.

``JOBS`` maps a job's name to its :class:`Job`, in run order. Each module of this package registers one
job, so a new analysis is a new module here (or a :func:`register` call elsewhere, e.g. a test).
:mod:`core.jobs.runner` runs a job and stores its result (:func:`run_job`), finds a current one
(:func:`get_or_none`, :func:`lookup`) and runs many (:func:`analyze`, the CLI's ``analyze``);
:mod:`core.jobs.worker` runs them on a background thread with progress and cancel.
"""

from __future__ import annotations

import importlib
import pkgutil

from core.jobs.base import Job, JobCancelled, Progress, no_progress

__all__ = ["JOBS", "Job", "JobCancelled", "Progress", "no_progress", "ordered", "register", "unregister"]

JOBS: dict[str, Job] = {}
_INFRASTRUCTURE = {"base", "runner", "worker"}


def register(job: Job) -> Job:
    """Add ``job`` to the registry (a name registered twice by different jobs is an error)."""
    if job.name in JOBS and JOBS[job.name] is not job:
        raise ValueError(f"a job named {job.name!r} is already registered")
    JOBS[job.name] = job
    items = sorted(JOBS.items(), key=lambda kv: (kv[1].order, kv[0]))
    JOBS.clear()
    JOBS.update(items)
    return job


def unregister(name: str) -> None:
    """Remove a job (tests that register a job of their own clean up with this)."""
    JOBS.pop(name, None)


def ordered(names: list[str] | None = None) -> list[Job]:
    """The jobs to run: the named ones (ValueError naming an unknown one), else every ``in_analyze`` job."""
    if names is None:
        return [j for j in JOBS.values() if j.in_analyze]
    unknown = [n for n in names if n not in JOBS]
    if unknown:
        raise ValueError(f"unknown job(s) {', '.join(unknown)}: expected some of {', '.join(JOBS)}")
    return [JOBS[n] for n in JOBS if n in names]


for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE:
        importlib.import_module(f"{__name__}.{_module.name}")
