"""Job ``iterations``: every model round scored against the gold labels, labeled volume, imported rounds."""

from __future__ import annotations

from core.analyses.iterations import iterations_view
from core.jobs import Job, register


def _run(store, dataset, params, progress):
    progress("scoring every round", 0.1)
    return iterations_view(store, dataset)


JOB = register(Job(name="iterations", title="Iterations", run=_run, depends="labels", order=30))
