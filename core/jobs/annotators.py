"""Job ``annotators``: each annotator's quality by every consensus method, gold questions and consensus changes."""

from __future__ import annotations

from core.analyses.annotators import annotators_view
from core.gold import N_BOOT
from core.jobs import Job, register


def _run(store, dataset, params, progress):
    progress("fitting the consensus methods", 0.1)
    return annotators_view(store, dataset, n_boot=int(params["n_boot"]), seed=int(params["seed"]))


JOB = register(Job(
    name="annotators", title="Annotators and consensus", run=_run, depends="labels", order=20,
    defaults={"n_boot": N_BOOT, "seed": 0},
))
