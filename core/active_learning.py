"""Active learning end to end: the candidate pool from the store, embeddings, a strategy's picks with
their score and reason, a 2-D map of the pool, export and queueing of the picks.

The algorithms live in :mod:`core.selection`; this module is the orchestration the Active learning
page and the CLI share. No streamlit import, no SQL (reads and writes go through the store).
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from scipy.spatial.distance import cdist

from core import selection, vocab
from core.embeddings import (
    EmbeddingModel,
    describe_choice,
    embed,
    resolve_model,
    text_hash,
)
from core.executor import remote_executor
from core.gold import gold_labels
from core.quality import combine_fields

# The text fields joined (newline, empty ones skipped) into the text that is embedded: the same
# fields and order as the drift page, so both share the embedding cache.
from core.store import TEXT_FIELDS

__all__ = [
    "CONFIRM_ABOVE",
    "NEEDS_EMBEDDINGS",
    "NEEDS_PROBS",
    "PICK_COLUMNS",
    "POOL_KINDS",
    "POOL_TEXT_COLUMNS",
    "QUEUE_REASON",
    "STRATEGIES",
    "TEXT_FIELDS",
    "UNCERTAINTY",
    "EmbeddingCancelled",
    "Pool",
    "build_lean_pool",
    "build_pool",
    "choice_texts",
    "embed_pool",
    "embed_rows",
    "embedding_estimate",
    "embedding_rows",
    "map_frame",
    "map_rows",
    "picks_csv",
    "picks_jsonl",
    "pool_choice",
    "pool_from_frames",
    "pool_map",
    "pool_model",
    "pool_options",
    "pool_texts",
    "precompute_embeddings",
    "prob_matrix",
    "project_2d",
    "queue_picks",
    "select",
    "texts_for",
    "with_candidates",
]


#: Pool kinds: samples without a gold label, every sample, one batch, one (sample) round.
POOL_KINDS: tuple[str, ...] = ("unlabeled", "all", "batch", "round")

#: Strategy key -> display name, in the order the page lists them.
STRATEGIES: dict[str, str] = {
    "least_confidence": "Least confidence",
    "margin": "Margin",
    "entropy": "Entropy",
    "k_center": "k-center greedy (core-set)",
    "k_means": "k-means (one per cluster)",
    "hybrid": "Hybrid (most uncertain, then k-center)",
    "adaptive_hybrid": "Adaptive hybrid (diverse early, uncertain late)",
}
UNCERTAINTY: tuple[str, ...] = selection.METHODS
#: Strategies that need model probabilities (a prediction round).
NEEDS_PROBS: tuple[str, ...] = (*UNCERTAINTY, "hybrid", "adaptive_hybrid")
#: Strategies that need text embeddings.
NEEDS_EMBEDDINGS: tuple[str, ...] = ("k_center", "k_means", "hybrid", "adaptive_hybrid")

#: Reason recorded on the review-queue entries this module adds.
QUEUE_REASON = "active_learning"

_METHOD_NAMES = {"least_confidence": "least confidence", "margin": "margin", "entropy": "entropy"}
_POOL_COLUMNS = ("sample_id", *TEXT_FIELDS, "batch", "round")
_LEAN_COLUMNS = ("sample_id", "batch", "round")
#: The pool frame's text columns: absent from a text-less pool (job ``selection_pool``).
POOL_TEXT_COLUMNS: tuple[str, ...] = (*TEXT_FIELDS, "text_joined")
PICK_COLUMNS: tuple[str, ...] = ("rank", "sample_id", "score", "reason", "sample_text", "predicted", "confidence",
                                 "batch", "round", *TEXT_FIELDS, "row")


# --------------------------------------------------------------------------- the pool


@dataclass
class Pool:
    """The samples a strategy may consider, one row each, in sample_id order.

    ``frame`` columns: sample_id, instruction, input, output, text, batch, round, text_joined
    (what is embedded), gold_label (null = unlabeled), predicted, confidence, has_pred (a
    prediction of ``pred_round``), reviewed (has a review), queued (open or claimed in the review
    queue), candidate (may be picked: not excluded as reviewed / queued).
    A text-less pool (:func:`build_lean_pool`, the stored result of job ``selection_pool``) has no text
    columns (:data:`POOL_TEXT_COLUMNS`), and no queued / candidate before :func:`with_candidates`: the
    functions that need texts read those of the rows they use from the store (:func:`pool_texts`).
    ``probs``: (n, len(labels)) float64, the rows of ``pred_round`` (zero rows where has_pred is False).
    """

    dataset: str
    labels: list[str]
    kind: str
    frame: pl.DataFrame
    probs: np.ndarray
    pred_round: int | None
    pred_rounds: list[int] = field(default_factory=list)
    excluded_reviewed: int = 0
    excluded_queued: int = 0

    @property
    def n(self) -> int:
        return self.frame.height

    @property
    def has_texts(self) -> bool:
        """Whether the frame holds the texts (:func:`build_pool`), else they are read on demand."""
        return "text_joined" in self.frame.columns

    @property
    def texts(self) -> list[str]:
        """Every joined text (a pool with texts only: a text-less one reads them with :func:`texts_for`)."""
        if not self.has_texts:
            raise ValueError("this pool holds no texts: read the rows you need with texts_for(pool, rows, store)")
        return self.frame["text_joined"].to_list()

    def without_texts(self) -> Pool:
        """The same pool without its text columns (a new Pool sharing the probabilities)."""
        return dataclasses.replace(self, frame=self.frame.drop([c for c in POOL_TEXT_COLUMNS
                                                                if c in self.frame.columns]))

    @property
    def has_predictions(self) -> bool:
        return bool(self.n) and bool(self.frame["has_pred"].any())

    def candidate_rows(self, strategy: str | None = None) -> np.ndarray:
        """Row indices the strategy may pick (strategies that need probabilities: rows with one)."""
        if "candidate" not in self.frame.columns:
            raise ValueError("this pool has no queue state yet: apply with_candidates(pool, store.queue(dataset))")
        mask = self.frame["candidate"].to_numpy()
        if strategy in NEEDS_PROBS:
            mask = mask & self.frame["has_pred"].to_numpy()
        return np.flatnonzero(mask).astype(np.int64)

    def n_candidates(self, strategy: str | None = None) -> int:
        return int(self.candidate_rows(strategy).size)


def prob_matrix(predictions: pl.DataFrame, labels: Sequence[str],
                sample_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Probability rows for ``sample_ids`` from one round's predictions; returns (probs, has_pred).

    ``predictions``: columns sample_id, predicted, confidence, probs (lists aligned with the label
    order at import time; the label set only grows, so shorter vectors are padded with zeros).
    A prediction without probabilities counts as ``confidence`` (1.0 if missing) on its predicted
    label and the rest spread evenly over the other labels. Rows are renormalised to sum to 1; a
    sample with no usable prediction gets a zero row and has_pred False. With several predictions
    of one sample, the last row wins.
    """
    labels = list(labels)
    c = len(labels)
    n = len(sample_ids)
    out = np.zeros((n, max(c, 1)), dtype=np.float64)
    has = np.zeros(n, dtype=bool)
    if n == 0 or predictions.height == 0 or c == 0:
        return out, has
    # Vectorised (a million predictions: a Python loop over rows took seconds inside the Active learning page).
    where = (pl.DataFrame({"sample_id": [str(s) for s in sample_ids]}, schema={"sample_id": pl.Utf8})
             .with_row_index("_i").unique("sample_id", keep="last"))
    preds = (predictions.unique("sample_id", keep="last", maintain_order=True)
             .select(pl.col("sample_id").cast(pl.Utf8), pl.col("predicted").cast(pl.Utf8),
                     pl.col("confidence").cast(pl.Float64), pl.col("probs").cast(pl.List(pl.Float64)))
             .join(where, on="sample_id", how="inner"))
    with_probs = preds.filter(pl.col("probs").is_not_null() & (pl.col("probs").list.len() > 0))
    rows = [np.zeros((0, c))]
    at = [np.zeros(0, dtype=np.int64)]
    if with_probs.height:
        lengths = with_probs["probs"].list.len().to_numpy().astype(np.int64)
        flat = with_probs["probs"].explode().to_numpy().astype(np.float64)  # a null value is NaN: the row is skipped
        owner = np.repeat(np.arange(with_probs.height), lengths)
        column = np.arange(flat.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        keep = column < c  # vectors longer than the label set: the first c values, as before
        block = np.zeros((with_probs.height, c), dtype=np.float64)
        block[owner[keep], column[keep]] = flat[keep]
        rows.append(block)
        at.append(with_probs["_i"].to_numpy().astype(np.int64))
    # without probabilities: the confidence (1.0 when missing or not finite, clipped to [0, 1]) on the predicted
    # label, the rest spread evenly over the other labels
    by_label = preds.filter(~(pl.col("probs").is_not_null() & (pl.col("probs").list.len() > 0))
                            & pl.col("predicted").is_in(labels))
    if by_label.height:
        conf = by_label["confidence"].to_numpy().astype(np.float64)
        p = np.clip(np.where(np.isfinite(conf), conf, 1.0), 0.0, 1.0)
        block = np.repeat(((1.0 - p) / (c - 1) if c > 1 else np.zeros_like(p))[:, None], c, axis=1)
        lab_idx = {lab: j for j, lab in enumerate(labels)}
        block[np.arange(by_label.height), [lab_idx[x] for x in by_label["predicted"].to_list()]] = p
        rows.append(block)
        at.append(by_label["_i"].to_numpy().astype(np.int64))
    block, index = np.concatenate(rows), np.concatenate(at)
    totals = block.sum(axis=1)
    ok = np.isfinite(block).all(axis=1) & ~(block < 0).any(axis=1) & (totals > 0)
    out[index[ok], :c] = block[ok] / totals[ok, None]
    has[index[ok]] = True
    return out, has


def pool_from_frames(
    dataset: str,
    labels: Sequence[str],
    samples: pl.DataFrame,
    annotations: pl.DataFrame,
    reviews: pl.DataFrame,
    predictions: pl.DataFrame,
    queue: pl.DataFrame | None,
    kind: str = "unlabeled",
    batch: str | None = None,
    round: int | None = None,
    pred_round: int | None = None,
    exclude_reviewed: bool = True,
    exclude_queued: bool = True,
    *,
    texts: bool = True,
    pred_rounds: Sequence[int] | None = None,
) -> Pool:
    """Build the :class:`Pool` from frames read from the store (pure: no store access).

    ``samples``: sample_id, the text fields, batch, round (already without export-excluded samples);
    ``annotations``: sample_id, annotator, label; ``reviews``: the latest review per sample
    (sample_id, version, new_label); ``predictions``: sample_id, round, predicted, confidence,
    probs (every round, or only ``pred_round``'s when ``pred_rounds`` lists the rounds);
    ``queue``: sample_id, status (entries with status open or claimed count as queued; None: no
    queued / candidate columns, :func:`with_candidates` adds them). ``kind``: one of
    :data:`POOL_KINDS` (``batch`` / ``round`` need that argument). ``pred_round``: prediction round
    for the uncertainty scores (None = the latest one). ``texts=False``: a text-less pool (no text
    columns in ``frame``; ``samples`` needs only sample_id, batch, round): texts are read on demand
    (:func:`pool_texts`). Raises ValueError for an unknown kind or a missing batch / round.
    """
    if kind not in POOL_KINDS:
        raise ValueError(f"pool: expected one of {', '.join(POOL_KINDS)}, got {kind!r}")
    if kind == "batch" and batch is None:
        raise ValueError("pool 'batch' needs a batch name")
    if kind == "round" and round is None:
        raise ValueError("pool 'round' needs a round number")
    labels = list(labels)
    columns = _POOL_COLUMNS if texts else _LEAN_COLUMNS
    df = samples
    for col in columns:
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.Int64 if col == "round" else pl.Utf8).alias(col))
    df = df.select(columns).with_columns(pl.col("sample_id").cast(pl.Utf8)).sort("sample_id")

    gold = gold_labels(annotations.select("sample_id", "annotator", "label"),
                       reviews.select("sample_id", "version", "new_label"))
    gold = gold.select(pl.col("sample_id").cast(pl.Utf8), pl.col("gold_label").cast(pl.Utf8))
    df = df.join(gold, on="sample_id", how="left")
    if kind == "unlabeled":
        df = df.filter(pl.col("gold_label").is_null())
    elif kind == "batch":
        df = df.filter(pl.col("batch") == str(batch))
    elif kind == "round":
        df = df.filter(pl.col("round") == int(round))

    reviewed_ids = reviews["sample_id"].cast(pl.Utf8).unique() if reviews.height else pl.Series([], dtype=pl.Utf8)
    reviewed = df["sample_id"].is_in(reviewed_ids.implode()).to_numpy()
    ids = df["sample_id"].to_list()

    if pred_rounds is not None:
        rounds = sorted({int(r) for r in pred_rounds})
    else:
        rounds = sorted({int(r) for r in predictions["round"].drop_nulls().to_list()}) if predictions.height else []
    if pred_round is None and rounds:
        pred_round = rounds[-1]
    if pred_round is not None and rounds and pred_round not in rounds:
        raise ValueError(f"prediction round {pred_round} does not exist; rounds with predictions: "
                         f"{', '.join(map(str, rounds))}")
    this_round = (predictions.filter(pl.col("round") == pred_round) if rounds and predictions.height
                  else predictions.clear())
    # only the pool's samples (an order-keeping filter: the last prediction of a sample still wins)
    this_round = this_round.filter(pl.col("sample_id").cast(pl.Utf8).is_in(df["sample_id"].implode()))
    probs, has_pred = prob_matrix(this_round, labels, ids)
    pred_rows = this_round.unique("sample_id", keep="last").select(
        pl.col("sample_id").cast(pl.Utf8), "predicted", "confidence") if this_round.height else None

    extra = []
    if texts:
        extra.append(pl.Series("text_joined", combine_fields(df, TEXT_FIELDS) if df.height else [], dtype=pl.Utf8))
    df = df.with_columns(*extra, pl.Series("reviewed", reviewed, dtype=pl.Boolean),
                         pl.Series("has_pred", has_pred, dtype=pl.Boolean))
    if pred_rows is not None:
        df = df.join(pred_rows, on="sample_id", how="left", maintain_order="left")
    else:
        df = df.with_columns(pl.lit(None, dtype=pl.Utf8).alias("predicted"),
                             pl.lit(None, dtype=pl.Float64).alias("confidence"))
    # a prediction that could not be read as probabilities is not shown as one either
    df = df.with_columns(
        pl.when(pl.col("has_pred")).then(pl.col("predicted")).otherwise(None).alias("predicted"),
        pl.when(pl.col("has_pred")).then(pl.col("confidence")).otherwise(None).alias("confidence"),
    )
    pool = Pool(dataset=dataset, labels=labels, kind=kind, frame=df, probs=probs,
                pred_round=pred_round if rounds else None, pred_rounds=rounds)
    if queue is None:
        return pool
    return with_candidates(pool, queue, exclude_reviewed, exclude_queued)


