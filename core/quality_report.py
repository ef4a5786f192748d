"""Store-level data-quality report: every check of :mod:`core.quality` run on a dataset's samples.

The page (``pages/data_quality.py``) and the CLI (``python -m core quality``) call these plain
functions; they read through the :class:`~core.store.Store` and return polars frames, one per
check, plus a summary frame (``check, title, count, share, detail``).

Checks and what their ``count`` (the summary card) means:

``exact_duplicates``
    Samples whose joined text fields (instruction, input, output, text) are equal after
    :func:`core.quality.normalize_text`. Count: redundant copies, i.e. the samples in duplicate
    groups minus one per group (what removing the duplicates would drop).
``near_duplicates``
    Clusters of samples connected by pairs with character 3-gram Jaccard >= ``threshold``
    (:func:`core.quality.near_duplicate_pairs`), after the later copies of exact duplicates are
    set aside (they are the exact-duplicate check's). Count: samples in clusters minus one per
    cluster.
``completeness``
    :func:`core.quality.completeness_issues` over the required fields the dataset has
    (instruction and output; ``text`` when it has neither). Count: samples with an issue.
``cleaning``
    :func:`core.quality.cleaning_findings` per text field, with the matched span, its context
    and a preview of the field after :func:`core.quality.clean_text`. Count: samples with a finding.
``pii``
    :func:`core.quality.find_pii` per text field, with the matched span, its context and the
    field after :func:`core.quality.mask_pii`. Count: samples with personal data.
``label_errors``
    :func:`core.quality.suspected_label_errors` (cleanlab) on the gold labels
    (:func:`core.gold.gold_labels`: latest review, else the annotators' majority). See
    :func:`label_error_report` for where the probabilities come from. Count: suspected samples;
    not computed unless asked (it may embed every text).
``language_mismatch``, ``refusal``, ``repetition``, ``chat_structure``, ``template_leakage``, ``contamination``, ``length_ratio``
    The instruction-data checks (:mod:`core.textchecks` over each sample's prompt, response and turns, read by
    :class:`core.checks.base.InstructionView` whatever the record's shape). One row per finding with
    ``check, sample_id, label, kind, severity, message, field, start, end, span_text, excerpt`` and the check's
    own columns. ``contamination`` runs only with an evaluation set (``eval_texts``). Count: samples with a
    finding.

The JSON report (:func:`report_to_dict`) holds every check under ``checks.<name>`` as a list of findings that
start with :data:`FINDING_KEYS`.

By default only samples that are not excluded from export are checked, so excluding the copies
of a duplicate makes the finding disappear.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from core import checks as _registry
from core.checks.base import (  # noqa: F401 (re-exported: the report's public helpers)
    CONTEXT_CHARS,
    CheckContext,
    CheckResult,
    joined_texts,
    preview,
    required_fields,
    sample_ids,
    text_fields,
)
from core.checks.cleaning import cleaning_report
from core.checks.completeness import completeness_report
from core.checks.exact_duplicates import duplicate_report
from core.checks.label_errors import (
    LABEL_ERROR_METHODS,
    LabelErrorResult,
    _gold,
    as_check_result,
    label_error_priorities,
    label_error_report,
    prediction_round,
)
from core.checks.near_duplicates import (
    _NEAR_MEMBER_SCHEMA,
    _NEAR_PAIR_SCHEMA,
    diff_segments,
    near_duplicate_report,
)
from core.checks.pii import pii_report
from core.export import gold_frame
from core.quality import clean_text, groups_from_pairs, mask_pii
from core.store import Store
from core.vocab import TEXT_FIELDS

Progress = Callable[[str, float], Any]

__all__ = [
    "CHECKS",
    "LABEL_ERROR_METHODS",
    "QUEUE_REASONS",
    "TEXT_FIELDS",
    "LabelErrorResult",
    "QualityReport",
    "cleaned_copy",
    "cleaned_jsonl",
    "cleaning_report",
    "completeness_report",
    "diff_segments",
    "duplicate_report",
    "exclude_samples",
    "filter_findings",
    "findings_records",
    "format_summary",
    "label_error_priorities",
    "label_error_report",
    "near_duplicate_report",
    "near_duplicates_at",
    "pii_report",
    "prediction_round",
    "report_to_dict",
    "required_fields",
    "run_report",
    "send_to_review",
    "summary_frame",
    "text_fields",
    "write_report_json",
]

class _Titles(Mapping[str, str]):
    """Check name -> title, in card order: a live view of the registry :data:`core.checks.CHECKS`."""

    def __getitem__(self, name: str) -> str:
        return _registry.CHECKS[name].title

    def __iter__(self) -> Iterator[str]:
        return iter(list(_registry.CHECKS))

    def __len__(self) -> int:
        return len(_registry.CHECKS)

    def __repr__(self) -> str:
        return repr(dict(self))


#: Check name -> title (card and tab order), read from the registry.
CHECKS: Mapping[str, str] = _Titles()
#: Queue reasons the Data quality page offers: the check's own reason, or a manual flag.
QUEUE_REASONS: tuple[str, ...] = ("label_issue", "manual")


@dataclass
class QualityReport:
    """Every registered check's result for one dataset (see each check's help for its count)."""

    dataset: str
    n_samples: int
    fields: list[str]
    has_output: bool
    include_excluded: bool
    threshold: float
    sample_ids: list[str]
    results: dict[str, CheckResult]
    n_labeled: int
    prediction_round: int | None
    generated_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    #: ``results`` with personal data masked (:func:`core.privacy.mask_report`), computed once by the ``quality``
    #: job beside the raw ones: masking a million samples' findings takes seconds, too long for a page's run.
    #: None: not computed (mask_report then masks when asked).
    masked_results: dict[str, CheckResult] | None = None

    def frame(self, check: str) -> pl.DataFrame:
        """The findings frame of ``check`` (an on-demand check not run: an empty frame)."""
        if check not in _registry.CHECKS:
            raise ValueError(f"unknown check {check!r}: expected one of {', '.join(_registry.CHECKS)}")
        result = self.results.get(check)
        return result.frame if result is not None else _registry.CHECKS[check].not_run().frame

    def flagged_ids(self, check: str) -> list[str]:
        """Distinct sample ids a check flags, in table order (duplicates: every member)."""
        return list(dict.fromkeys(self.frame(check)["sample_id"].to_list()))

    def __getattr__(self, name: str) -> Any:
        # report.pii, report.near_duplicates ...: the frame of a registered check.
        if name.startswith("_") or "results" not in self.__dict__:
            raise AttributeError(name)
        if name in _registry.CHECKS:
            return self.frame(name)
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    @property
    def near_duplicate_pairs(self) -> pl.DataFrame:
        result = self.results.get("near_duplicates")
        return result.extra["pairs"] if result is not None else pl.DataFrame(schema=_NEAR_PAIR_SCHEMA)

    @property
    def label_errors(self) -> LabelErrorResult | None:
        result = self.results.get("label_errors")
        return result.extra.get("result") if result is not None else None

    @label_errors.setter
    def label_errors(self, value: LabelErrorResult | None) -> None:
        # The page computes label errors on request and attaches them to the cached report.
        if value is None:
            self.results.pop("label_errors", None)
        else:
            self.results["label_errors"] = as_check_result(value)

    @property
    def summary(self) -> pl.DataFrame:
        return summary_frame(self)


def summary_frame(report: QualityReport) -> pl.DataFrame:
    """One row per registered check: ``check, title, count, share`` (of the checked samples) and ``detail``.

    ``count`` and ``share`` are null for an on-demand check that was not run.
    """
    n = report.n_samples
    rows = []
    for check in _registry.ordered():
        result = report.results.get(check.name) or check.not_run()
        rows.append((check.name, check.title, result.count, result.detail))
    return pl.DataFrame(
        {
            "check": [r[0] for r in rows],
            "title": [r[1] for r in rows],
            "count": [r[2] for r in rows],
            "share": [None if r[2] is None else (r[2] / n if n else 0.0) for r in rows],
            "detail": [r[3] for r in rows],
        },
        schema={"check": pl.Utf8, "title": pl.Utf8, "count": pl.Int64, "share": pl.Float64, "detail": pl.Utf8},
    )


def run_report(store: Store, dataset: str, *, include_excluded: bool = False, threshold: float = 0.8,
               label_errors: str | None = None, model: Any = None, checks: Sequence[str] | None = None,
               progress: Progress | None = None, eval_texts: Sequence[str] | None = None,
               cached: bool = True) -> QualityReport:
    """Run every registered check on ``dataset`` (or the named ``checks``).

    On-demand checks run only when asked: ``label_errors`` is a method of
    :data:`LABEL_ERROR_METHODS` or None (skip). ``eval_texts`` (the questions of an evaluation
    set, e.g. :func:`core.checks.contamination.read_eval_texts`) feed the contamination check,
    which without them reports "not run". ``progress(stage, fraction)`` is called before
    each check and at the end (fraction 1.0). Samples excluded from export are skipped unless
    ``include_excluded``. The per-sample part of the checks (PII spans, refusals, MinHash signatures...) is read
    from the store's pass cache and computed only for samples new or changed since the last run
    (:mod:`core.passes`); ``cached`` False computes every sample again (the report is the same).
    """
    if label_errors is not None and label_errors not in LABEL_ERROR_METHODS:
        raise ValueError(f"unknown label-error method {label_errors!r}: expected one of "
                         f"{', '.join(LABEL_ERROR_METHODS)}")
    unknown = [c for c in (checks or ()) if c not in _registry.CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)}: expected some of {', '.join(_registry.CHECKS)}")
    asked = {"label_errors": label_errors is not None}
    steps = [c for c in _registry.ordered()
             if (checks is None or c.name in checks) and (not c.on_demand or asked.get(c.name, checks is not None))]

    store.get_dataset(dataset)  # a clear error for an unknown dataset
    samples = store.samples(dataset, include_excluded=include_excluded)
    fields = text_fields(samples)
    gold = _gold(store, dataset, samples)
    shared: dict[str, Any] = {"gold": gold}  # work the checks of this run share (derived texts, gold labels)
    options = {"label_errors": label_errors or "auto", "model": model,
               "eval_texts": list(eval_texts) if eval_texts else None}
    results: dict[str, CheckResult] = {}
    for done, check in enumerate(steps):
        if progress:
            progress(check.title, done / len(steps))

        def sub(stage: str, fraction: float, _done: int = done, _title: str = check.title) -> None:
            if progress:
                progress(f"{_title}: {stage}", (_done + fraction) / len(steps))

        ctx = CheckContext(store=store, dataset=dataset, samples=samples, fields=fields, threshold=float(threshold),
                           options=dict(options), progress=sub, cache=shared, cached=cached)
        results[check.name] = check.run(ctx)
    if progress:
        progress("done", 1.0)
    return QualityReport(
        dataset=dataset,
        n_samples=samples.height,
        fields=fields,
        has_output="output" in fields,
        include_excluded=include_excluded,
        threshold=float(threshold),
        sample_ids=sample_ids(samples),
        results=results,
        n_labeled=gold.height,
        prediction_round=prediction_round(store, dataset),
    )


def near_duplicates_at(report: QualityReport, threshold: float) -> QualityReport:
    """A copy of ``report`` whose near duplicates are those at Jaccard >= ``threshold``, derived from its stored
    pairs without running the check again (cheap: a filter and a union-find over the pairs).

    Exact for every ``threshold`` at or above the one the report was computed with (each stored pair carries
    its exact Jaccard); a lower one needs the check run again (ValueError). Clusters are renumbered, members
    and pairs ordered as :func:`core.checks.near_duplicates.near_duplicate_report` orders them.
    """
    threshold = float(threshold)
    if threshold < report.threshold - 1e-12:
        raise ValueError(f"threshold {threshold:g} is below the report's {report.threshold:g}: run the "
                         "near-duplicate check again at that threshold")
    if abs(threshold - report.threshold) < 1e-12 or "near_duplicates" not in report.results:
        return report
    pairs = report.near_duplicate_pairs.filter(pl.col("jaccard") >= threshold)
    position = {sid: i for i, sid in enumerate(report.sample_ids)}
    a = [position[s] for s in pairs["sample_id_a"].to_list()]
    b = [position[s] for s in pairs["sample_id_b"].to_list()]
    jaccard = pairs["jaccard"].to_list()
    texts: dict[int, str] = {}
    for i, j, ta, tb in zip(a, b, pairs["text_a"].to_list(), pairs["text_b"].to_list()):
        texts.setdefault(i, ta)
        texts.setdefault(j, tb)
    clusters = groups_from_pairs(zip(a, b))
    cluster_of = {i: c for c, members in enumerate(clusters, start=1) for i in members}
    best: dict[int, float] = {}
    for i, j, v in zip(a, b, jaccard):
        best[i], best[j] = max(best.get(i, 0.0), v), max(best.get(j, 0.0), v)
    ids = report.sample_ids
    members = pl.DataFrame(
        {"cluster": [c for c, m in enumerate(clusters, start=1) for _ in m],
         "sample_id": [ids[i] for m in clusters for i in m],
         "cluster_size": [len(m) for m in clusters for _ in m],
         "first": [i == m[0] for m in clusters for i in m],
         "max_jaccard": [best[i] for m in clusters for i in m],
         "text": [preview(texts[i]) for m in clusters for i in m]},
        schema=_NEAR_MEMBER_SCHEMA)
    pair_frame = (pairs.with_columns(pl.Series("cluster", [cluster_of[i] for i in a], dtype=pl.Int64))
                  .select(list(_NEAR_PAIR_SCHEMA))
                  .sort(["cluster", "jaccard", "sample_id_a", "sample_id_b"], descending=[False, True, False, False]))
    n_clusters = len(clusters)
    detail = f"{n_clusters} clusters, {members.height} samples, Jaccard ≥ {threshold:g}" if n_clusters else ""
    result = CheckResult(members, members.height - n_clusters, detail, extra={"pairs": pair_frame})
    return dataclasses.replace(report, threshold=threshold, results={**report.results, "near_duplicates": result})


def format_summary(report: QualityReport) -> str:
    """The summary as a plain-text table (for the CLI)."""
    lines = [f"dataset {report.dataset}: {report.n_samples:,} samples checked"
             + ("" if report.include_excluded else " (excluded samples skipped)")]
    width = max(len(t) for t in CHECKS.values())
    for row in report.summary.iter_rows(named=True):
        count = "—" if row["count"] is None else f"{row['count']:,}"
        share = "" if row["share"] is None else f"{row['share']:.1%}"
        lines.append(f"  {row['title']:<{width}}  {count:>7}  {share:>6}  {row['detail']}".rstrip())
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: The keys every finding of the report JSON has, first (then the check's own columns).
FINDING_KEYS: tuple[str, ...] = ("check", "sample_id", "kind", "severity", "message", "field", "start", "end",
                                 "span_text")


def _default_message(name: str, row: Mapping[str, Any]) -> str:
    # For the checks whose rows predate the common finding keys: a plain sentence from their own columns.
    if row.get("detail"):
        return str(row["detail"])
    if name == "exact_duplicates":
        return (f"one of {row.get('group_size')} exact copies (group {row.get('group')})"
                + ("; the copy to keep" if row.get("first") else ""))
    if name == "near_duplicates":
        return (f"one of {row.get('cluster_size')} near duplicates (cluster {row.get('cluster')}, max Jaccard "
                f"{row.get('max_jaccard') or 0:.3f})")
    if name == "label_errors":
        return (f"labelled {row.get('given_label')!r}, probably {row.get('suggested_label')!r} "
                f"(self-confidence {row.get('self_confidence') or 0:.3f})")
    if row.get("kind") and row.get("field"):
        return f"{str(row['kind']).replace('_', ' ')} in {row['field']}"
    check = _registry.CHECKS.get(name)
    return check.title if check is not None else name


def findings_records(name: str, frame: pl.DataFrame) -> list[dict[str, Any]]:
    """A check's rows as findings: the :data:`FINDING_KEYS` first (``kind`` defaults to the check's name,
    ``severity`` to its default, ``span_text`` to a ``match`` column, ``message`` to a sentence made from
    the row), then the check's own columns unchanged."""
    check = _registry.CHECKS.get(name)
    default_severity = check.severity if check is not None else "info"
    out = []
    for row in frame.to_dicts():
        std = {"check": name, "sample_id": row.get("sample_id"), "kind": row.get("kind") or name,
               "severity": row.get("severity") or default_severity,
               "message": row.get("message") or _default_message(name, row), "field": row.get("field"),
               "start": row.get("start"), "end": row.get("end"),
               "span_text": row["span_text"] if "span_text" in row else row.get("match")}
        out.append({**std, **{k: _json_safe(v) for k, v in row.items() if k not in std}})
    return out


