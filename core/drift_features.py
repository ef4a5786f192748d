"""Drift features of two selections (a dataset's batch or round), assembled from store frames.

Pure functions: they take the frames the store returns (``Store.samples``, ``Store.annotations``,
``Store.selection_predictions``) and build the inputs of :func:`core.drift.drift_report`.

Row unit: **one row per sample** of the selection, so every feature of a side lives in one frame
and one ``drift_report`` call compares them all. Per-annotation information becomes per-sample
columns instead of a second row unit:

=====================  ===========  ===============================================================
column                 kind         meaning
=====================  ===========  ===============================================================
``<field>_chars``      numeric      characters of each text field (instruction, input, output, text),
``<field>_tokens``     numeric      token-ish length: whitespace words, one token per CJK character
                                    (both from :func:`core.drift.text_features`); only fields with at
                                    least one value in the selection
``label``              categorical  the sample's majority annotated label; a tie (two or more labels
                                    with the top count) or no annotation is missing (null), so ties
                                    show up in ``ref_missing`` / ``cur_missing``
``predicted_label``    categorical  the model's prediction in the chosen prediction round (see below)
``pred_confidence``    numeric      the confidence of that prediction
``label_by_<name>``    categorical  the label annotator ``<name>`` gave (null where they did not
                                    annotate): one column per annotator, the annotator's label mix
=====================  ===========  ===============================================================

Prediction round: the store keeps one prediction per sample and model round. For a comparison
both sides use the latest prediction round that has predictions on *both* sides (the same model
on both, so only the data differs); when the sides share no round, each side uses its own latest
round, and a side without predictions has no predicted-label features (reported as unavailable).

Key columns ``sample_id``, ``batch``, ``round`` are carried along but never compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from core.drift import TEXT_FIELDS, drift_report, text_features
from core.quality import combine_fields

__all__ = [
    "ANNOTATOR_PREFIX",
    "CONFIDENCE",
    "KEY_COLUMNS",
    "LABEL",
    "PREDICTED",
    "Comparison",
    "Selection",
    "SideData",
    "align_features",
    "annotator_labels",
    "choose_prediction_rounds",
    "compare_features",
    "compare_sides",
    "default_pair",
    "embedding_rows",
    "embedding_texts",
    "label_shares",
    "latest_prediction_round",
    "majority_labels",
    "order_batches",
    "psi_across",
    "selection_features",
    "selection_options",
    "side_values",
]

LABEL = "label"
PREDICTED = "predicted_label"
CONFIDENCE = "pred_confidence"
ANNOTATOR_PREFIX = "label_by_"
KEY_COLUMNS = ("sample_id", "batch", "round")

_ANN_SCHEMA = {"sample_id": pl.String, "annotator": pl.String, "label": pl.String}
_PRED_SCHEMA = {"sample_id": pl.String, "pred_round": pl.Int64, "predicted": pl.String, "confidence": pl.Float64}


# ---------------------------------------------------------------------------------------------
# Selections
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    """One side of a comparison: a batch (``kind="batch"``, value str) or a sample round (int)."""

    kind: str
    value: str | int

    def __post_init__(self) -> None:
        if self.kind not in ("batch", "round"):
            raise ValueError(f"a selection is a 'batch' or a 'round', got {self.kind!r}")

    @property
    def label(self) -> str:
        """Human-readable name, e.g. ``batch r1`` or ``round 3``."""
        return f"{self.kind} {self.value}"

    def store_args(self) -> dict[str, str | int | None]:
        """Keyword arguments of ``Store.samples`` / ``annotations`` / ``selection_predictions``."""
        if self.kind == "batch":
            return {"batch": str(self.value), "round": None}
        return {"batch": None, "round": int(self.value)}


def selection_options(batches: Sequence[str], rounds: Sequence[int]) -> list[Selection]:
    """Every selectable side: the batches in the given order, then the rounds in ascending order."""
    return [Selection("batch", str(b)) for b in batches] + [Selection("round", int(r)) for r in sorted(rounds)]


def order_batches(batches: Sequence[str], batch_rounds: pl.DataFrame | None = None) -> list[str]:
    """Batches in time order: by their earliest sample round, then by name.

    batch_rounds: any frame with ``batch`` and ``round`` columns (e.g. the samples of every
    round); batches it does not place (no round) come last, by name. So the demo's ``r1``..``r4``
    (rounds 1-4) come before ``current`` (round 5), which a plain name sort would put first.
    """
    first: dict[str, int] = {}
    if batch_rounds is not None and batch_rounds.height:
        mins = (batch_rounds.select(pl.col("batch").cast(pl.String), pl.col("round").cast(pl.Int64))
                .drop_nulls().group_by("batch").agg(pl.col("round").min()))
        first = dict(mins.iter_rows())
    big = float("inf")
    return sorted((str(b) for b in batches), key=lambda b: (first.get(b, big), b))


def default_pair(batches: Sequence[str], rounds: Sequence[int]) -> tuple[Selection, Selection] | None:
    """Default (reference, current): the earliest vs the latest batch, else the earliest vs latest round.

    ``batches`` are taken in the given order (time order: see :func:`order_batches`); ``rounds``
    are sorted. None when there are fewer than two batches and fewer than two rounds.
    """
    if len(batches) >= 2:
        return Selection("batch", str(batches[0])), Selection("batch", str(batches[-1]))
    ordered = sorted(rounds)
    if len(ordered) >= 2:
        return Selection("round", int(ordered[0])), Selection("round", int(ordered[-1]))
    return None


@dataclass(frozen=True)
class SideData:
    """The store frames of one side: samples, long-form annotations and predictions (all rounds)."""

    samples: pl.DataFrame
    annotations: pl.DataFrame
    predictions: pl.DataFrame

    @property
    def n_samples(self) -> int:
        return self.samples.height


# ---------------------------------------------------------------------------------------------
# Per-sample label columns
# ---------------------------------------------------------------------------------------------
def _annotations(annotations: pl.DataFrame | None) -> pl.DataFrame:
    if annotations is None or annotations.height == 0:
        return pl.DataFrame(schema=_ANN_SCHEMA)
    missing = [c for c in _ANN_SCHEMA if c not in annotations.columns]
    if missing:
        raise ValueError(f"annotations: missing column(s) {', '.join(missing)}")
    return annotations.select(pl.col(c).cast(t) for c, t in _ANN_SCHEMA.items()).drop_nulls()


def majority_labels(annotations: pl.DataFrame) -> pl.DataFrame:
    """The majority annotated label of each annotated sample.

    annotations: long form with ``sample_id``, ``annotator``, ``label`` (null labels ignored).
    Returns ``sample_id, label`` (String), one row per sample with at least one annotation,
    sorted by sample_id; ``label`` is null when two or more labels share the top count (a tie).
    """
    ann = _annotations(annotations)
    counts = ann.group_by("sample_id", "label").len()
    top = counts.filter(pl.col("len") == pl.col("len").max().over("sample_id"))
    return (
        top.group_by("sample_id")
        .agg(pl.when(pl.len() == 1).then(pl.col("label").first()).alias("label"))
        .sort("sample_id")
        .with_columns(pl.col("label").cast(pl.String))
    )


def annotator_labels(annotations: pl.DataFrame) -> pl.DataFrame:
    """One column ``label_by_<annotator>`` (String) per annotator, one row per annotated sample.

    Annotators in sorted order; null where the annotator did not label the sample. With several
    rows for one (sample, annotator) the first is kept.
    """
    ann = _annotations(annotations).unique(["sample_id", "annotator"], keep="first", maintain_order=True)
    ids = ann.select("sample_id").unique().sort("sample_id")
    for name in sorted(ann["annotator"].unique().to_list()):
        col = ann.filter(pl.col("annotator") == name).select("sample_id", pl.col("label").alias(ANNOTATOR_PREFIX + name))
        ids = ids.join(col, on="sample_id", how="left")
    return ids


# ---------------------------------------------------------------------------------------------
# Predictions
# ---------------------------------------------------------------------------------------------
def _predictions(predictions: pl.DataFrame | None) -> pl.DataFrame:
    if predictions is None or predictions.height == 0:
        return pl.DataFrame(schema=_PRED_SCHEMA)
    frame = predictions
    if "pred_round" not in frame.columns and "round" in frame.columns:
        frame = frame.rename({"round": "pred_round"})
    if "confidence" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("confidence"))
    missing = [c for c in _PRED_SCHEMA if c not in frame.columns]
    if missing:
        raise ValueError(f"predictions: missing column(s) {', '.join(missing)}")
    return frame.select(pl.col(c).cast(t) for c, t in _PRED_SCHEMA.items())


def latest_prediction_round(predictions: pl.DataFrame | None) -> int | None:
    """The highest ``pred_round`` among the predictions, or None when there are none."""
    preds = _predictions(predictions)
    return None if preds.height == 0 else int(preds["pred_round"].max())


def choose_prediction_rounds(ref_predictions: pl.DataFrame | None,
                             cur_predictions: pl.DataFrame | None) -> tuple[int | None, int | None]:
    """Prediction round of each side: the latest round present on both sides, for both.

    When the sides share no prediction round, each side gets its own latest round (None for a
    side without predictions). Returns ``(reference_round, current_round)``.
    """
    ref, cur = _predictions(ref_predictions), _predictions(cur_predictions)
    common = set(ref["pred_round"].to_list()) & set(cur["pred_round"].to_list())
    if common:
        r = int(max(common))
        return r, r
    return latest_prediction_round(ref), latest_prediction_round(cur)


# ---------------------------------------------------------------------------------------------
# Feature frames
# ---------------------------------------------------------------------------------------------
def selection_features(samples: pl.DataFrame, annotations: pl.DataFrame | None = None,
                       predictions: pl.DataFrame | None = None, *, pred_round: int | None = None) -> pl.DataFrame:
    """The per-sample feature frame of one selection (see the module docstring for the columns).

    samples: ``Store.samples`` frame (sample_id, the text fields, optionally batch and round).
    annotations: long form (sample_id, annotator, label); rows of samples not in ``samples`` are
    ignored. predictions: sample_id, pred_round (or round), predicted, confidence, any rounds.
    pred_round: the prediction round to use (None = the latest round in ``predictions``).
    Returns one row per sample, in ``samples`` order: key columns, ``<field>_chars`` /
    ``<field>_tokens`` for text fields with at least one value, ``label``, ``predicted_label``,
    ``pred_confidence`` (always present, null when there is no prediction), ``label_by_<name>``.
    """
    if not isinstance(samples, pl.DataFrame):
        raise ValueError(f"samples must be a polars DataFrame, got {type(samples).__name__}")
    if "sample_id" not in samples.columns:
        raise ValueError("samples must have a 'sample_id' column")
    samples = samples.with_columns(pl.col("sample_id").cast(pl.String))
    keys = [c for c in KEY_COLUMNS if c in samples.columns]
    fields = [f for f in TEXT_FIELDS if f in samples.columns and samples[f].null_count() < samples.height]
    out = samples.select(keys)
    if fields:
        text = text_features(samples.select("sample_id", *fields)).drop("sample_id")
        out = pl.concat([out, text], how="horizontal")
    elif not any(f in samples.columns for f in TEXT_FIELDS):
        # Lengths computed beforehand (:func:`text_features` page by page, so a million texts are never held at
        # once): the same columns, for the fields with at least one value in this selection.
        pre = [c for f in TEXT_FIELDS if f"{f}_chars" in samples.columns
               and samples[f"{f}_chars"].null_count() < samples.height for c in (f"{f}_chars", f"{f}_tokens")]
        if pre:
            out = pl.concat([out, samples.select(pre)], how="horizontal")

    ann = _annotations(annotations)
    out = out.join(majority_labels(ann), on="sample_id", how="left", maintain_order="left")

    preds = _predictions(predictions)
    if pred_round is None:
        pred_round = latest_prediction_round(preds)
    chosen = (preds.filter(pl.col("pred_round") == pred_round if pred_round is not None else pl.lit(False))
              .unique("sample_id", keep="first", maintain_order=True)
              .select("sample_id", pl.col("predicted").alias(PREDICTED), pl.col("confidence").alias(CONFIDENCE)))
    out = out.join(chosen, on="sample_id", how="left", maintain_order="left")
    return out.join(annotator_labels(ann), on="sample_id", how="left", maintain_order="left")


def _feature_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in KEY_COLUMNS]


def align_features(reference: pl.DataFrame, current: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Give both feature frames the same feature columns, in one order, with the same dtypes.

    A column present on one side only (an annotator who labelled only one side, a text field
    empty on one side) is added to the other as all-null of the same dtype. Order: the
    reference's columns, then the current's extra ones; key columns first as they are.
    """
    names = _feature_columns(reference) + [c for c in _feature_columns(current) if c not in reference.columns]

    def fill(frame: pl.DataFrame, other: pl.DataFrame) -> pl.DataFrame:
        adds = [pl.lit(None, dtype=other.schema[c]).alias(c) for c in names if c not in frame.columns]
        frame = frame.with_columns(adds) if adds else frame
        casts = [pl.col(c).cast(other.schema[c]) for c in names
                 if frame.schema[c] == pl.Null and other.schema[c] != pl.Null]
        frame = frame.with_columns(casts) if casts else frame
        return frame.select([c for c in KEY_COLUMNS if c in frame.columns] + names)

    return fill(reference, current), fill(current, reference)