def with_candidates(pool: Pool, queue: pl.DataFrame | None, exclude_reviewed: bool = True,
                    exclude_queued: bool = True) -> Pool:
    """The pool with its ``queued`` and ``candidate`` columns and exclusion counts from ``queue`` (sample_id,
    status: open or claimed entries count as queued; e.g. a fresh ``store.queue(dataset)``), as a new
    :class:`Pool` (``pool`` is not changed; its frame and probabilities are shared).

    The queue is not part of the labels data version, so the stored pool (job ``selection_pool``) holds
    no queue state: the page applies it here on every run. Any earlier queued / candidate columns are
    replaced; the result equals :func:`build_pool` with the same exclusions.
    """
    df = pool.frame.drop([c for c in ("queued", "candidate") if c in pool.frame.columns])
    queued_ids = pl.Series([], dtype=pl.Utf8)
    if queue is not None and queue.height:
        queued_ids = (queue.filter(pl.col("status").is_in(list(vocab.LIVE_STATUSES)))["sample_id"]
                      .cast(pl.Utf8).unique())
    queued = df["sample_id"].is_in(queued_ids.implode()).to_numpy() if df.height else np.zeros(0, dtype=bool)
    reviewed = df["reviewed"].to_numpy().astype(bool) if df.height else np.zeros(0, dtype=bool)
    drop = np.zeros(df.height, dtype=bool)
    if exclude_reviewed:
        drop |= reviewed
    if exclude_queued:
        drop |= queued
    at = df.columns.index("reviewed") + 1
    order = [*df.columns[:at], "queued", "candidate", *df.columns[at:]]
    df = df.with_columns(pl.Series("queued", queued, dtype=pl.Boolean),
                         pl.Series("candidate", ~drop, dtype=pl.Boolean)).select(order)
    return dataclasses.replace(
        pool, frame=df,
        excluded_reviewed=int((reviewed & exclude_reviewed).sum()),
        excluded_queued=int((queued & exclude_queued & ~(reviewed & exclude_reviewed)).sum()))