def filter_findings(frame: pl.DataFrame, severities: Sequence[str] | None = None,
                    labels: Sequence[str | None] | None = None) -> pl.DataFrame:
    """The rows of a findings frame with one of ``severities`` and one of ``labels`` (None in ``labels``: samples
    without a gold label). A None filter, or a frame without that column, keeps every row."""
    if severities is not None and "severity" in frame.columns:
        frame = frame.filter(pl.col("severity").is_in(list(severities)))
    if labels is not None and "label" in frame.columns:
        named = [x for x in labels if x is not None]
        cond = pl.col("label").is_in(named)
        if any(x is None for x in labels):
            cond = cond | pl.col("label").is_null()
        frame = frame.filter(cond.fill_null(False))
    return frame


def report_to_dict(report: QualityReport) -> dict[str, Any]:
    """The full report as JSON-ready data: dataset, counts, the summary and every check's findings under
    ``checks.<name>`` (:func:`findings_records`), plus ``checks.near_duplicate_pairs``."""
    checks: dict[str, Any] = {name: findings_records(name, report.frame(name)) for name in CHECKS}
    checks["near_duplicate_pairs"] = report.near_duplicate_pairs.to_dicts()
    le = report.label_errors
    return {
        "dataset": report.dataset,
        "generated_at": report.generated_at,
        "n_samples": report.n_samples,
        "include_excluded": report.include_excluded,
        "fields": report.fields,
        "near_duplicate_threshold": report.threshold,
        "summary": [{k: _json_safe(v) for k, v in row.items()} for row in report.summary.to_dicts()],
        "label_errors": None if le is None else {"method": le.method, "source": le.source, "n_labeled": le.n_labeled,
                                                 "n_checked": le.n_checked, "note": le.note},
        "checks": checks,
    }


