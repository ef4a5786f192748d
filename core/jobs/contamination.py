"""Job ``contamination``: the samples that overlap an evaluation set a lead supplied (an upload on the Data
quality page, or ``--eval-file``), on request. The evaluation questions are the job's parameter, so each set
has its own stored result, shared by everyone who checks against the same questions."""

from __future__ import annotations

from core.jobs import Job, register
from core.quality_report import run_report


def _run(store, dataset, params, progress):
    eval_texts = [t for t in params["eval_texts"] if isinstance(t, str) and t.strip()]
    if not eval_texts:
        raise ValueError("the contamination job needs an evaluation set: eval_texts holds no question")
    report = run_report(store, dataset, include_excluded=bool(params["include_excluded"]), checks=["contamination"],
                        eval_texts=eval_texts, progress=progress)
    return report.results["contamination"]


# Depends on the labels: each finding carries its sample's gold label.
JOB = register(Job(
    name="contamination", title="Contamination check", run=_run, depends="labels", order=65, in_analyze=False,
    defaults={"eval_texts": [], "eval_name": "", "include_excluded": False},
))