def build_pool(store: Any, dataset: str, kind: str = "unlabeled", batch: str | None = None,
               round: int | None = None, pred_round: int | None = None, exclude_reviewed: bool = True,
               exclude_queued: bool = True) -> Pool:
    """Read the dataset from ``store`` and build its :class:`Pool` (see :func:`pool_from_frames`).

    Samples marked excluded from export are never in the pool. Reads every text: the page reads the
    text-less pool of job ``selection_pool`` (:func:`build_lean_pool`) instead.
    """
    info = store.get_dataset(dataset)  # raises for an unknown dataset
    return pool_from_frames(
        dataset, info.labels,
        store.samples(dataset, include_excluded=False),
        store.annotations(dataset), store.latest_reviews(dataset), store.predictions(dataset),
        store.queue(dataset), kind=kind, batch=batch, round=round, pred_round=pred_round,
        exclude_reviewed=exclude_reviewed, exclude_queued=exclude_queued,
    )


def build_lean_pool(store: Any, dataset: str, kind: str = "unlabeled", batch: str | None = None,
                    round: int | None = None, pred_round: int | None = None,
                    progress: Callable[[str, float], Any] | None = None) -> Pool:
    """The text-less pool without queue state (what job ``selection_pool`` stores): :func:`build_pool`'s
    frame without the text columns, queued and candidate, and its probabilities. Reads no text (samples:
    sample_id, batch, round, in pages) and only the chosen prediction round. :func:`with_candidates` adds
    the queue state, :func:`pool_texts` the texts of the rows that need them."""
    report = progress or (lambda stage, fraction: None)
    info = store.get_dataset(dataset)
    report("reading the samples", 0.05)
    pages = list(store.sample_pages(dataset, _LEAN_COLUMNS, include_excluded=False))
    samples = (pl.concat(pages, how="vertical_relaxed") if pages
               else pl.DataFrame(schema={"sample_id": pl.Utf8, "batch": pl.Utf8, "round": pl.Int64}))
    report("reading the annotations and reviews", 0.25)
    annotations = store.annotations(dataset).select("sample_id", "annotator", "label")
    reviews = store.latest_reviews(dataset)
    rounds = store.prediction_rounds(dataset)
    chosen = pred_round if pred_round is not None else (rounds[-1] if rounds else None)
    report("reading the predictions", 0.5)
    if rounds and chosen in rounds:
        predictions = store.predictions(dataset, round=int(chosen))
    else:  # no round (or an unknown one: pool_from_frames says so)
        predictions = pl.DataFrame(schema={"sample_id": pl.Utf8, "round": pl.Int64, "model": pl.Utf8,
                                           "predicted": pl.Utf8, "confidence": pl.Float64,
                                           "probs": pl.List(pl.Float64)})
    report("scoring the pool", 0.75)
    return pool_from_frames(dataset, info.labels, samples, annotations, reviews, predictions, None, kind=kind,
                            batch=batch, round=round, pred_round=pred_round, texts=False, pred_rounds=rounds)