def compare_features(reference: pl.DataFrame, current: pl.DataFrame, *, bins: int = 10) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Drift of every feature that has values on both sides.

    reference, current: frames of :func:`selection_features` (aligned here with
    :func:`align_features`). Returns ``(report, unavailable)``: ``report`` is
    :func:`core.drift.drift_report` over the comparable features, sorted by PSI descending
    (ties by feature name); ``unavailable`` has ``feature, reason`` for the features without a
    single value on one or both sides (they cannot be compared and are not guessed).
    Raises ValueError when a side has no rows.
    """
    for name, frame in (("reference", reference), ("current", current)):
        if frame.height == 0:
            raise ValueError(f"the {name} selection has no samples: nothing to compare")
    ref, cur = align_features(reference, current)
    usable, skipped = [], []
    for col in _feature_columns(ref):
        empty = [side for side, frame in (("reference", ref), ("current", cur))
                 if frame[col].null_count() == frame.height]
        if not empty:
            usable.append(col)
        else:
            where = " and ".join(empty) if len(empty) == 1 else "either side"
            skipped.append({"feature": col, "reason": f"no values in {where}"})
    unavailable = pl.DataFrame(skipped, schema={"feature": pl.String, "reason": pl.String})
    if not usable:
        raise ValueError("no feature has values on both sides: nothing to compare")
    report = drift_report(ref, cur, usable, bins=bins)
    return report.sort(["psi", "feature"], descending=[True, False]), unavailable


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare_sides`: report, unavailable features and both feature frames."""

    report: pl.DataFrame
    unavailable: pl.DataFrame
    reference: pl.DataFrame
    current: pl.DataFrame
    ref_pred_round: int | None
    cur_pred_round: int | None


