"""The gold-label rule: which label of a sample counts as true (the latest review, else a gold question, else the
annotators' consensus by the dataset's method), and the gold (honeypot) questions that score annotators.

Metrics, export, the quality checks, the queue and the pages all take gold labels from here:
:func:`dataset_gold` for a dataset (its ``consensus_method`` setting), :func:`gold_labels` for the
plain rule (latest review, else strict majority) over frames.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from core import vocab
from core.agreement import ratings_matrix
from core.consensus import METHODS, ConsensusResult, annotator_accuracy_on_gold, consensus
from core.validation import no_nulls, require_frame, unify_columns

if TYPE_CHECKING:
    from core.store import Store

__all__ = [
    "CONSENSUS_SETTING", "DEFAULT_CONSENSUS_METHOD", "DEFAULT_GOLD_THRESHOLD", "GOLD_SOURCES", "GOLD_THRESHOLD_SETTING",
    "Consensus", "GoldLabels", "annotator_gold_scores", "consensus_gold", "consensus_method", "consensus_of",
    "dataset_gold", "gold_from", "gold_labels", "gold_threshold", "latest_probabilities", "sample_gold",
    "score_gold_questions", "set_consensus_method", "set_gold_threshold", "share_interval",
]

_NAN = float("nan")


def gold_labels(annotations: pl.DataFrame, reviews: pl.DataFrame) -> pl.DataFrame:
    """Gold label per sample: the latest review, else a strict-plurality vote of annotators.

    ``annotations``: columns sample_id, annotator, label (one vote per distinct annotator
    and label on a sample; rows with a null label are ignored).
    ``reviews``: columns sample_id, version, new_label; the review with the highest
    version of a sample is its latest (rows with a null new_label are ignored).

    Rules, per sample:
      1. a review exists -> gold is the latest review's new_label, source 'review'
         (it beats any vote);
      2. else the label with strictly the most votes -> source 'majority'
         (a single annotator is a majority of one);
      3. else (a tie for the most votes) -> no gold: the sample is ABSENT from the result.

    Returns a DataFrame sample_id, gold_label, source ('review' | 'majority'), one row
    per sample that has a gold label, sorted by sample_id; never a null gold_label.
    Vectorised (group_by); no per-sample Python work.

    Raises ValueError for missing columns, null sample_id or version, label or id columns
    of incompatible types, or two latest reviews of a sample (same version) that disagree.
    """
    require_frame(annotations, "annotations", ("sample_id", "annotator", "label"))
    require_frame(reviews, "reviews", ("sample_id", "version", "new_label"))
    ann = annotations.select("sample_id", "annotator", "label")
    rev = reviews.select("sample_id", "version", "new_label")
    no_nulls(ann, "annotations", "sample_id")
    no_nulls(rev, "reviews", "sample_id")
    no_nulls(rev, "reviews", "version")
    ann, rev = unify_columns(ann, "sample_id", rev, "sample_id", "annotations", "reviews")
    ann, rev = unify_columns(ann, "label", rev, "new_label", "annotations", "reviews")

    latest = (
        rev.lazy()
        .filter(pl.col("new_label").is_not_null())
        .filter(pl.col("version") == pl.col("version").max().over("sample_id"))
        .group_by("sample_id")
        .agg(
            pl.col("new_label").first().alias("gold_label"),
            pl.col("new_label").n_unique().alias("n_distinct"),
        )
        .collect()
    )
    conflicts = latest.filter(pl.col("n_distinct") > 1)
    if conflicts.height:
        example = conflicts["sample_id"].sort().head(5).to_list()
        raise ValueError(
            f"reviews has {conflicts.height} sample(s) whose latest version holds different "
            f"new_label values, e.g. sample_id {example}"
        )
    from_review = latest.select("sample_id", "gold_label", source=pl.lit("review"))

    majority = (
        ann.lazy()
        .filter(pl.col("label").is_not_null())
        .join(from_review.lazy().select("sample_id"), on="sample_id", how="anti")
        .group_by("sample_id", "label")
        .agg(pl.col("annotator").n_unique().alias("votes"))
        .filter(pl.col("votes") == pl.col("votes").max().over("sample_id"))
        .filter(pl.len().over("sample_id") == 1)
        .select("sample_id", pl.col("label").alias("gold_label"), source=pl.lit("majority"))
        .collect()
    )
    return pl.concat([from_review, majority]).sort("sample_id")


# ---------------------------------------------------------------------------------------------
# Gold labels with a chosen consensus method
# ---------------------------------------------------------------------------------------------
#: Where a gold label comes from, in order of precedence: the latest review, a gold (honeypot)
#: question's fixed label, then the dataset's consensus method over the annotators' labels.
GOLD_SOURCES: tuple[str, ...] = ("review", "gold_question", *METHODS)
#: Dataset setting naming the consensus method of gold labels (leads set it; audited).
CONSENSUS_SETTING = "consensus_method"
#: Majority vote until a lead chooses otherwise: it is what gold labels always were.
DEFAULT_CONSENSUS_METHOD = "majority"
#: Dataset setting: gold-question accuracy below which an annotator is flagged.
GOLD_THRESHOLD_SETTING = "gold_threshold"
#: The labeling guideline's retrain band (accuracy below 0.6: retrain).
DEFAULT_GOLD_THRESHOLD = vocab.AGREEMENT_RETRAIN
#: Resamples of the percentile intervals of shares (accuracy, agreement); 200 keep a page fast.
N_BOOT = 200

_MEMO: OrderedDict[tuple, GoldLabels] = OrderedDict()  # dataset_gold's last results, by data version
_MEMO_LOCK = threading.Lock()
_MEMO_SIZE = 4

_GOLD_SCHEMA = {"sample_id": pl.Utf8, "gold_label": pl.Utf8, "source": pl.Utf8, "confidence": pl.Float64}


@dataclass(frozen=True)
class Consensus:
    """The consensus label of every rated sample under one method (what gold labels are made of).

    frame: one row per sample with at least one rating, by sample_id: ``sample_id``,
      ``consensus_label`` (null only for a majority-vote tie), ``confidence`` (0–1: the winner's share
      of the votes for majority, the posterior probability for Dawid-Skene and CROWDLAB), ``n_ratings``
      and ``source`` (the method that labeled the row: ``majority``, ``dawid_skene`` or ``crowdlab``).
    method: the method asked for. note: None, or why some or all rows come from another method
      (CROWDLAB without probabilities, degenerate data). fit: the :class:`core.consensus.ConsensusResult`
      over all rated samples (None for majority); crowdlab_fit: CROWDLAB's, over the samples with
      probabilities (their ids in crowdlab_ids), when it ran.
    """

    frame: pl.DataFrame
    method: str
    note: str | None = None
    fit: ConsensusResult | None = None
    crowdlab_fit: ConsensusResult | None = None
    crowdlab_ids: list = field(default_factory=list)


@dataclass(frozen=True)
class GoldLabels:
    """Gold labels of a dataset under its consensus method.

    labels: sample_id, gold_label, source (one of :data:`GOLD_SOURCES`), confidence (1.0 for a
      review or a gold question: a person decided), one row per sample that has a gold label, by
      sample_id. consensus: the :class:`Consensus` behind the unreviewed rows. method: the method
      used. note: as ``Consensus.note``. prob_round: the prediction round whose probabilities CROWDLAB
      used (None otherwise).
    """

    labels: pl.DataFrame
    consensus: Consensus
    method: str
    note: str | None = None
    prob_round: int | None = None


def _check_method(method: Any) -> str:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    return method


def consensus_method(settings: Mapping[str, Any] | None) -> str:
    """The dataset's ``consensus_method`` setting, else majority (an unknown value too)."""
    value = (settings or {}).get(CONSENSUS_SETTING)
    return value if value in METHODS else DEFAULT_CONSENSUS_METHOD


