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

By default only samples that are not excluded from export are checked, so excluding the copies
of a duplicate makes the finding disappear.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core.gold import gold_labels
from core.quality import (
    clean_text,
    cleaning_findings,
    combine_fields,
    completeness_issues,
    exact_duplicates,
    find_pii,
    groups_from_pairs,
    mask_pii,
    near_duplicate_pairs,
    out_of_fold_probs,
    suspected_label_errors,
)
from core.store import TEXT_FIELDS, Store

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
    "format_summary",
    "label_error_priorities",
    "label_error_report",
    "near_duplicate_report",
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

#: Check name -> title (card and tab order).
CHECKS: dict[str, str] = {
    "exact_duplicates": "Exact duplicates",
    "near_duplicates": "Near duplicates",
    "completeness": "Completeness",
    "cleaning": "Cleaning",
    "pii": "Personal data",
    "label_errors": "Label errors",
}
#: Where label-error probabilities come from: the latest model round's, or cross-validated embeddings.
LABEL_ERROR_METHODS: tuple[str, ...] = ("auto", "model", "embeddings")
#: Queue reasons the quality checks may use.
QUEUE_REASONS: tuple[str, ...] = ("label_issue", "manual")
#: Characters of context shown before and after a matched span.
CONTEXT_CHARS = 30
_PREVIEW_CHARS = 300

Progress = Callable[[str, float], Any]


# ---------------------------------------------------------------------------------------------
# Samples and fields
# ---------------------------------------------------------------------------------------------


def text_fields(samples: pl.DataFrame) -> list[str]:
    """The text fields (of :data:`TEXT_FIELDS`) that hold a value in at least one sample."""
    return [f for f in TEXT_FIELDS if f in samples.columns and samples.get_column(f).is_not_null().any()]


def required_fields(samples: pl.DataFrame) -> list[str]:
    """Fields the completeness check requires: instruction and output when the dataset has them, else ``text``."""
    present = set(text_fields(samples))
    required = [f for f in ("instruction", "output") if f in present]
    if not required:
        required = ["text"] if "text" in present else []
    return required


def _preview(text: str | None, limit: int = _PREVIEW_CHARS) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _joined(samples: pl.DataFrame, fields: Sequence[str]) -> list[str]:
    if samples.height == 0 or not fields:
        return [""] * samples.height
    return combine_fields(samples, fields)


def _ids(samples: pl.DataFrame) -> list[str]:
    return samples.get_column("sample_id").cast(pl.Utf8).to_list()


# ---------------------------------------------------------------------------------------------
# Duplicates
# ---------------------------------------------------------------------------------------------

_DUP_SCHEMA = {"group": pl.Int64, "sample_id": pl.Utf8, "group_size": pl.Int64, "first": pl.Boolean,
               "identical": pl.Boolean, "similarity": pl.Float64, "text": pl.Utf8}


def duplicate_report(samples: pl.DataFrame, fields: Sequence[str] | None = None) -> pl.DataFrame:
    """Exact-duplicate groups, one row per member sample.

    Same groups as :func:`core.quality.exact_duplicates` over the joined ``fields``. Columns:
    ``group`` (1-based), ``sample_id``, ``group_size``, ``first`` (the group's first sample by
    id: the copy to keep), ``identical`` (byte-identical to the first, not only after
    normalization), ``similarity`` (3-gram Jaccard to the first after normalization: 1.0) and
    ``text`` (the joined fields, shortened).
    """
    fields = list(fields) if fields is not None else text_fields(samples)
    texts = _joined(samples, fields)
    ids = _ids(samples)
    rows: dict[str, list] = {k: [] for k in _DUP_SCHEMA}
    for g, members in enumerate(exact_duplicates(texts), start=1):
        head = texts[members[0]]
        for i in members:
            rows["group"].append(g)
            rows["sample_id"].append(ids[i])
            rows["group_size"].append(len(members))
            rows["first"].append(i == members[0])
            rows["identical"].append(texts[i] == head)
            rows["similarity"].append(1.0)
            rows["text"].append(_preview(texts[i]))
    return pl.DataFrame(rows, schema=_DUP_SCHEMA)


_NEAR_MEMBER_SCHEMA = {"cluster": pl.Int64, "sample_id": pl.Utf8, "cluster_size": pl.Int64, "first": pl.Boolean,
                       "max_jaccard": pl.Float64, "text": pl.Utf8}
