"""Jobs ``quality`` (the data-quality report: every check that is not on demand) and ``near_duplicates``
(that one check at a threshold below the report's, for the Data quality page's slider)."""

from __future__ import annotations

from core import privacy
from core.checks.base import CheckResult
from core.jobs import Job, register
from core.quality_report import QualityReport, run_report
from core.store.results import register_result_type

register_result_type(QualityReport)
register_result_type(CheckResult)

#: The near-duplicate threshold of the stored report. A page asking for a higher one derives it from the
#: stored pairs (:func:`core.quality_report.near_duplicates_at`); a lower one runs ``near_duplicates``.
DEFAULT_THRESHOLD = 0.8


def _run(store, dataset, params, progress):
    report = run_report(store, dataset, include_excluded=bool(params["include_excluded"]),
                        threshold=float(params["threshold"]), label_errors=None, progress=progress)
    progress("masking personal data for the default view", 0.99)
    # what every page shows unless a lead reveals personal data: masked here, once, not in each page run
    report.masked_results = privacy.mask_report(report).results
    return report


def _run_near(store, dataset, params, progress):
    report = run_report(store, dataset, include_excluded=bool(params["include_excluded"]),
                        threshold=float(params["threshold"]), checks=["near_duplicates"], progress=progress)
    return report.results["near_duplicates"]


# Depends on the labels too: the instruction-data checks group findings by each sample's gold label.
JOB = register(Job(
    name="quality", title="Data quality report", run=_run, depends="labels", order=50,
    defaults={"threshold": DEFAULT_THRESHOLD, "include_excluded": False},
))
# Only the samples' texts (and exclusions) matter to near duplicates; run on request, not by `analyze`.
NEAR_JOB = register(Job(
    name="near_duplicates", title="Near duplicates", run=_run_near, depends="content", order=55, in_analyze=False,
    defaults={"threshold": DEFAULT_THRESHOLD, "include_excluded": False},
))
