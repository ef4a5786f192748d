"""Job ``agreement``: the Agreement page for one selection (bootstrap intervals, tables, disputes, confusions)."""

from __future__ import annotations

from core.analyses.agreement import N_BOOT, agreement_result
from core.jobs import Job, register


def _run(store, dataset, params, progress):
    return agreement_result(store, dataset, params["batch"], params["round"], n_boot=int(params["n_boot"]),
                            progress=progress)


JOB = register(Job(
    name="agreement", title="Agreement", run=_run, depends="labels", order=10,
    defaults={"batch": None, "round": None, "n_boot": N_BOOT},
))