def compare_sides(reference: SideData, current: SideData, *, bins: int = 10) -> Comparison:
    """Build both feature frames (prediction rounds by :func:`choose_prediction_rounds`) and compare them."""
    ref_round, cur_round = choose_prediction_rounds(reference.predictions, current.predictions)
    ref = selection_features(reference.samples, reference.annotations, reference.predictions, pred_round=ref_round)
    cur = selection_features(current.samples, current.annotations, current.predictions, pred_round=cur_round)
    report, unavailable = compare_features(ref, cur, bins=bins)
    return Comparison(report, unavailable, ref, cur, ref_round, cur_round)


def psi_across(reference: SideData, others: Mapping[str, SideData], *, bins: int = 10) -> pl.DataFrame:
    """PSI of each feature for each selection in ``others`` against ``reference``.

    others: {selection name: side}, in the order to plot (e.g. every round). Sides without
    samples are skipped; features without values on a side are absent for that selection.
    Returns ``selection, order, feature, psi, status, flagged`` (order = position in ``others``).
    """
    schema = {"selection": pl.String, "order": pl.Int64, "feature": pl.String, "psi": pl.Float64,
              "status": pl.String, "flagged": pl.Boolean}
    parts = []
    for i, (name, side) in enumerate(others.items()):
        if side.n_samples == 0 or reference.n_samples == 0:
            continue
        try:
            report = compare_sides(reference, side, bins=bins).report
        except ValueError:
            continue  # nothing comparable for this selection
        parts.append(report.select(pl.lit(name, dtype=pl.String).alias("selection"),
                                   pl.lit(i, dtype=pl.Int64).alias("order"),
                                   "feature", "psi", "status", "flagged"))
    return pl.concat(parts).sort("order", "feature") if parts else pl.DataFrame(schema=schema)