# --------------------------------------------------------------------------- texts on demand

#: Texts read to choose the embedding model of a text-less pool (a seeded uniform sample of its rows).
CHOICE_SAMPLE = 2000


def pool_texts(pool: Pool, rows: Sequence[int] | np.ndarray | None = None, store: Any = None) -> pl.DataFrame:
    """The text fields and ``text_joined`` (what is embedded: :func:`core.quality.combine_fields` of
    :data:`TEXT_FIELDS`) of pool ``rows`` (default every row), one row each in that order, with sample_id.

    A pool with texts (:func:`build_pool`) gives its own columns; a text-less one (job ``selection_pool``)
    reads only those samples from ``store`` (``samples_by_ids``). ValueError without a store then."""
    idx = (np.arange(pool.n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)).tolist()
    if pool.has_texts:
        return pool.frame[idx].select("sample_id", *TEXT_FIELDS, "text_joined")
    if store is None:
        raise ValueError("this pool holds no texts: pass the store to read the texts it needs")
    ids = pool.frame["sample_id"][idx] if idx else pl.Series("sample_id", [], dtype=pl.Utf8)
    got = (store.samples_by_ids(pool.dataset, list(dict.fromkeys(ids.to_list()))) if idx
           else pl.DataFrame(schema={"sample_id": pl.Utf8, **{f: pl.Utf8 for f in TEXT_FIELDS}}))
    got = got.select(pl.col("sample_id").cast(pl.Utf8), *[pl.col(f).cast(pl.Utf8) for f in TEXT_FIELDS])
    out = pl.DataFrame({"sample_id": ids}).join(got, on="sample_id", how="left", maintain_order="left")
    return out.with_columns(pl.Series("text_joined", combine_fields(out, TEXT_FIELDS) if out.height else [],
                                      dtype=pl.Utf8))


def texts_for(pool: Pool, rows: Sequence[int] | np.ndarray | None = None, store: Any = None) -> list[str]:
    """The joined texts (``text_joined``) of pool ``rows`` in that order (see :func:`pool_texts`)."""
    return pool_texts(pool, rows, store)["text_joined"].to_list()


def choice_texts(pool: Pool, store: Any = None, sample: int | None = None) -> list[str]:
    """The texts that choose the embedding model of the pool (:func:`core.embeddings.resolve_model`: by
    the share of texts with CJK). A pool with texts: all of them, as always. A text-less pool: a seeded
    uniform sample of :data:`CHOICE_SAMPLE` rows (every row when fewer); when the sample's CJK share is
    within three standard errors of the threshold, every text is read, so the choice is the full one."""
    if pool.has_texts:
        return pool.texts
    size = CHOICE_SAMPLE if sample is None else int(sample)
    if pool.n <= size:
        return texts_for(pool, None, store)
    rows = np.sort(np.random.default_rng(0).choice(pool.n, size, replace=False))
    texts = texts_for(pool, rows, store)
    from core.embeddings import CJK_THRESHOLD, cjk_fraction

    margin = 3.0 * math.sqrt(CJK_THRESHOLD * (1.0 - CJK_THRESHOLD) / size)
    if abs(cjk_fraction(texts) - CJK_THRESHOLD) <= margin:
        return texts_for(pool, None, store)
    return texts