_NEAR_PAIR_SCHEMA = {"cluster": pl.Int64, "sample_id_a": pl.Utf8, "sample_id_b": pl.Utf8, "jaccard": pl.Float64,
                     "text_a": pl.Utf8, "text_b": pl.Utf8}


def near_duplicate_report(samples: pl.DataFrame, fields: Sequence[str] | None = None,
                          threshold: float = 0.8) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Near-duplicate clusters: ``(members, pairs)``.

    Later copies of exact duplicates are set aside first (the first copy stands for its group),
    then :func:`core.quality.near_duplicate_pairs` finds pairs with exact 3-gram Jaccard >=
    ``threshold`` and clusters are their connected components.

    ``members``: ``cluster`` (1-based), ``sample_id``, ``cluster_size``, ``first`` (first sample
    of the cluster), ``max_jaccard`` (highest similarity to another member), ``text``.
    ``pairs``: ``cluster``, ``sample_id_a``, ``sample_id_b``, ``jaccard``, ``text_a``, ``text_b``
    (full joined texts, for a side-by-side view), most similar first within a cluster.
    """
    fields = list(fields) if fields is not None else text_fields(samples)
    texts = _joined(samples, fields)
    ids = _ids(samples)
    later_copies = {i for g in exact_duplicates(texts) for i in g[1:]}
    searched = [None if i in later_copies else t for i, t in enumerate(texts)]
    pairs = near_duplicate_pairs(searched, threshold=threshold) if len(texts) > 1 else None
    found = [] if pairs is None else list(zip(pairs["row_a"].to_list(), pairs["row_b"].to_list(),
                                                  pairs["jaccard"].to_list()))
    clusters = groups_from_pairs((a, b) for a, b, _ in found)
    cluster_of = {i: c for c, members in enumerate(clusters, start=1) for i in members}
    best: dict[int, float] = {}
    for a, b, j in found:
        best[a] = max(best.get(a, 0.0), j)
        best[b] = max(best.get(b, 0.0), j)
    members = pl.DataFrame(
        {
            "cluster": [c for c, m in enumerate(clusters, start=1) for _ in m],
            "sample_id": [ids[i] for m in clusters for i in m],
            "cluster_size": [len(m) for m in clusters for _ in m],
            "first": [i == m[0] for m in clusters for i in m],
            "max_jaccard": [best[i] for m in clusters for i in m],
            "text": [_preview(texts[i]) for m in clusters for i in m],
        },
        schema=_NEAR_MEMBER_SCHEMA,
    )
    pair_frame = pl.DataFrame(
        {
            "cluster": [cluster_of[a] for a, _, _ in found],
            "sample_id_a": [ids[a] for a, _, _ in found],
            "sample_id_b": [ids[b] for _, b, _ in found],
            "jaccard": [j for _, _, j in found],
            "text_a": [texts[a] for a, _, _ in found],
            "text_b": [texts[b] for _, b, _ in found],
        },
        schema=_NEAR_PAIR_SCHEMA,
    ).sort(["cluster", "jaccard", "sample_id_a", "sample_id_b"], descending=[False, True, False, False])
    return members, pair_frame


def diff_segments(a: str, b: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """Character diff of two texts for a side-by-side view: ``(segments_a, segments_b)``.

    Each side is a list of ``(text, changed)`` whose texts join back to ``a`` / ``b``;
    ``changed`` marks the characters that differ from the other side.
    """
    a, b = a or "", b or ""
    sa: list[tuple[str, bool]] = []
    sb: list[tuple[str, bool]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if i2 > i1:
            sa.append((a[i1:i2], op != "equal"))
        if j2 > j1:
            sb.append((b[j1:j2], op != "equal"))
    return sa, sb


# ---------------------------------------------------------------------------------------------
# Completeness, cleaning, PII
# ---------------------------------------------------------------------------------------------

_COMPLETENESS_SCHEMA = {"sample_id": pl.Utf8, "field": pl.Utf8, "kind": pl.Utf8, "detail": pl.Utf8,
                        "value": pl.Utf8}


def completeness_report(samples: pl.DataFrame, required: Sequence[str] | None = None) -> pl.DataFrame:
    """:func:`core.quality.completeness_issues` with the field's value: ``sample_id, field, kind, detail, value``.

    ``required`` defaults to :func:`required_fields` (a dataset without outputs is not flagged
    for every sample; the truncation and repetition checks then have nothing to look at).
    """
    required = list(required) if required is not None else required_fields(samples)
    if not required or samples.height == 0:
        return pl.DataFrame(schema=_COMPLETENESS_SCHEMA)
    issues = completeness_issues(samples, required=required)
    if issues.height == 0:
        return pl.DataFrame(schema=_COMPLETENESS_SCHEMA)
    values = []
    for r, f in zip(issues["row"].to_list(), issues["field"].to_list()):
        v = samples[r, f] if f in samples.columns else None
        values.append(_preview(v) if v is not None else None)
    return issues.select("sample_id", "field", "kind", "detail").with_columns(
        pl.Series("value", values, dtype=pl.Utf8))


_SPAN_SCHEMA = {"sample_id": pl.Utf8, "field": pl.Utf8, "kind": pl.Utf8, "start": pl.Int64, "end": pl.Int64,
                "before": pl.Utf8, "match": pl.Utf8, "after": pl.Utf8}


def _span_report(samples: pl.DataFrame, fields: Sequence[str], finder: Callable[[str], list],
                 fixer: Callable[[str], str], fixed_name: str) -> pl.DataFrame:
    schema = {**_SPAN_SCHEMA, fixed_name: pl.Utf8}
    rows: dict[str, list] = {k: [] for k in schema}
    ids = _ids(samples)
    for f in fields:
        if f not in samples.columns:
            continue
        for sid, text in zip(ids, samples.get_column(f).to_list()):
            if not text:
                continue
            found = finder(text)
            if not found:
                continue
            fixed = fixer(text)
            for kind, start, end, matched in found:
                lo, hi = max(0, start - CONTEXT_CHARS), min(len(text), end + CONTEXT_CHARS)
                rows["sample_id"].append(sid)
                rows["field"].append(f)
                rows["kind"].append(kind)
                rows["start"].append(start)
                rows["end"].append(end)
                rows["before"].append(("…" if lo > 0 else "") + text[lo:start])
                rows["match"].append(matched)
                rows["after"].append(text[end:hi] + ("…" if hi < len(text) else ""))
                rows[fixed_name].append(fixed)
    order = {f: i for i, f in enumerate(TEXT_FIELDS)}
    frame = pl.DataFrame(rows, schema=schema)
    return (frame.with_columns(pl.col("field").replace_strict(order, default=99, return_dtype=pl.Int32).alias("_f"))
            .sort(["sample_id", "_f", "start"]).drop("_f"))


def cleaning_report(samples: pl.DataFrame, fields: Sequence[str] | None = None) -> pl.DataFrame:
    """Cleaning findings, one row per match: ``sample_id, field, kind, start, end, before, match, after, cleaned``.

    ``before``/``after`` are up to :data:`CONTEXT_CHARS` characters around the match (``…`` where
    cut); ``cleaned`` is the whole field after :func:`core.quality.clean_text`.
    """
    fields = list(fields) if fields is not None else text_fields(samples)
    return _span_report(samples, fields, cleaning_findings, clean_text, "cleaned")


def pii_report(samples: pl.DataFrame, fields: Sequence[str] | None = None) -> pl.DataFrame:
    """Personal data, one row per match: ``sample_id, field, kind, start, end, before, match, after, masked``.

    ``masked`` is the whole field after :func:`core.quality.mask_pii` (``***`` + last 4 characters).
    """
    fields = list(fields) if fields is not None else text_fields(samples)
    return _span_report(samples, fields, find_pii, mask_pii, "masked")


# ---------------------------------------------------------------------------------------------
# Label errors
# ---------------------------------------------------------------------------------------------

_LABEL_SCHEMA = {"sample_id": pl.Utf8, "given_label": pl.Utf8, "suggested_label": pl.Utf8,
                 "self_confidence": pl.Float64, "label_source": pl.Utf8, "text": pl.Utf8}


@dataclass
class LabelErrorResult:
    """Suspected label errors and where their probabilities came from.

    ``frame``: ``sample_id, given_label, suggested_label, self_confidence, label_source, text``,
    most suspicious (lowest self-confidence) first. ``method``: ``model`` / ``embeddings`` /
    ``none`` (not computed: ``note`` says why). ``n_labeled``: samples with a gold label;
    ``n_checked``: those that had probabilities.
    """

    frame: pl.DataFrame
    method: str
    source: str
    n_labeled: int
    n_checked: int
    note: str = ""

    @property
    def computed(self) -> bool:
        return self.method != "none"


def prediction_round(store: Store, dataset: str) -> int | None:
    """The latest round with model probabilities for ``dataset`` (None when there is none)."""
    preds = store.predictions(dataset)
    if preds.height == 0:
        return None
    with_probs = preds.filter(pl.col("probs").is_not_null() & (pl.col("probs").list.len() > 0))
    return int(with_probs["round"].max()) if with_probs.height else None


def _gold(store: Store, dataset: str, samples: pl.DataFrame) -> pl.DataFrame:
    gold = gold_labels(store.annotations(dataset), store.latest_reviews(dataset))
    return gold.join(samples.select("sample_id"), on="sample_id", how="semi").sort("sample_id")


def _not_computed(note: str, n_labeled: int) -> LabelErrorResult:
    return LabelErrorResult(pl.DataFrame(schema=_LABEL_SCHEMA), "none", "", n_labeled, 0, note)


def label_error_report(store: Store, dataset: str, samples: pl.DataFrame | None = None, method: str = "auto",
                       model: Any = None, progress: Progress | None = None, n_splits: int = 5) -> LabelErrorResult:
    """Suspected label errors among the gold-labelled ``samples`` (default: all non-excluded samples).

    Probabilities (``method``):

    - ``model``: the predictions of the latest round that has probabilities (columns in the
      order of the dataset's labels); only samples with such a prediction are checked.
      *Out-of-fold caveat*: cleanlab assumes each probability comes from a model that did not
      see that sample's label. That holds for predictions made on a batch before it was labeled
      (the usual loop); if the round's model was trained on these very labels its probabilities
      are over-confident on them and fewer errors are found — use ``embeddings`` then.
    - ``embeddings``: the joined text fields are embedded (:func:`core.embeddings.embed`,
      cached in the store; ``model`` picks the encoder, default automatic) and
      :func:`core.quality.out_of_fold_probs` gives k-fold cross-validated logistic-regression
      probabilities, out of fold by construction.
    - ``auto``: ``model`` when a round has probabilities, else ``embeddings``.

    ``progress(stage, fraction)`` is called while embedding. A dataset without labels, or with
    too few per class, gives a result with ``method="none"`` and a ``note`` instead of raising.
    """
    if method not in LABEL_ERROR_METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {', '.join(LABEL_ERROR_METHODS)}")
    info = store.get_dataset(dataset)
    if samples is None:
        samples = store.samples(dataset, include_excluded=False)
    gold = _gold(store, dataset, samples)
    n_labeled = gold.height
    if n_labeled == 0:
        return _not_computed("no labels: import annotations (or review samples) to check labels", 0)
    fields = text_fields(samples)
    texts = samples.select("sample_id").with_columns(pl.Series("text", _joined(samples, fields), dtype=pl.Utf8))
    pred_round = prediction_round(store, dataset)
    if method == "auto":
        method = "model" if pred_round is not None else "embeddings"

    if method == "model":
        if pred_round is None:
            return _not_computed("no model predictions with probabilities: use the embeddings method", n_labeled)
        preds = store.predictions(dataset, round=pred_round).filter(pl.col("probs").is_not_null())
        joined = (gold.join(preds.select("sample_id", "model", "probs"), on="sample_id", how="inner")
                  .filter(pl.col("probs").list.len() == len(info.labels))
                  .filter(pl.col("gold_label").is_in(info.labels)))
        if joined.height < 2 or len(info.labels) < 2:
            return _not_computed(f"fewer than two labeled samples have predictions of round {pred_round}", n_labeled)
        probs = np.asarray(joined["probs"].to_list(), dtype=np.float64)
        probs = np.clip(np.nan_to_num(probs, nan=0.0), 0.0, None)
        sums = probs.sum(axis=1, keepdims=True)
        ok = sums[:, 0] > 0
        joined, probs = joined.filter(pl.Series(ok)), probs[ok] / sums[ok]
        label_names = list(info.labels)
        models = sorted({m for m in joined["model"].to_list() if m})
        source = f"model probabilities of round {pred_round}" + (f" ({', '.join(models)})" if models else "")
    else:
        labelled = gold.join(texts, on="sample_id", how="inner")
        if progress:
            progress("embedding texts", 0.0)
        from core import embeddings

        def on_embed(done: int, total: int) -> None:
            if progress:
                progress(f"embedding texts ({done:,}/{total:,})", 0.9 * done / max(total, 1))

        try:
            vectors = embeddings.embed(labelled["text"].to_list(), model=model, store=store, progress=on_embed)
            if progress:
                progress("cross-validating logistic regression", 0.9)
            probs = out_of_fold_probs(vectors, labelled["gold_label"].to_list(), n_splits=n_splits)
        except (ValueError, ImportError, OSError, RuntimeError) as exc:  # incl. a model that is not installed
            return _not_computed(f"cannot compute out-of-fold probabilities: {exc}", n_labeled)
        label_names = [str(x) for x in np.unique(np.asarray(labelled["gold_label"].to_list()))]
        joined = labelled
        encoder = model.model_id if isinstance(model, embeddings.EmbeddingModel) else \
            embeddings.describe_choice(labelled["text"].to_list(), model).split("→")[-1].strip()
        source = f"{n_splits}-fold cross-validated logistic regression on sentence embeddings ({encoder})"

    found = suspected_label_errors(joined["gold_label"].to_list(), probs, label_names)
    if progress:
        progress("done", 1.0)
    rows = found["row"].to_list()
    ids = joined["sample_id"].to_list()
    sources = joined["source"].to_list()
    frame = pl.DataFrame(
        {
            "sample_id": [ids[r] for r in rows],
            "given_label": found["given_label"].to_list(),
            "suggested_label": found["suggested_label"].to_list(),
            "self_confidence": found["self_confidence"].to_list(),
            "label_source": [sources[r] for r in rows],
        },
        schema={k: v for k, v in _LABEL_SCHEMA.items() if k != "text"},
    ).join(texts.with_columns(pl.col("text").map_elements(_preview, return_dtype=pl.Utf8)),
           on="sample_id", how="left", maintain_order="left")
    return LabelErrorResult(frame, method, source, n_labeled, joined.height)


def label_error_priorities(frame: pl.DataFrame) -> dict[str, float]:
    """Queue priority of each suspected sample: ``1 - self_confidence`` (most suspicious first)."""
    return {sid: 1.0 - float(sc) for sid, sc in zip(frame["sample_id"].to_list(), frame["self_confidence"].to_list())}


# ---------------------------------------------------------------------------------------------
# The whole report
# ---------------------------------------------------------------------------------------------


@dataclass
class QualityReport:
    """Every check's frame for one dataset (see the module docstring for the counts)."""

    dataset: str
    n_samples: int
    fields: list[str]
    has_output: bool
    include_excluded: bool
    threshold: float
    sample_ids: list[str]
    exact_duplicates: pl.DataFrame
    near_duplicates: pl.DataFrame
    near_duplicate_pairs: pl.DataFrame
    completeness: pl.DataFrame
    cleaning: pl.DataFrame
    pii: pl.DataFrame
    n_labeled: int
    prediction_round: int | None
    label_errors: LabelErrorResult | None = None
    generated_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def frame(self, check: str) -> pl.DataFrame:
        """The findings frame of ``check`` (label errors: empty when not computed)."""
        if check == "label_errors":
            return self.label_errors.frame if self.label_errors else pl.DataFrame(schema=_LABEL_SCHEMA)
        if check not in CHECKS:
            raise ValueError(f"unknown check {check!r}: expected one of {', '.join(CHECKS)}")
        return getattr(self, check)

    def flagged_ids(self, check: str) -> list[str]:
        """Distinct sample ids a check flags, in table order (duplicates: every member)."""
        return list(dict.fromkeys(self.frame(check)["sample_id"].to_list()))

    @property
    def summary(self) -> pl.DataFrame:
        return summary_frame(self)


def _by_kind(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return ""
    counts = frame.group_by("kind").agg(pl.col("sample_id").n_unique().alias("n")).sort(["n", "kind"],
                                                                                         descending=[True, False])
    return ", ".join(f"{k} {n}" for k, n in counts.iter_rows())


def summary_frame(report: QualityReport) -> pl.DataFrame:
    """One row per check: ``check, title, count, share`` (of the checked samples) and ``detail``.

    ``count`` and ``share`` are null for label errors that were not computed.
    """
    n = report.n_samples
    dup, near = report.exact_duplicates, report.near_duplicates
    n_groups = dup["group"].n_unique() if dup.height else 0
    n_clusters = near["cluster"].n_unique() if near.height else 0
    rows: list[tuple[str, int | None, str]] = [
        ("exact_duplicates", dup.height - n_groups,
         f"{n_groups} groups, {dup.height} samples" if n_groups else ""),
        ("near_duplicates", near.height - n_clusters,
         f"{n_clusters} clusters, {near.height} samples, Jaccard ≥ {report.threshold:g}" if n_clusters else ""),
        ("completeness", report.completeness["sample_id"].n_unique(), _by_kind(report.completeness)),
        ("cleaning", report.cleaning["sample_id"].n_unique(), _by_kind(report.cleaning)),
        ("pii", report.pii["sample_id"].n_unique(), _by_kind(report.pii)),
    ]
    le = report.label_errors
    if le is not None and le.computed:
        rows.append(("label_errors", le.frame.height, f"{le.n_checked} of {le.n_labeled} labeled samples checked; "
                                                      f"{le.source}"))
    else:
        rows.append(("label_errors", None, le.note if le is not None else "not computed"))
    return pl.DataFrame(
        {
            "check": [r[0] for r in rows],
            "title": [CHECKS[r[0]] for r in rows],
            "count": [r[1] for r in rows],
            "share": [None if r[1] is None else (r[1] / n if n else 0.0) for r in rows],
            "detail": [r[2] for r in rows],
        },
        schema={"check": pl.Utf8, "title": pl.Utf8, "count": pl.Int64, "share": pl.Float64, "detail": pl.Utf8},
    )


def run_report(store: Store, dataset: str, *, include_excluded: bool = False, threshold: float = 0.8,
               label_errors: str | None = None, model: Any = None,
               progress: Progress | None = None) -> QualityReport:
    """Run every check on ``dataset``; ``label_errors`` is a method of :data:`LABEL_ERROR_METHODS` or None (skip).

    ``progress(stage, fraction)`` is called before each check and at the end (fraction 1.0).
    Samples excluded from export are skipped unless ``include_excluded``.
    """
    if label_errors is not None and label_errors not in LABEL_ERROR_METHODS:
        raise ValueError(f"unknown label-error method {label_errors!r}: expected one of "
                         f"{', '.join(LABEL_ERROR_METHODS)}")
    steps = [c for c in CHECKS if c != "label_errors" or label_errors is not None]
    done = 0

    def step(name: str) -> None:
        nonlocal done
        if progress:
            progress(CHECKS[name], done / len(steps))
        done += 1

    store.get_dataset(dataset)  # a clear error for an unknown dataset
    samples = store.samples(dataset, include_excluded=include_excluded)
    fields = text_fields(samples)
    step("exact_duplicates")
    exact = duplicate_report(samples, fields)
    step("near_duplicates")
    members, pairs = near_duplicate_report(samples, fields, threshold=threshold)
    step("completeness")
    complete = completeness_report(samples)
    step("cleaning")
    cleaning = cleaning_report(samples, fields)
    step("pii")
    pii = pii_report(samples, fields)
    gold = _gold(store, dataset, samples)
    labels = None
    if label_errors is not None:
        step("label_errors")
        base = done - 1

        def sub(stage: str, fraction: float) -> None:
            if progress:
                progress(f"{CHECKS['label_errors']}: {stage}", (base + fraction) / len(steps))

        labels = label_error_report(store, dataset, samples, method=label_errors, model=model, progress=sub)
    if progress:
        progress("done", 1.0)
    return QualityReport(
        dataset=dataset,
        n_samples=samples.height,
        fields=fields,
        has_output="output" in fields,
        include_excluded=include_excluded,
        threshold=float(threshold),
        sample_ids=_ids(samples),
        exact_duplicates=exact,
        near_duplicates=members,
        near_duplicate_pairs=pairs,
        completeness=complete,
        cleaning=cleaning,
        pii=pii,
        n_labeled=gold.height,
        prediction_round=prediction_round(store, dataset),
        label_errors=labels,
    )


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


def report_to_dict(report: QualityReport) -> dict[str, Any]:
    """The full report as JSON-ready data: dataset, counts, the summary and every check's rows."""
    checks: dict[str, Any] = {name: report.frame(name).to_dicts() for name in CHECKS}
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
    """Queue samples a check flagged (reason ``label_issue`` or ``manual``); returns how many were added.

    A sample already open or claimed for the same reason is skipped (see :meth:`Store.enqueue`).
    ``priorities`` (per sample id, default 1.0) order the queue. Audited as one ``queue.add`` row.
    """
    if reason not in QUEUE_REASONS:
        raise ValueError(f"unknown reason {reason!r}: expected one of {', '.join(QUEUE_REASONS)}")
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
    from core.export import gold_frame

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