def set_consensus_method(store: Store, dataset: str, method: str, actor: str) -> str:
    """Choose the consensus method of ``dataset``'s gold labels (leads only, audited); returns it."""
    store.set_dataset_setting(dataset, CONSENSUS_SETTING, _check_method(method), actor)
    return method


def gold_threshold(settings: Mapping[str, Any] | None) -> float:
    """The dataset's ``gold_threshold`` setting (0–1), else 0.6."""
    try:
        value = float((settings or {}).get(GOLD_THRESHOLD_SETTING))
    except (TypeError, ValueError):
        return DEFAULT_GOLD_THRESHOLD
    return value if 0.0 <= value <= 1.0 else DEFAULT_GOLD_THRESHOLD


def set_gold_threshold(store: Store, dataset: str, value: float, actor: str) -> float:
    """Set the gold-question accuracy below which an annotator is flagged (0–1; leads only, audited)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the gold threshold must be a number between 0 and 1, got {value!r}") from None
    if not 0.0 <= v <= 1.0:  # also refuses NaN
        raise ValueError(f"the gold threshold must be between 0 and 1, got {value!r}")
    store.set_dataset_setting(dataset, GOLD_THRESHOLD_SETTING, v, actor)
    return v


def _votes(annotations: pl.DataFrame) -> pl.DataFrame:
    require_frame(annotations, "annotations", ("sample_id", "annotator", "label"))
    ann = annotations.select("sample_id", "annotator", "label")
    no_nulls(ann, "annotations", "sample_id")
    return ann.filter(pl.col("label").is_not_null()).unique(maintain_order=True)


def _majority_frame(ann: pl.DataFrame) -> pl.DataFrame:
    """Strict plurality (the rule of :func:`gold_labels`), with the winner's share of the votes."""
    votes = ann.group_by("sample_id", "label").agg(pl.col("annotator").n_unique().alias("votes"))
    return (
        votes.group_by("sample_id")
        .agg(
            pl.col("label").sort_by("votes", descending=True).first().alias("top"),
            pl.col("votes").max().alias("top_votes"),
            (pl.col("votes") == pl.col("votes").max()).sum().alias("n_top"),
            pl.col("votes").sum().alias("total"),
        )
        .join(ann.group_by("sample_id").agg(pl.col("annotator").n_unique().alias("n_ratings")), on="sample_id")
        .select(
            "sample_id",
            pl.when(pl.col("n_top") == 1).then(pl.col("top")).alias("consensus_label"),
            (pl.col("top_votes") / pl.col("total")).alias("confidence"),
            pl.col("n_ratings").cast(pl.Int64),
            source=pl.lit("majority"),
        )
        .sort("sample_id")
    )


