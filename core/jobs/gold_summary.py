"""Job ``gold_summary``: how many gold labels a dataset has, from which source, and the first rows: what the
Audit page's export tab shows before a file is prepared (at a million samples the consensus behind it takes
seconds, too long for a page run)."""

from __future__ import annotations

from core.export import GoldSummary, gold_summary
from core.jobs import Job, register
from core.store.results import register_result_type

register_result_type(GoldSummary)


def _run(store, dataset, params, progress):
    progress("collecting the gold labels", 0.1)
    return gold_summary(store, dataset, include_excluded=bool(params["include_excluded"]))


# Depends on the labels: a review, a gold question or the consensus method changes the gold labels.
JOB = register(Job(
    name="gold_summary", title="Gold labels", run=_run, depends="labels", order=70,
    defaults={"include_excluded": False},
))
