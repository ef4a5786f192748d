"""Job ``quality``: the data-quality report, every check that is not on demand (per-check findings frames)."""

from __future__ import annotations

from core.checks.base import CheckResult
from core.jobs import Job, register
from core.quality_report import QualityReport, run_report
from core.store.results import register_result_type

register_result_type(QualityReport)
register_result_type(CheckResult)


def _run(store, dataset, params, progress):
    return run_report(store, dataset, include_excluded=bool(params["include_excluded"]),
                      threshold=float(params["threshold"]), label_errors=None, progress=progress)


# Depends on the labels too: the instruction-data checks group findings by each sample's gold label.
JOB = register(Job(
    name="quality", title="Data quality report", run=_run, depends="labels", order=50,
    defaults={"threshold": 0.8, "include_excluded": False},
))