def _class_order(labels: Sequence[Any] | None, ann: pl.DataFrame) -> list:
    """The dataset's labels, then any other label the annotators used (sorted): the order of every
    per-class axis and of CROWDLAB's probability columns."""
    order = list(labels) if labels is not None else []
    extra = sorted(set(ann["label"].unique().to_list()) - set(order), key=str)
    return order + extra


def _probability_rows(probabilities: pl.DataFrame | None, sample_ids: list[str], n_classes: int) -> np.ndarray:
    """(n, K) float matrix of the samples' probabilities (NaN rows where a sample has none). A vector
    shorter than the class list (labels added after the model ran) gives 0 to the missing classes."""
    probs = np.full((len(sample_ids), n_classes), np.nan)
    if probabilities is None or probabilities.height == 0:
        return probs
    require_frame(probabilities, "probabilities", ("sample_id", "probs"))
    given = (probabilities.select(pl.col("sample_id").cast(pl.Utf8), "probs")
             .filter(pl.col("probs").is_not_null() & (pl.col("probs").list.len() > 0))
             .unique("sample_id", keep="last"))
    position = {s: i for i, s in enumerate(sample_ids)}
    for sid, vector in given.iter_rows():
        row = position.get(sid)
        if row is None:
            continue
        values = np.asarray(vector, dtype=float)[:n_classes]
        probs[row] = 0.0
        probs[row, : values.size] = values
    return probs