def pool_choice(pool: Pool, store: Any = None, model: Any = None) -> str:
    """One line naming the embedding model of the pool and why (:func:`core.embeddings.describe_choice`)."""
    return describe_choice([] if model is not None else choice_texts(pool, store), model)


def pool_model(pool: Pool, store: Any = None, model: Any = None) -> EmbeddingModel:
    """The embedding model of the pool (``model`` when given, else chosen from :func:`choice_texts`)."""
    return resolve_model([] if model is not None else choice_texts(pool, store), model)


def pool_options(store: Any, dataset: str) -> dict[str, list]:
    """What the pool controls offer: ``batches`` and sample ``rounds`` of the (non-excluded) samples,
    ``pred_rounds`` (rounds that have predictions), ascending; ``labels``."""
    info = store.get_dataset(dataset)
    batches: set[str] = set()
    rounds: set[int] = set()
    for page in store.sample_pages(dataset, ("sample_id", "batch", "round"), include_excluded=False):
        batches.update(page["batch"].drop_nulls().unique().to_list())
        rounds.update(int(r) for r in page["round"].drop_nulls().unique().to_list())
    return {"batches": sorted(batches), "rounds": sorted(rounds), "pred_rounds": store.prediction_rounds(dataset),
            "labels": list(info.labels)}


# --------------------------------------------------------------------------- embeddings

#: Texts to encode above which the page shows an estimate and asks before embedding.
CONFIRM_ABOVE = 2000
#: Texts per second assumed before one was measured in this process: conservative (3,600 texts took
#: 136 s on a busy 2-core machine, ~26 a second).
DEFAULT_TEXTS_PER_SECOND = 25.0
_THROUGHPUT: dict[str, float] = {}  # model id -> texts per second measured by embed_rows in this process
_THROUGHPUT_LOCK = threading.Lock()


class EmbeddingCancelled(Exception):
    """Embedding stopped on request; the texts encoded until then are cached in the store."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"embedding cancelled after {done:,} of {total:,} texts (those are cached)")
        self.done, self.total = done, total


def embedding_rows(pool: Pool, strategy: str, k: int, *, method: str = "margin", pool_factor: float = 10,
                   round_index: int = 0, n_rounds: int = 10) -> np.ndarray:
    """The pool rows whose embeddings ``strategy`` reads (sorted int64; empty for strategies without).

    - k-center: every pool row: the candidates, and the rows left out as reviewed / queued, which
      count as centers already chosen (it measures distances to them);
    - k-means: the candidates only (the others are left out of the clustering);
    - hybrid / adaptive hybrid: only the ceil(pool_factor * k) most uncertain candidates with a
      prediction (:func:`core.selection.hybrid_pool`): its k-center starts from no chosen center.

    ValueError (as :func:`select`) when k does not fit the candidates.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy not in NEEDS_EMBEDDINGS:
        return np.empty(0, dtype=np.int64)
    if strategy == "k_center":
        return np.arange(pool.n, dtype=np.int64)
    rows = pool.candidate_rows(strategy)
    if strategy == "k_means":
        return rows
    k = _check_k(k, int(rows.size), "samples with a prediction")
    pf = float(pool_factor) if strategy == "hybrid" else selection.adaptive_pool_factor(round_index, n_rounds)
    return rows[selection.hybrid_pool(pool.probs[rows], k, method, pf)]


def _distinct(pool: Pool, rows: np.ndarray, store: Any = None) -> list[str]:
    return list(dict.fromkeys("" if t is None else t for t in texts_for(pool, rows, store)))


def embedding_estimate(pool: Pool, rows: np.ndarray, store: Any = None, model: Any = None) -> dict[str, Any]:
    """What embedding ``rows`` of the pool costs, before doing it: ``texts`` (rows), ``distinct`` texts,
    ``cached`` (already in the store's cache), ``to_encode``, ``seconds`` (to_encode / texts per second:
    measured in this process for the model, else :data:`DEFAULT_TEXTS_PER_SECOND`), ``measured`` (bool),
    ``confirm`` (to_encode > :data:`CONFIRM_ABOVE`: ask first). Loads no packaged model. A text-less
    pool reads the texts of ``rows`` (and the model choice's sample, :func:`choice_texts`) from ``store``."""
    rows = np.asarray(rows, dtype=np.int64)
    distinct = _distinct(pool, rows, store)
    emb_model = pool_model(pool, store, model)
    cached = 0
    if store is not None and distinct:
        cached = len(store.cached_embeddings(emb_model.model_id, [text_hash(t) for t in distinct]) or {})
    to_encode = len(distinct) - cached
    with _THROUGHPUT_LOCK:
        rate = _THROUGHPUT.get(emb_model.model_id)
    return {"texts": int(rows.size), "distinct": len(distinct), "cached": cached, "to_encode": to_encode,
            "seconds": to_encode / (rate or DEFAULT_TEXTS_PER_SECOND), "measured": rate is not None,
            "confirm": to_encode > CONFIRM_ABOVE, "model_id": emb_model.model_id}