# ---------------------------------------------------------------------------------------------
# Chart data
# ---------------------------------------------------------------------------------------------
def label_shares(reference: pl.DataFrame, current: pl.DataFrame, column: str = LABEL,
                 names: tuple[str, str] = ("reference", "current")) -> pl.DataFrame:
    """Category shares of ``column`` on both sides, for side-by-side bars.

    Returns ``category, side, count, share``: every category seen on either side appears for
    both sides (count 0 where absent), sorted by category then side (reference first). Shares
    are over each side's non-missing values (0 when a side has none).
    """
    rows = []
    for side, frame in zip(names, (reference, current)):
        if column in frame.columns:
            vc = frame.select(pl.col(column).cast(pl.String).alias("category")).drop_nulls()
            vc = vc.group_by("category").len(name="count")
        else:
            vc = pl.DataFrame(schema={"category": pl.String, "count": pl.UInt32})
        rows.append(vc.with_columns(pl.lit(side).alias("side")))
    both = pl.concat(rows).with_columns(pl.col("count").cast(pl.Int64))
    cats = both.select("category").unique()
    grid = cats.join(pl.DataFrame({"side": list(names), "_o": [0, 1]}), how="cross")
    out = grid.join(both, on=["category", "side"], how="left").with_columns(pl.col("count").fill_null(0))
    total = pl.col("count").sum().over("side")
    out = out.with_columns(pl.when(total > 0).then(pl.col("count") / total).otherwise(0.0).alias("share"))
    return out.sort("category", "_o").select("category", "side", "count", "share")