def _result_frame(sample_ids: list[str], result: ConsensusResult, n_ratings: np.ndarray, source: str) -> pl.DataFrame:
    return pl.DataFrame(
        {"sample_id": sample_ids, "consensus_label": [None if v is None else str(v) for v in result.labels],
         "confidence": np.asarray(result.confidence, dtype=float), "n_ratings": n_ratings.astype(np.int64),
         "source": [source] * len(sample_ids)},
        schema={"sample_id": pl.Utf8, "consensus_label": pl.Utf8, "confidence": pl.Float64, "n_ratings": pl.Int64,
                "source": pl.Utf8},
    )


_NAMES = {"majority": "the majority vote", "dawid_skene": "Dawid-Skene", "crowdlab": "CROWDLAB"}


def consensus_of(annotations: pl.DataFrame, method: str = "majority", probabilities: pl.DataFrame | None = None,
                 labels: Sequence[Any] | None = None) -> Consensus:
    """The consensus label and confidence of every rated sample by ``method`` (see :class:`Consensus`).

    annotations: sample_id, annotator, label (null labels are not ratings; one label per annotator
    and sample). method: ``majority`` — strict plurality as :func:`gold_labels` (a tie has no label);
    ``dawid_skene`` — :func:`core.consensus.consensus`'s EM, which weighs each annotator by their
    estimated confusion matrix; ``crowdlab`` — cleanlab's CROWDLAB, which also weighs a model's
    probabilities. probabilities: crowdlab only: sample_id, probs (a list per sample, in the order of
    ``labels``). labels: the class list (the dataset's labels; others the annotators used follow).

    CROWDLAB runs on the samples that have probabilities; the others keep their Dawid-Skene label
    (``source`` says which, ``note`` how many). When the data cannot support a model (one annotator,
    one label, no sample rated twice) the majority vote is used and ``note`` says why.
    """
    _check_method(method)
    ann = _votes(annotations)
    if method == "majority" or ann.height == 0:
        return Consensus(_majority_frame(ann), method)
    id_dtype = ann.schema["sample_id"]
    ann = ann.with_columns(pl.col("sample_id").cast(pl.Utf8), pl.col("label").cast(pl.Utf8))
    matrix, annotators, sample_ids = ratings_matrix(ann)
    n_ratings = (matrix != None).sum(axis=1)  # noqa: E711 - elementwise on an object array
    order = [str(v) for v in _class_order(labels, ann)]
    ds = consensus(matrix, "dawid_skene", annotators=annotators, labels=order)
    if ds.reason is not None:
        note = f"{_NAMES[method]} cannot run: {ds.reason}; gold labels use the majority vote."
        return Consensus(_majority_frame(ann).cast({"sample_id": id_dtype}), method, note, ds)
    frame = _result_frame(sample_ids, ds, n_ratings, "dawid_skene")
    if method == "dawid_skene":
        return Consensus(frame.cast({"sample_id": id_dtype}), method, None, ds)

    probs = _probability_rows(probabilities, sample_ids, len(order))
    has = np.isfinite(probs).all(axis=1)
    if not has.any():
        note = ("CROWDLAB needs a model round with predicted probabilities for the samples, and this dataset has "
                "none: gold labels use Dawid-Skene. Import predictions with probabilities to use CROWDLAB.")
        return Consensus(frame.cast({"sample_id": id_dtype}), method, note, ds)
    crowd_ids = [s for s, h in zip(sample_ids, has) if h]
    try:
        cl = consensus(matrix[has], "crowdlab", annotators=annotators, pred_probs=probs[has], labels=order)
    except ValueError as exc:  # probabilities a user imported (not summing to 1, negative)
        return Consensus(frame.cast({"sample_id": id_dtype}), method,
                         f"CROWDLAB cannot run ({exc}): gold labels use Dawid-Skene.", ds)
    if cl.reason is not None:
        return Consensus(frame.cast({"sample_id": id_dtype}), method,
                         f"CROWDLAB cannot run on the {len(crowd_ids):,} samples with probabilities: {cl.reason}; "
                         "gold labels use Dawid-Skene.", ds)
    crowd = _result_frame(crowd_ids, cl, n_ratings[has], "crowdlab")
    frame = pl.concat([frame.filter(~pl.Series(has)), crowd]).sort("sample_id")
    note = None if has.all() else (
        f"CROWDLAB labels the {int(has.sum()):,} samples with model probabilities; the other "
        f"{int((~has).sum()):,} have none and keep their Dawid-Skene label.")
    return Consensus(frame.cast({"sample_id": id_dtype}), method, note, ds, cl, crowd_ids)


