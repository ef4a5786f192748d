"""Job ``drift``: one drift comparison (default: the earliest vs the latest batch, else round)."""

from __future__ import annotations

from core.analyses.drift import drift_view
from core.jobs import Job, register


def _run(store, dataset, params, progress):
    return drift_view(store, dataset, params["ref"], params["cur"], bins=int(params["bins"]), progress=progress)


JOB = register(Job(
    name="drift", title="Drift", run=_run, depends="labels", order=40,
    defaults={"ref": None, "cur": None, "bins": 10},
))