def write_report_json(report: QualityReport, out: str | os.PathLike[str]) -> Path:
    """Write :func:`report_to_dict` as UTF-8 JSON (temporary file, then renamed)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps(report_to_dict(report), ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, out)
    return out


# ---------------------------------------------------------------------------------------------
# Writes and export
# ---------------------------------------------------------------------------------------------


def send_to_review(store: Store, dataset: str, sample_ids: Sequence[str], reason: str, actor: str, *,
                   check: str, priorities: Mapping[str, float] | None = None) -> int:
    """Queue samples a check flagged (reason: a check's own, or ``manual``); returns how many were added.

    A sample already open or claimed for the same reason is skipped (see :meth:`Store.enqueue`).
    ``priorities`` (per sample id, default 1.0) order the queue. Audited as one ``queue.add`` row.
    """
    allowed = dict.fromkeys([*QUEUE_REASONS, *(c.queue_reason for c in _registry.ordered())])
    if reason not in allowed:
        raise ValueError(f"unknown reason {reason!r}: expected one of {', '.join(allowed)}")
    if not (actor or "").strip():
        raise ValueError("an actor name is required for the audit trail")
    ids = list(dict.fromkeys(str(s) for s in sample_ids))
    if not ids:
        return 0
    prio = [float((priorities or {}).get(s, 1.0)) for s in ids]
    return store.enqueue(dataset, ids, reason, actor, priority=prio,
                         detail={"source": "data quality", "check": check})


def exclude_samples(store: Store, dataset: str, sample_ids: Sequence[str], actor: str, *, check: str) -> int:
    """Mark samples excluded from export (audited); returns how many changed."""
    if not (actor or "").strip():
        raise ValueError("an actor name is required for the audit trail")
    return store.set_excluded(dataset, list(sample_ids), True, actor,
                              reason=f"data quality: {CHECKS.get(check, check)}")


def cleaned_copy(store: Store, dataset: str, *, clean: bool = True, mask: bool = True,
                 include_excluded: bool = False) -> pl.DataFrame:
    """The gold-labelled samples (:func:`core.export.gold_frame`) with their text fields cleaned
    (:func:`core.quality.clean_text`) and/or PII-masked (:func:`core.quality.mask_pii`, after cleaning).

    Null fields stay null. Excluded samples are left out unless ``include_excluded``.
    """
    frame = gold_frame(store, dataset, include_excluded=include_excluded)

    def fix(text: str) -> str:
        if clean:
            text = clean_text(text)
        if mask:
            text = mask_pii(text)
        return text

    if clean or mask:
        frame = frame.with_columns(pl.col(c).map_elements(fix, return_dtype=pl.Utf8, skip_nulls=True)
                                   for c in ("instruction", "input", "output", "text"))
    return frame


def cleaned_jsonl(store: Store, dataset: str, **kwargs: Any) -> bytes:
    """:func:`cleaned_copy` as JSON Lines (UTF-8), for a download."""
    frame = cleaned_copy(store, dataset, **kwargs)
    if frame.height == 0:
        return b""
    return frame.write_ndjson().encode("utf-8")