def gold_from(consensus_: Consensus, reviews: pl.DataFrame, gold_questions: pl.DataFrame | None = None) -> pl.DataFrame:
    """Gold labels from a :class:`Consensus`: the latest review, else a gold question's label, else the
    consensus label (see :class:`GoldLabels`). reviews: sample_id, version, new_label (as
    :func:`gold_labels`); gold_questions: sample_id, gold_label (None = none)."""
    frame = consensus_.frame
    no_votes = pl.DataFrame(schema={"sample_id": frame.schema["sample_id"], "annotator": pl.Utf8, "label": pl.Utf8})
    reviewed = gold_labels(no_votes, reviews).with_columns(pl.col("gold_label").cast(pl.Utf8),
                                                           confidence=pl.lit(1.0))
    id_dtype = reviewed.schema["sample_id"]
    parts = [reviewed.select(*_GOLD_SCHEMA)]
    taken = reviewed.select("sample_id")
    if gold_questions is not None and gold_questions.height:
        require_frame(gold_questions, "gold_questions", ("sample_id", "gold_label"))
        fixed = (gold_questions.select(pl.col("sample_id").cast(id_dtype), pl.col("gold_label").cast(pl.Utf8))
                 .join(taken, on="sample_id", how="anti")
                 .with_columns(source=pl.lit("gold_question"), confidence=pl.lit(1.0)))
        parts.append(fixed.select(*_GOLD_SCHEMA))
        taken = pl.concat([taken, fixed.select("sample_id")])
    voted = (frame.filter(pl.col("consensus_label").is_not_null())
             .select(pl.col("sample_id").cast(id_dtype), pl.col("consensus_label").cast(pl.Utf8).alias("gold_label"),
                     "source", "confidence")
             .join(taken, on="sample_id", how="anti"))
    parts.append(voted.select(*_GOLD_SCHEMA))
    schema = dict(_GOLD_SCHEMA, sample_id=id_dtype)
    return pl.concat([p.cast(schema) for p in parts]).sort("sample_id")


def consensus_gold(annotations: pl.DataFrame, reviews: pl.DataFrame, method: str = "majority",
                   probabilities: pl.DataFrame | None = None, labels: Sequence[Any] | None = None,
                   gold_questions: pl.DataFrame | None = None) -> GoldLabels:
    """Gold labels with a chosen consensus method: the pure core of :func:`dataset_gold`.

    The latest review wins, then a gold question's label, then ``method``'s consensus label
    (:func:`consensus_of`); every row carries ``source`` and ``confidence``. With ``method="majority"``
    and no gold questions the labels and sources are exactly :func:`gold_labels`'s.
    """
    found = consensus_of(annotations, method, probabilities, labels)
    return GoldLabels(gold_from(found, reviews, gold_questions), found, method, found.note)


