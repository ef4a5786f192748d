"""Job ``label_errors``: suspected label errors (cleanlab) by one method, on request (it may embed every text)."""

from __future__ import annotations

from core.checks.label_errors import LabelErrorResult, label_error_report
from core.jobs import Job, register
from core.store.results import register_result_type

register_result_type(LabelErrorResult)


def _run(store, dataset, params, progress):
    samples = store.samples(dataset, include_excluded=bool(params["include_excluded"]))
    return label_error_report(store, dataset, samples, method=str(params["method"]), progress=progress)


# Not run by `python -m core analyze` without --jobs: the embeddings method may download a model and embed
# every text. Depends on the labels: a review changes the gold labels it judges.
JOB = register(Job(
    name="label_errors", title="Suspected label errors", run=_run, depends="labels", order=60, in_analyze=False,
    defaults={"method": "auto", "include_excluded": False},
))