def side_values(reference: pl.DataFrame, current: pl.DataFrame, column: str,
                names: tuple[str, str] = ("reference", "current")) -> pl.DataFrame:
    """Long frame ``side, value`` of one feature on both sides (missing values dropped), for histograms."""
    parts = []
    for side, frame in zip(names, (reference, current)):
        if column in frame.columns:
            parts.append(frame.select(pl.lit(side).alias("side"), pl.col(column).alias("value")).drop_nulls())
    if not parts:
        return pl.DataFrame(schema={"side": pl.String, "value": pl.Null})
    out = pl.concat(parts, how="vertical_relaxed")
    if out["value"].dtype.is_float():
        out = out.filter(out["value"].is_finite())
    return out


def embedding_texts(samples: pl.DataFrame, max_texts: int = 2000, seed: int = 0) -> list[str]:
    """The texts to embed for one side: the text fields of each sample joined with newlines.

    Fields instruction, input, output, text (missing ones and nulls skipped, see
    :func:`core.quality.combine_fields`). Sides larger than ``max_texts`` are subsampled
    uniformly without replacement (``numpy.random.default_rng(seed)``, original order kept),
    since embedding every text of a large batch takes minutes and PCA/AUC need far fewer.
    """
    if samples.height == 0:
        embedding_rows(0, max_texts, seed)  # checks max_texts
        return []
    texts = combine_fields(samples, TEXT_FIELDS)
    keep = embedding_rows(len(texts), max_texts, seed)
    return texts if keep is None else [texts[i] for i in keep]


def embedding_rows(n: int, max_texts: int, seed: int = 0) -> np.ndarray | None:
    """The rows of a side of ``n`` samples that :func:`embedding_texts` embeds, ascending (None: all of them), so
    a caller holding only the side's ids can fetch just those texts."""
    if max_texts < 1:
        raise ValueError(f"max_texts must be >= 1, got {max_texts!r}")
    if n <= max_texts:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, max_texts, replace=False))