def latest_probabilities(store: Store, dataset: str) -> tuple[pl.DataFrame | None, int | None]:
    """The model probabilities of the latest prediction round that has them: (sample_id, probs), round;
    (None, None) when no round has probabilities."""
    def with_probs(preds: pl.DataFrame) -> pl.DataFrame:
        return preds.filter(pl.col("probs").is_not_null() & (pl.col("probs").list.len() > 0))

    latest = store.prediction_confidences(dataset)
    if latest.height == 0:
        return None, None
    preds = with_probs(store.predictions(dataset, int(latest["round"][0])))
    if preds.height == 0:  # the latest round has none: read every round (rare, and slower)
        preds = with_probs(store.predictions(dataset))
        if preds.height == 0:
            return None, None
        preds = preds.filter(pl.col("round") == preds["round"].max())
    return preds.select("sample_id", "probs"), int(preds["round"][0])


def dataset_gold(store: Store, dataset: str, method: str | None = None) -> GoldLabels:
    """The gold labels of ``dataset``: latest review, else gold question, else the consensus of the
    dataset's ``consensus_method`` setting (default majority; ``method`` overrides it, e.g. to compare).

    CROWDLAB reads the probabilities of the latest prediction round that has them; ``note`` says when
    it cannot run and what was used instead. The last few results are kept in this process by the
    dataset's data version (its latest audit id: every write is audited), so the review desk, the
    queue rules and the pages do not refit the same data.
    """
    info = store.get_dataset(dataset)
    method = consensus_method(info.settings) if method is None else _check_method(method)
    key = None
    if not store.in_memory:  # every in-memory store has the path ":memory:": not a key
        log = store.audit_log(dataset=dataset, limit=1)
        key = (str(store.path), dataset, method, int(log["audit_id"][0]) if log.height else 0)
        with _MEMO_LOCK:
            if key in _MEMO:
                _MEMO.move_to_end(key)
                return _MEMO[key]
    probabilities, prob_round = latest_probabilities(store, dataset) if method == "crowdlab" else (None, None)
    found = consensus_of(store.annotations(dataset).select("sample_id", "annotator", "label"), method,
                         probabilities, info.labels)
    labels = gold_from(found, store.latest_reviews(dataset), store.gold_questions(dataset))
    used_round = prob_round if found.crowdlab_fit is not None else None
    result = GoldLabels(labels, found, method, found.note, used_round)
    if key is not None:
        with _MEMO_LOCK:
            _MEMO[key] = result
            while len(_MEMO) > _MEMO_SIZE:
                _MEMO.popitem(last=False)
    return result


def sample_gold(store: Store, dataset: str, sample_ids: Sequence[Any], reviews: pl.DataFrame | None = None) -> pl.DataFrame:
    """:func:`dataset_gold`'s labels of some samples only (sample_id, gold_label, source, confidence).

    Majority vote is per sample, so it reads only those samples' votes; the other methods fit the
    whole dataset (an annotator's weight comes from all their labels). ``reviews`` (sample_id, version,
    new_label) saves a read when the caller has the samples' latest reviews.
    """
    ids = [str(s) for s in dict.fromkeys(sample_ids)]
    method = consensus_method(store.get_dataset(dataset).settings)
    wanted = pl.DataFrame({"sample_id": ids}, schema={"sample_id": pl.Utf8})
    questions = store.gold_questions(dataset).join(wanted, on="sample_id", how="semi")
    if method != "majority":
        return dataset_gold(store, dataset).labels.join(wanted, on="sample_id", how="semi")
    reviews = store.latest_reviews(dataset) if reviews is None else reviews
    return consensus_gold(store.annotations_of(dataset, ids), reviews.join(wanted, on="sample_id", how="semi"),
                          "majority", gold_questions=questions).labels