def embed_rows(pool: Pool, rows: np.ndarray | None = None, store: Any = None, model: Any = None,
               progress: Callable[[int, int], Any] | None = None, stop: threading.Event | None = None,
               batch_size: int = 64) -> np.ndarray:
    """Embeddings of some pool rows, as a (pool.n, dim) float32 array whose other rows are NaN.

    ``rows``: pool row indices (default every row; :func:`embedding_rows` gives what a strategy needs).
    The model is chosen from the whole pool's texts (:func:`choice_texts`: the same choice for every
    subset, so the cache is shared); a text-less pool reads the texts of ``rows`` only from ``store``. Texts are encoded in batches; ``progress(done, total)`` after each, and when ``stop`` is
    set between batches embedding ends with :class:`EmbeddingCancelled` (what was encoded is cached).
    """
    idx = np.arange(pool.n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    emb_model = pool_model(pool, store, model)
    chosen = texts_for(pool, idx, store)
    spent = {"texts": 0, "seconds": 0.0}

    def timed(batch: list[str], size: int) -> np.ndarray:  # the model's own time: the throughput estimate
        t0 = time.monotonic()
        out = emb_model.encode_fn(batch, size)
        spent["seconds"] += time.monotonic() - t0
        spent["texts"] += len(batch)
        return out

    def tick(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        if stop is not None and stop.is_set() and done < total:
            raise EmbeddingCancelled(done, total)

    measured = EmbeddingModel(emb_model.model_id, emb_model.backend, emb_model.dim, timed, emb_model.spec)
    try:
        vectors = embed(chosen, model=measured, store=store, progress=tick, batch_size=batch_size,
                        executor=remote_executor())
    finally:
        if spent["texts"] >= batch_size and spent["seconds"] > 0:
            with _THROUGHPUT_LOCK:
                _THROUGHPUT[emb_model.model_id] = spent["texts"] / spent["seconds"]
    out = np.full((pool.n, emb_model.dim), np.nan, dtype=np.float32)
    out[idx] = vectors
    return out


def embed_pool(pool: Pool, store: Any = None, model: Any = None,
               progress: Callable[[int, int], Any] | None = None) -> np.ndarray:
    """Embeddings of the pool's texts (rows in pool order), cached in ``store`` when given (a text-less
    pool reads its texts from ``store``)."""
    return embed(texts_for(pool, None, store), model=model, store=store, progress=progress,
                 executor=remote_executor())


def precompute_embeddings(store: Any, dataset: str, model: Any = None,
                          progress: Callable[[int, int], Any] | None = None,
                          announce: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Embed every (non-excluded) sample of ``dataset`` into the store's cache.

    ``announce(line)`` is called with the model choice (:func:`core.embeddings.describe_choice`)
    before any work; ``progress(done, total)`` as in :func:`core.embeddings.embed`.
    Returns ``{"choice": describe_choice line, "model_id", "texts": rows, "unique": distinct texts,
    "cached": distinct texts already cached, "encoded": distinct texts encoded now, "dim"}``.
    """
    store.get_dataset(dataset)
    samples = store.samples(dataset, include_excluded=False)
    texts = combine_fields(samples, TEXT_FIELDS) if samples.height else []
    choice = describe_choice(texts, model)
    if announce is not None:
        announce(choice)
    emb_model = resolve_model(texts, model)
    unique = list(dict.fromkeys(texts))
    hashes = [text_hash(t) for t in unique]
    cached = len(store.cached_embeddings(emb_model.model_id, hashes)) if hashes else 0
    vectors = embed(texts, model=emb_model, store=store, progress=progress, executor=remote_executor())
    return {"choice": choice, "model_id": emb_model.model_id, "texts": len(texts), "unique": len(unique),
            "cached": cached, "encoded": len(unique) - cached, "dim": int(vectors.shape[1])}


# --------------------------------------------------------------------------- selection


def _check_k(k: Any, available: int, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"budget k: expected an integer >= 1, got {k!r}")
    if available == 0:
        raise ValueError(f"the pool is empty: no {what}")
    if k > available:
        raise ValueError(f"budget k = {k} is larger than the pool: only {available} {what}")
    return int(k)


def _pick_distances(x: np.ndarray, picks: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Distance of each pick to its nearest earlier center (``centers`` first, then earlier picks)."""
    d = np.full(picks.size, np.inf)
    if centers.size:
        d = cdist(x[picks], x[centers]).min(axis=1)
    if picks.size > 1:
        pp = cdist(x[picks], x[picks])
        pp[np.triu_indices(picks.size)] = np.inf  # only earlier picks count
        d = np.minimum(d, pp.min(axis=1))
    return d


def _uncertainty_reason(method: str, score: float) -> str:
    """An uncertainty pick's reason in the measure's own terms: the real margin between the two most
    probable labels (the score is 1 − margin), the top probability for least confidence (the score is
    1 − it), the entropy as it is."""
    if method == "margin":
        return f"margin {1.0 - score:.2f} between the top two labels"
    if method == "least_confidence":
        return f"least confidence: top probability {1.0 - score:.2f}"
    return f"{_METHOD_NAMES[method]} {score:.2f}"


def select(
    pool: Pool,
    strategy: str,
    k: int,
    embeddings: np.ndarray | None = None,
    *,
    method: str = "margin",
    pool_factor: float = 10,
    round_index: int = 0,
    n_rounds: int = 10,
    seed: int = 0,
    store: Any = None,
) -> pl.DataFrame:
    """Run ``strategy`` on the pool's candidates and return the k picks, best first.

    strategy: a key of :data:`STRATEGIES`. Uncertainty strategies and the hybrids use the rows that
    have a prediction; k-center, k-means and the hybrids need ``embeddings`` (pool order, one row per
    pool sample; only the rows of :func:`embedding_rows` are read, the others may be NaN).
    k-center treats the pool rows excluded as reviewed / queued as centers already chosen.
    method: uncertainty measure of the hybrids; pool_factor: the hybrid's pool of
    ``pool_factor * k`` most uncertain rows; round_index (0-based) / n_rounds: the adaptive schedule.

    Returns :data:`PICK_COLUMNS`: rank (1 = first pick), sample_id, score (higher = pick earlier:
    the uncertainty for uncertainty strategies and hybrids, the distance to the nearest earlier
    center for k-center, the share of candidates nearest to the pick for k-means), reason (e.g.
    ``margin 0.07 between the top two labels``, ``k-center pick #3 (distance 0.41)``), sample_text (the embedded text),
    predicted, confidence, batch, round, the text fields and row (index into the pool); a text-less pool
    reads the texts of its picks only from ``store``.
    ValueError for an unknown strategy, a missing input, an empty pool or k larger than the pool.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy in NEEDS_PROBS and not pool.has_predictions:
        raise ValueError(f"{STRATEGIES[strategy]} needs model predictions, and the pool has none")
    rows = pool.candidate_rows(strategy)
    what = "samples with a prediction" if strategy in NEEDS_PROBS else "candidate samples"
    if pool.n and rows.size == 0 and pool.n_candidates() == 0:
        what = "candidate samples left after excluding reviewed / queued ones"
    k = _check_k(k, int(rows.size), what)
    x = None
    if strategy in NEEDS_EMBEDDINGS:
        if embeddings is None:
            raise ValueError(f"{STRATEGIES[strategy]} needs text embeddings of the pool")
        x = np.asarray(embeddings)
        if x.ndim != 2 or x.shape[0] != pool.n:
            raise ValueError(f"embeddings: expected {pool.n} rows (one per pool sample), got shape {x.shape}")
        need = embedding_rows(pool, strategy, k, method=method, pool_factor=pool_factor, round_index=round_index,
                              n_rounds=n_rounds)
        if need.size and not np.isfinite(x[need]).all():
            raise ValueError(f"{STRATEGIES[strategy]} needs the embeddings of {need.size:,} pool samples, "
                             "and some are missing")

    scores: np.ndarray
    reasons: list[str]
    if strategy in UNCERTAINTY:
        sub = pool.probs[rows]
        local = selection.select_uncertain(sub, k, strategy)
        picks = rows[local]
        scores = selection.uncertainty_scores(sub, strategy)[local]
        reasons = [_uncertainty_reason(strategy, s) for s in scores]
    elif strategy == "k_center":
        centers = np.setdiff1d(np.arange(pool.n), rows)  # excluded rows already count as covered
        picks = selection.k_center_greedy(x, k, already_selected=centers)
        scores = _pick_distances(x, picks, centers)
        reasons = []
        for i, d in enumerate(scores):
            if math.isinf(d):
                others = np.setdiff1d(rows, picks[:1])
                d = float(cdist(x[picks[:1]], x[others]).max()) if others.size else 0.0
                scores[i] = d
                reasons.append(f"k-center pick #1 (nearest the pool mean, covers radius {d:.2f})")
            else:
                reasons.append(f"k-center pick #{i + 1} (distance {d:.2f})")
    elif strategy == "k_means":
        picks = rows[selection.kmeans_diverse(x[rows], k, seed=seed)]  # the candidates only are clustered
        owner = cdist(x[rows], x[picks]).argmin(axis=1)
        counts = np.bincount(owner, minlength=k)
        scores = counts / rows.size
        reasons = [f"k-means cluster #{i + 1}: represents {c} sample{'s' if c != 1 else ''}"
                   for i, c in enumerate(counts)]
    else:  # hybrid, adaptive_hybrid: k-center among the most uncertain rows with a prediction
        sub_p = pool.probs[rows]
        if strategy == "hybrid":
            pf = float(pool_factor)
            head = ""
        else:
            pf = selection.adaptive_pool_factor(round_index, n_rounds)
            head = f"round {round_index + 1}/{n_rounds}, "
        # selection.hybrid on the candidates, reading only the embeddings of its uncertain pool
        local_pool = selection.hybrid_pool(sub_p, k, method, pf)
        local = local_pool[selection.k_center_greedy(x[rows[local_pool]], k)]
        picks = rows[local]
        scores = selection.uncertainty_scores(sub_p, method)[local]
        size = int(local_pool.size)
        dist = _pick_distances(x, picks, np.empty(0, dtype=np.int64))
        reasons = []
        for i, (s, d) in enumerate(zip(scores, dist)):
            where = f"k-center pick #{i + 1} among the {size} most uncertain"
            where += f" (distance {d:.2f})" if math.isfinite(d) else " (first center)"
            reasons.append(f"{_uncertainty_reason(method, s)} · {head}{where}")

    sel = pool.frame[picks.tolist()]
    text = pool_texts(pool, picks, store)
    return pl.DataFrame({
        "rank": np.arange(1, picks.size + 1, dtype=np.int64),
        "sample_id": sel["sample_id"],
        "score": np.asarray(scores, dtype=np.float64),
        "reason": pl.Series(reasons, dtype=pl.Utf8),
        "sample_text": text["text_joined"],
        "predicted": sel["predicted"],
        "confidence": sel["confidence"],
        "batch": sel["batch"],
        "round": sel["round"],
        **{f: text[f] for f in TEXT_FIELDS},
        "row": picks.astype(np.int64),
    })


# --------------------------------------------------------------------------- the map


def map_rows(pool: Pool, picks: pl.DataFrame | None = None, max_points: int = 5000, seed: int = 0,
             only: np.ndarray | None = None) -> np.ndarray:
    """Pool rows to draw on the map: all of them (or those where the boolean mask ``only`` is True),
    and when more than ``max_points`` every pick plus a uniform (seeded) sample of the others up to
    ``max_points`` rows. Sorted int64 row indices."""
    if max_points < 1:
        raise ValueError(f"max_points: expected an integer >= 1, got {max_points!r}")
    allowed = np.ones(pool.n, dtype=bool) if only is None else np.asarray(only, dtype=bool).copy()
    if allowed.shape != (pool.n,):
        raise ValueError(f"only: expected a boolean mask of {pool.n} rows, got shape {allowed.shape}")
    picked = np.zeros(pool.n, dtype=bool)
    if picks is not None and picks.height:
        picked[picks["row"].to_numpy()] = True
    allowed |= picked
    if int(allowed.sum()) <= max_points:
        return np.flatnonzero(allowed).astype(np.int64)
    rest = np.flatnonzero(allowed & ~picked)
    n_rest = max(0, max_points - int(picked.sum()))
    chosen = np.random.default_rng(seed).choice(rest, min(n_rest, rest.size), replace=False)
    return np.sort(np.concatenate([np.flatnonzero(picked), chosen])).astype(np.int64)


def project_2d(vectors: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(n, 2) projection of ``vectors``: ``"pca"`` (scikit-learn PCA) or ``"tsne"`` (t-SNE, PCA init,
    perplexity min(30, (n - 1) / 3)). Fewer than two rows or one dimension: zeros are padded."""
    if method not in ("pca", "tsne"):
        raise ValueError(f"projection: expected 'pca' or 'tsne', got {method!r}")
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"vectors: expected a 2-D array, got shape {v.shape}")
    xy = np.zeros((v.shape[0], 2))
    if v.shape[0] < 2 or v.shape[1] < 1:
        return xy
    if method == "pca" or v.shape[0] < 4:
        from sklearn.decomposition import PCA

        n_comp = min(2, v.shape[1], v.shape[0])
        xy[:, :n_comp] = PCA(n_components=n_comp, random_state=seed).fit_transform(v)
        return xy
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(1, (v.shape[0] - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(v)


def map_frame(pool: Pool, picks: pl.DataFrame | None, xy: np.ndarray, rows: np.ndarray,
              store: Any = None) -> pl.DataFrame:
    """The map's points from 2-D coordinates ``xy`` of pool ``rows``: columns x, y, sample_id,
    predicted ('(no prediction)' when missing), picked, rank (null unless picked), text (first 120
    characters; a text-less pool reads those of ``rows`` only from ``store``)."""
    rows = np.asarray(rows, dtype=np.int64)
    xy = np.asarray(xy, dtype=np.float64)
    if xy.shape != (rows.size, 2):
        raise ValueError(f"xy: expected shape ({rows.size}, 2), got {xy.shape}")
    rank = np.zeros(pool.n, dtype=np.int64)
    if picks is not None and picks.height:
        rank[picks["row"].to_numpy()] = picks["rank"].to_numpy()
    f = pool.frame[rows.tolist()]
    r = rank[rows]
    return pl.DataFrame({
        "x": xy[:, 0], "y": xy[:, 1],
        "sample_id": f["sample_id"],
        "predicted": f["predicted"].fill_null("(no prediction)"),
        "picked": r > 0,
        "rank": pl.Series([int(i) if i > 0 else None for i in r], dtype=pl.Int64),
        "text": pool_texts(pool, rows, store)["text_joined"].str.slice(0, 120),
    })


def pool_map(pool: Pool, picks: pl.DataFrame | None, vectors: np.ndarray, method: str = "pca",
             max_points: int = 5000, seed: int = 0, store: Any = None) -> pl.DataFrame:
    """2-D map of the pool (:func:`map_frame` columns): ``vectors`` has one row per pool sample
    (embeddings, or the probability rows); pools larger than ``max_points`` are subsampled by
    :func:`map_rows` (every pick kept); projected by :func:`project_2d` with ``method``."""
    v = np.asarray(vectors)
    if v.ndim != 2 or v.shape[0] != pool.n:
        raise ValueError(f"vectors: expected {pool.n} rows (one per pool sample), got shape {v.shape}")
    rows = map_rows(pool, picks, max_points, seed)
    return map_frame(pool, picks, project_2d(v[rows], method, seed), rows, store)


# --------------------------------------------------------------------------- export and queue


def _export_frame(picks: pl.DataFrame, strategy: str | None) -> pl.DataFrame:
    cols = [c for c in ("rank", "sample_id", *TEXT_FIELDS, "batch", "round", "predicted", "confidence",
                        "score", "reason") if c in picks.columns]
    out = picks.select(cols)
    if strategy is not None:
        out = out.with_columns(pl.lit(strategy).alias("strategy"))
    return out


def picks_csv(picks: pl.DataFrame, strategy: str | None = None) -> bytes:
    """The picks as UTF-8 CSV (with BOM, so spreadsheet tools read Chinese text): rank, sample_id,
    instruction, input, output, text, batch, round, predicted, confidence, score, reason[, strategy]."""
    return ("\ufeff" + _export_frame(picks, strategy).write_csv()).encode("utf-8")


def picks_jsonl(picks: pl.DataFrame, strategy: str | None = None) -> bytes:
    """The picks as JSONL for an annotation tool: one object per pick with ``id`` (the sample_id),
    the non-empty text fields, batch, round, predicted, confidence, score, reason[, strategy]."""
    lines = []
    for row in _export_frame(picks, strategy).iter_rows(named=True):
        obj: dict[str, Any] = {"id": row.pop("sample_id")}
        for key, value in row.items():
            if key in TEXT_FIELDS and value is None:
                continue
            obj[key] = value
        lines.append(json.dumps(obj, ensure_ascii=False))
    return ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")


def queue_picks(store: Any, dataset: str, picks: pl.DataFrame, actor: str,
                detail: dict[str, Any] | None = None) -> int:
    """Add the picks to the review queue (reason ``active_learning``, priority = score; audited by the
    store as ``queue.add``). Samples already open for that reason are skipped. Returns how many were added."""
    if picks.height == 0:
        return 0
    scores = [float(s) if math.isfinite(s) else 0.0 for s in picks["score"].to_list()]
    return store.enqueue(dataset, picks["sample_id"].to_list(), QUEUE_REASON, actor, priority=scores,
                         detail=detail)