# ---------------------------------------------------------------------------------------------
# Gold (honeypot) questions: each annotator scored against the samples whose truth is known
# ---------------------------------------------------------------------------------------------
def share_interval(hits: int, n: int, n_boot: int = N_BOOT, seed: int | None = 0,
                   level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of a share ``hits / n`` over ``n_boot`` resamples of the n items.

    The number of hits in a resample of n items drawn with replacement is Binomial(n, hits/n), so
    the resamples are drawn as binomials: the same distribution as resampling the items, in O(n_boot).
    (NaN, NaN) when n is 0.
    """
    if n <= 0:
        return _NAN, _NAN
    rng = np.random.default_rng(seed)
    shares = rng.binomial(int(n), hits / n, size=int(n_boot)) / n
    tail = (1.0 - level) / 2
    low, high = np.quantile(shares, [tail, 1.0 - tail])
    return float(low), float(high)


def score_gold_questions(annotations: pl.DataFrame, gold_questions: pl.DataFrame,
                         threshold: float = DEFAULT_GOLD_THRESHOLD, n_boot: int = N_BOOT,
                         seed: int | None = 0) -> pl.DataFrame:
    """Each annotator scored against the gold questions they labeled.

    annotations: sample_id, annotator, label. gold_questions: sample_id, gold_label.
    Returns one row per annotator (sorted): ``annotator``, ``n_gold`` (gold questions they labeled),
    ``accuracy`` (share equal to the gold label) with ``accuracy_low`` / ``accuracy_high`` (95 %
    percentile bootstrap over ``n_boot`` resamples of their gold items), ``kappa`` (Cohen's kappa
    against the gold labels) with ``kappa_low`` / ``kappa_high`` (the same resampling,
    :func:`core.consensus.annotator_accuracy_on_gold`), ``flagged`` (accuracy below ``threshold``;
    null without gold items) and ``reason`` (why kappa is undefined, else null).
    """
    ann = _votes(annotations).with_columns(pl.col("sample_id").cast(pl.Utf8), pl.col("label").cast(pl.Utf8))
    require_frame(gold_questions, "gold_questions", ("sample_id", "gold_label"))
    schema = {"annotator": pl.Utf8, "n_gold": pl.Int64, "accuracy": pl.Float64, "accuracy_low": pl.Float64,
              "accuracy_high": pl.Float64, "kappa": pl.Float64, "kappa_low": pl.Float64, "kappa_high": pl.Float64,
              "flagged": pl.Boolean, "reason": pl.Utf8}
    if ann.height == 0:
        return pl.DataFrame(schema=schema)
    matrix, annotators, sample_ids = ratings_matrix(ann)
    truth = dict(gold_questions.select(pl.col("sample_id").cast(pl.Utf8), pl.col("gold_label").cast(pl.Utf8)).iter_rows())
    gold = [truth.get(s) for s in sample_ids]
    scores = annotator_accuracy_on_gold(matrix, gold, annotators, n_boot=n_boot, seed=seed)
    n_hits = [round(a * n) if n else 0 for a, n in zip(scores["accuracy"].fill_nan(0.0), scores["n_gold"])]
    bounds = [share_interval(h, n, n_boot, seed) for h, n in zip(n_hits, scores["n_gold"])]
    return scores.with_columns(
        pl.Series("accuracy_low", [b[0] for b in bounds], dtype=pl.Float64),
        pl.Series("accuracy_high", [b[1] for b in bounds], dtype=pl.Float64),
        pl.when(pl.col("n_gold") > 0).then(pl.col("accuracy") < float(threshold)).alias("flagged"),
    ).select(list(schema)).sort("annotator")


def annotator_gold_scores(store: Store, dataset: str, n_boot: int = N_BOOT) -> pl.DataFrame:
    """:func:`score_gold_questions` of ``dataset``'s annotators against its gold questions, flagged below
    the dataset's ``gold_threshold`` (default 0.6)."""
    info = store.get_dataset(dataset)
    return score_gold_questions(store.annotations(dataset), store.gold_questions(dataset),
                                gold_threshold(info.settings), n_boot=n_boot)
