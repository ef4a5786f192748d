"""Iteration metrics: per-round scikit-learn metrics, labeled volume, plateau signal, imported rounds."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from core.validation import no_nulls, require_frame, unify_columns
from core.validation import normalise_labels as _normalise
from core.validation import unify as _unify

__all__ = [
    "METRIC_NAMES",
    "classification_metrics",
        "labeled_volume",
    "merge_imported_rounds",
    "per_class_f1_matrix",
    "plateau",
    "round_metrics",
]

#: Summary metrics per round, in display order (also the metric names accepted on import).
METRIC_NAMES: tuple[str, ...] = ("accuracy", "macro_f1", "micro_f1", "weighted_f1")

_ROUND_TABLE_SCHEMA: dict[str, pl.DataType] = {
    "round": pl.Int64(),
    "n_eval": pl.Int64(),
    **{m: pl.Float64() for m in METRIC_NAMES},
}
_MERGED_COLUMNS: tuple[str, ...] = ("round", "n_eval", "n_labeled", *METRIC_NAMES, "source")
_IMPORTED_COLUMNS: tuple[str, ...] = ("round", "n_labeled", "metric", "value")
# Gains closer than this to the plateau threshold count as equal to it, so that decimal
# inputs such as 0.100 -> 0.105 behave as written despite binary floating point.
_PLATEAU_EPS = 1e-12


# --------------------------------------------------------------------------- helpers


def _as_label_series(values: Any, name: str) -> pl.Series:
    """Turn a flat sequence of labels into a null-free polars Series, or raise ValueError."""
    if isinstance(values, pl.DataFrame) or isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be a flat sequence of labels, got {type(values).__name__}")
    if isinstance(values, pl.Series):
        s = values
    else:
        try:
            s = pl.Series(name, values)
        except Exception as exc:  # polars raises several exception types here
            raise ValueError(f"{name} must be a flat sequence of labels of one type ({exc})") from None
    s = _normalise(s, name)
    n_null = s.null_count()
    if n_null:
        raise ValueError(f"{name} has {n_null} missing (null) label(s)")
    if s.dtype.is_float() and s.is_nan().any():
        raise ValueError(f"{name} has NaN label(s)")
    return s.rename("label")


def _checked_labels(labels: Any) -> pl.Series:
    """The ``labels`` argument as a Series, or ValueError when empty or with duplicates."""
    lab = _as_label_series(labels, "labels")
    if len(lab) == 0:
        raise ValueError("labels is empty; pass None to use the labels found in the data")
    if lab.n_unique() != len(lab):
        dupes = lab.filter(lab.is_duplicated()).unique().sort().head(5).to_list()
        raise ValueError(f"labels has duplicates, e.g. {dupes}")
    return lab


def _encode(s: pl.Series, labels: pl.Series, name: str) -> pl.Series:
    """Int32 codes 0..k-1 of ``s`` in the order of ``labels``; ValueError for values outside ``labels``."""
    codes = s.replace_strict(
        labels, pl.Series(np.arange(len(labels), dtype=np.int32)), default=None, return_dtype=pl.Int32
    )
    if codes.null_count():
        unknown = s.filter(codes.is_null()).unique().sort().head(5).to_list()
        raise ValueError(f"{name} has label(s) not listed in labels, e.g. {unknown}")
    return codes


def _sorted_union(*series: pl.Series) -> pl.Series:
    """Sorted distinct values over several series of one dtype."""
    return pl.concat([s.rename("label").unique() for s in series]).unique().sort()


def _metrics_from_codes(ct: np.ndarray, cp: np.ndarray, labels: pl.Series) -> dict:
    """scikit-learn metrics for integer codes ``ct``/``cp`` indexing ``labels``.

    The confusion matrix is computed by scikit-learn over all samples; the other metrics
    are then computed by scikit-learn over its non-zero cells, each weighted by its count
    (``sample_weight``). That input is the same multiset of (true, predicted) pairs, so
    the results equal those on the raw arrays, at a cost independent of the sample count.
    """
    idx = np.arange(len(labels))
    with warnings.catch_warnings():
        if len(idx) == 1:  # a 1x1 matrix is right here: scikit-learn's shape hint does not apply
            warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        cm = confusion_matrix(ct, cp, labels=idx).astype(np.int64)
    true_idx, pred_idx = np.nonzero(cm)
    weight = cm[true_idx, pred_idx].astype(np.float64)
    kw = {"labels": idx, "zero_division": 0, "sample_weight": weight}
    precision, recall, f1, support = precision_recall_fscore_support(true_idx, pred_idx, average=None, **kw)
    per_class = pl.DataFrame(
        {
            "label": labels,
            "precision": np.asarray(precision, dtype=np.float64),
            "recall": np.asarray(recall, dtype=np.float64),
            "f1": np.asarray(f1, dtype=np.float64),
            "support": np.rint(np.asarray(support, dtype=np.float64)).astype(np.int64),
        }
    )
    return {
        "accuracy": float(accuracy_score(true_idx, pred_idx, sample_weight=weight)),
        "macro_f1": float(f1_score(true_idx, pred_idx, average="macro", **kw)),
        "micro_f1": float(f1_score(true_idx, pred_idx, average="micro", **kw)),
        "weighted_f1": float(f1_score(true_idx, pred_idx, average="weighted", **kw)),
        "per_class": per_class,
        "confusion": cm,
        "labels": labels.to_list(),
        "n": int(len(ct)),
    }


# --------------------------------------------------------------------------- public API


def classification_metrics(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None) -> dict:
    """Classification metrics of ``y_pred`` against ``y_true``, all computed by scikit-learn.

    ``y_true`` and ``y_pred`` are flat sequences (list, numpy array, polars Series) of
    text, integer, float or boolean labels of the same length, without nulls.
    ``labels`` fixes the label order; None means the sorted union of the labels in
    ``y_true`` and ``y_pred`` (scikit-learn's default set). Every label in ``y_true`` and
    ``y_pred`` must be in ``labels``; labels listed but absent from both get precision,
    recall and F1 of 0 and count in the macro average.

    Returns a dict with:
      accuracy, macro_f1, micro_f1, weighted_f1 (floats);
      per_class: polars DataFrame label, precision, recall, f1, support (in ``labels`` order);
      confusion: numpy int64 array, rows = true label, columns = predicted label, in ``labels`` order;
      labels: the label order used (list); n: number of samples.
    Divisions by zero (a class never predicted, or never true) give 0 (``zero_division=0``).

    Raises ValueError for empty input, different lengths, nulls/NaN, mixed label types,
    duplicate or empty ``labels``, or labels outside ``labels``.
    """
    t = _as_label_series(y_true, "y_true")
    p = _as_label_series(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"y_true and y_pred must have the same length, got {len(t)} and {len(p)}")
    if len(t) == 0:
        raise ValueError("y_true and y_pred are empty; at least one sample is needed")
    if labels is None:
        t, p = _unify([("y_true", t), ("y_pred", p)])
        lab = _sorted_union(t, p)
    else:
        lab = _checked_labels(labels)
        t, p, lab = _unify([("y_true", t), ("y_pred", p), ("labels", lab)])
    return _metrics_from_codes(_encode(t, lab, "y_true").to_numpy(), _encode(p, lab, "y_pred").to_numpy(), lab)


def round_metrics(
    predictions: pl.DataFrame, gold: pl.DataFrame, labels: Sequence[Any] | None = None
) -> tuple[pl.DataFrame, dict[int, dict]]:
    """Metrics of each round's predictions against the gold labels.

    ``predictions``: columns sample_id, round (integer), predicted (rows with a null
    predicted are not evaluated). ``gold``: columns sample_id (unique), gold_label (e.g.
    from ``gold_labels``; rows with a null gold_label are ignored). A round is evaluated
    on its predictions whose sample has a gold label; rounds with no such prediction are
    left out. Two predictions of one round for the same gold sample raise ValueError.

    ``labels``: a fixed label order used for every round (every gold label and predicted
    value must be in it, evaluated or not); None means each round uses the sorted union
    of its own gold and predicted labels, so its macro-F1 equals scikit-learn's default
    for that round.

    Returns (table, per_round): table has one row per evaluated round, sorted by round,
    with columns round, n_eval, accuracy, macro_f1, micro_f1, weighted_f1; per_round maps
    round (int) to the full ``classification_metrics`` dict (per_class, confusion, ...).

    Raises ValueError for missing columns, null sample_id or round, non-integer rounds,
    duplicate (sample_id, round) predictions of gold samples, duplicate gold sample_ids,
    or label problems as in ``classification_metrics``.
    """
    require_frame(predictions, "predictions", ("sample_id", "round", "predicted"))
    require_frame(gold, "gold", ("sample_id", "gold_label"))
    pred = predictions.select("sample_id", "round", "predicted")
    gld = gold.select("sample_id", "gold_label").filter(pl.col("gold_label").is_not_null())
    no_nulls(pred, "predictions", "sample_id")
    no_nulls(pred, "predictions", "round")
    no_nulls(gld, "gold", "sample_id")
    if not (pred["round"].dtype.is_integer() or pred["round"].dtype == pl.Null):
        raise ValueError(f"predictions.round must hold integer round numbers, got dtype {pred['round'].dtype}")
    if gld["sample_id"].is_duplicated().any():
        dupes = gld.filter(pl.col("sample_id").is_duplicated())["sample_id"].unique().sort().head(5).to_list()
        raise ValueError(f"gold has more than one row for sample_id(s) {dupes}")
    pred, gld = unify_columns(pred, "sample_id", gld, "sample_id", "predictions", "gold")
    pred = pred.filter(pl.col("predicted").is_not_null())
    y_true, y_pred = _unify([("gold.gold_label", gld["gold_label"]), ("predictions.predicted", pred["predicted"])])
    if labels is None:
        lab = _sorted_union(y_true, y_pred)
    else:
        lab = _checked_labels(labels)
        y_true, y_pred, lab = _unify([("gold.gold_label", y_true), ("predictions.predicted", y_pred), ("labels", lab)])
    # Encode before joining so that the join and the per-round split only move integers.
    pred_codes = _encode(y_pred, lab, "predictions.predicted").alias("_p")
    gold_codes = _encode(y_true, lab, "gold.gold_label").alias("_g")
    joined = pred.select("sample_id", pl.col("round").cast(pl.Int64), pred_codes).join(
        gld.select("sample_id", gold_codes).with_row_index("_gi"), on="sample_id", how="inner"
    )
    rounds = joined["round"].to_numpy()
    order = np.argsort(rounds, kind="stable")
    rounds = rounds[order]
    gold_row = joined["_gi"].to_numpy()[order]
    ct = joined["_g"].to_numpy()[order]
    cp = joined["_p"].to_numpy()[order]
    bounds = np.flatnonzero(np.diff(rounds)) + 1
    starts = np.concatenate(([0], bounds)).astype(np.int64) if len(rounds) else np.zeros(0, dtype=np.int64)
    ends = np.concatenate((bounds, [len(rounds)])).astype(np.int64) if len(rounds) else np.zeros(0, dtype=np.int64)

    per_round: dict[int, dict] = {}
    for start, end in zip(starts, ends):
        r = int(rounds[start])
        if np.unique(gold_row[start:end]).size != end - start:
            raise ValueError(f"predictions has more than one row for the same (sample_id, round) in round {r}")
        t, p = ct[start:end], cp[start:end]
        if labels is None:
            present = np.flatnonzero(np.bincount(np.concatenate((t, p)), minlength=len(lab)))
            remap = np.full(len(lab), -1, dtype=np.int32)
            remap[present] = np.arange(len(present), dtype=np.int32)
            per_round[r] = _metrics_from_codes(remap[t], remap[p], lab.gather(present))
        else:
            per_round[r] = _metrics_from_codes(t, p, lab)

    table = pl.DataFrame(
        {
            "round": list(per_round),
            "n_eval": [m["n"] for m in per_round.values()],
            **{name: [m[name] for m in per_round.values()] for name in METRIC_NAMES},
        },
        schema=_ROUND_TABLE_SCHEMA,
    )
    return table, per_round


def labeled_volume(samples: pl.DataFrame, gold: pl.DataFrame) -> pl.DataFrame:
    """Labeled volume per labeling round: new and cumulative samples with a gold label.

    ``samples``: columns sample_id (unique), round (the labeling round the sample was
    labeled in; null = not yet labeled / unknown, such samples are not counted).
    ``gold``: columns sample_id, gold_label (rows with a null gold_label do not count).

    Returns round, new_labeled (samples of that round with a gold label), cumulative_labeled
    (running total over rounds in ascending order); one row per non-null round present
    in ``samples`` (new_labeled may be 0), sorted by round; Int64 columns.

    Raises ValueError for missing columns, null or duplicate sample_ids in ``samples``,
    or non-integer rounds.
    """
    require_frame(samples, "samples", ("sample_id", "round"))
    require_frame(gold, "gold", ("sample_id", "gold_label"))
    smp = samples.select("sample_id", "round")
    no_nulls(smp, "samples", "sample_id")
    if not (smp["round"].dtype.is_integer() or smp["round"].dtype == pl.Null):
        raise ValueError(f"samples.round must hold integer round numbers, got dtype {smp['round'].dtype}")
    if smp["sample_id"].is_duplicated().any():
        dupes = smp.filter(pl.col("sample_id").is_duplicated())["sample_id"].unique().sort().head(5).to_list()
        raise ValueError(f"samples has more than one row for sample_id(s) {dupes}")
    gold_ids = gold.filter(pl.col("gold_label").is_not_null()).select("sample_id").unique()
    smp, gold_ids = unify_columns(smp, "sample_id", gold_ids, "sample_id", "samples", "gold")
    return (
        smp.filter(pl.col("round").is_not_null())
        .join(gold_ids.with_columns(pl.lit(1, dtype=pl.Int64).alias("_g")), on="sample_id", how="left")
        .group_by(pl.col("round").cast(pl.Int64))
        .agg(pl.col("_g").fill_null(0).sum().cast(pl.Int64).alias("new_labeled"))
        .sort("round")
        .with_columns(pl.col("new_labeled").cum_sum().alias("cumulative_labeled"))
    )


def plateau(f1_by_round: Any, threshold: float = 0.005, patience: int = 2) -> bool:
    """Stop signal: True when macro-F1 stopped improving over the last ``patience`` rounds.

    ``f1_by_round``: macro-F1 values in round order (list, numpy array, polars Series) or
    a mapping round -> macro-F1 (taken in ascending round order); values in [0, 1].
    With gains g_i = f1[i] - f1[i-1] between consecutive rounds, returns True exactly when
    there are at least ``patience + 1`` values and each of the last ``patience`` gains is
    strictly below ``threshold`` (a drop counts as below). A gain within 1e-12 of the
    threshold counts as equal to it, i.e. not below. Fewer than ``patience + 1`` values
    -> False. Example (threshold 0.005, patience 2): 0.832, 0.891, 0.947 -> False;
    0.90, 0.903, 0.905 -> True.

    Raises ValueError for NaN/None/infinite or out-of-range values, a negative or non-finite
    threshold, or a patience that is not a positive integer.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    if not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1:
        raise ValueError(f"patience must be a positive integer, got {patience!r}")
    if isinstance(f1_by_round, Mapping):
        try:
            keys = sorted(f1_by_round)
        except TypeError:
            raise ValueError("f1_by_round keys (rounds) must be comparable, e.g. integers") from None
        raw = [f1_by_round[k] for k in keys]
    elif isinstance(f1_by_round, pl.Series):
        raw = f1_by_round.to_list()
    elif isinstance(f1_by_round, (str, bytes)):
        raise ValueError("f1_by_round must be a sequence of numbers, got a string")
    else:
        raw = f1_by_round
    try:
        values = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("f1_by_round must be a sequence of numbers (no missing values)") from None
    if values.ndim != 1:
        raise ValueError(f"f1_by_round must be one-dimensional, got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError("f1_by_round has NaN or missing value(s)")
    if not ((values >= 0) & (values <= 1)).all():
        raise ValueError("f1_by_round values must be between 0 and 1 (fractions, not percentages)")
    if len(values) < patience + 1:
        return False
    gains = np.diff(values)[-patience:]
    return bool((gains < threshold - _PLATEAU_EPS).all())


def _integral(s: pl.Series, name: str, nullable: bool) -> pl.Series:
    """Cast a column to Int64, raising ValueError for text that is not a number or fractional values."""
    if s.dtype.is_float():
        finite = s.drop_nulls()
        if (finite.is_nan() | (finite != finite.floor())).any():
            raise ValueError(f"{name} must hold whole numbers")
    try:
        out = s.cast(pl.Int64, strict=True)
    except Exception:
        raise ValueError(f"{name} must hold whole numbers") from None
    if not nullable and out.null_count():
        raise ValueError(f"{name} has {out.null_count()} missing (null) value(s)")
    return out


def merge_imported_rounds(computed: pl.DataFrame, imported: pl.DataFrame) -> pl.DataFrame:
    """Computed round table plus rounds evaluated elsewhere, marked by a ``source`` column.

    ``computed``: the table of ``round_metrics`` (round, n_eval, accuracy, macro_f1,
    micro_f1, weighted_f1), optionally with an n_labeled column (e.g. cumulative labeled
    volume) that is kept.
    ``imported``: long table round, n_labeled, metric, value; metric is one of
    accuracy, macro_f1, micro_f1, weighted_f1 (case and surrounding spaces ignored);
    value in [0, 1]; at most one row per (round, metric); n_labeled may be null but its
    non-null values must agree within a round. Extra columns are ignored.

    Returns columns round, n_eval, n_labeled, accuracy, macro_f1, micro_f1, weighted_f1,
    source ('computed' | 'imported'); imported rows have a null n_eval and null for metrics
    not imported. When a round is both computed and imported BOTH rows are kept (the
    stakeholder sees the two evaluations side by side). Sorted by round, computed first.

    Raises ValueError with the offending column named when a table is malformed.
    """
    require_frame(computed, "computed", ("round", "n_eval", *METRIC_NAMES))
    require_frame(imported, "imported", _IMPORTED_COLUMNS)

    imp_round = _integral(imported["round"], "imported.round", nullable=False)
    imp_n = _integral(imported["n_labeled"], "imported.n_labeled", nullable=True)
    if (imp_n.drop_nulls() < 0).any():
        raise ValueError("imported.n_labeled must not be negative")
    metric = imported["metric"]
    if metric.dtype not in (pl.String, pl.Null) and not isinstance(metric.dtype, (pl.Categorical, pl.Enum)):
        raise ValueError(f"imported.metric must hold metric names (text), got dtype {metric.dtype}")
    metric = metric.cast(pl.String).str.strip_chars().str.to_lowercase()
    if metric.null_count():
        raise ValueError(f"imported.metric has {metric.null_count()} missing (null) value(s)")
    unknown = sorted(set(metric.unique().to_list()) - set(METRIC_NAMES))
    if unknown:
        raise ValueError(
            f"imported.metric has unknown metric name(s) {unknown}; allowed: {', '.join(METRIC_NAMES)}"
        )
    try:
        value = imported["value"].cast(pl.Float64, strict=True)
    except Exception:
        raise ValueError("imported.value must hold numbers") from None
    if value.null_count() or value.is_nan().any():
        raise ValueError("imported.value has missing (null or NaN) value(s)")
    if ((value < 0) | (value > 1)).any():
        raise ValueError("imported.value must be between 0 and 1 (fractions, not percentages)")

    imp = pl.DataFrame({"round": imp_round, "n_labeled": imp_n, "metric": metric, "value": value})
    dup = imp.filter(pl.struct("round", "metric").is_duplicated())
    if dup.height:
        first = dup.row(0, named=True)
        raise ValueError(
            f"imported has more than one value for round {first['round']}, metric {first['metric']}"
        )
    wide = imp.group_by("round").agg(
        pl.col("n_labeled").drop_nulls().n_unique().alias("_n_distinct"),
        pl.col("n_labeled").drop_nulls().first().alias("n_labeled"),
        *[pl.col("value").filter(pl.col("metric") == m).first().alias(m) for m in METRIC_NAMES],
    )
    inconsistent = wide.filter(pl.col("_n_distinct") > 1)
    if inconsistent.height:
        raise ValueError(
            f"imported.n_labeled differs between rows of round(s) {sorted(inconsistent['round'].to_list())}"
        )

    try:
        comp = computed.select(
            pl.col("round").cast(pl.Int64, strict=True),
            pl.col("n_eval").cast(pl.Int64, strict=True),
            (pl.col("n_labeled") if "n_labeled" in computed.columns else pl.lit(None))
            .cast(pl.Int64, strict=True)
            .alias("n_labeled"),
            *[pl.col(m).cast(pl.Float64, strict=True) for m in METRIC_NAMES],
            source=pl.lit("computed"),
        )
    except Exception:
        raise ValueError(
            "computed must hold integer round, n_eval (and n_labeled) and numeric metric columns"
        ) from None
    wide = wide.select(
        "round",
        pl.lit(None, dtype=pl.Int64).alias("n_eval"),
        pl.col("n_labeled").cast(pl.Int64),
        *[pl.col(m).cast(pl.Float64) for m in METRIC_NAMES],
        source=pl.lit("imported"),
    )
    return pl.concat([comp.select(_MERGED_COLUMNS), wide.select(_MERGED_COLUMNS)]).sort(
        "round", "source", maintain_order=True
    )


def per_class_f1_matrix(per_round: Mapping[int, dict]) -> pl.DataFrame:
    """Per-class F1 across rounds for a heatmap: one row per label, one column per round.

    ``per_round``: round -> ``classification_metrics`` dict (the second value returned by
    ``round_metrics``). Returns a DataFrame with a ``label`` column (sorted union of the
    labels of all rounds) followed by one Float64 column per round in ascending order,
    named ``str(round)``; a label not evaluated in a round is null there (not 0).
    An empty mapping gives a frame with only an empty ``label`` column.

    Raises ValueError when an entry lacks a per_class table with label and f1 columns.
    """
    if not isinstance(per_round, Mapping):
        raise ValueError(f"per_round must be a mapping round -> metrics dict, got {type(per_round).__name__}")
    try:
        rounds = sorted(per_round)
    except TypeError:
        raise ValueError("per_round keys (rounds) must be comparable, e.g. integers") from None
    out: pl.DataFrame | None = None
    for r in rounds:
        entry = per_round[r]
        pc = entry.get("per_class") if isinstance(entry, Mapping) else None
        if not isinstance(pc, pl.DataFrame) or not {"label", "f1"} <= set(pc.columns):
            raise ValueError(f"per_round[{r!r}] must be a metrics dict with a per_class table (label, f1)")
        col = pc.select(pl.col("label"), pl.col("f1").cast(pl.Float64).alias(str(r)))
        if out is None:
            out = col
        else:
            out, col = unify_columns(out, "label", col, "label", "per_round", f"per_round[{r!r}]")
            out = out.join(col, on="label", how="full", coalesce=True)
    if out is None:
        return pl.DataFrame({"label": []})
    return out.sort("label")


# --------------------------------------------------------------------------- Iterations page assembly

__all__ += [
    "ITERATION_COLUMNS", "combine_imported", "confusion_shares", "empty_imported", "iteration_table",
    "parse_imported_csv", "progress_curve", "volume_bars",
]

_IMPORTED_SCHEMA: dict[str, pl.DataType] = {
    "round": pl.Int64(), "n_labeled": pl.Int64(), "metric": pl.String(), "value": pl.Float64(),
}
#: Columns of ``iteration_table``, in display order.
ITERATION_COLUMNS: tuple[str, ...] = (
    "round", "source", "n_labeled", "new_labeled", "n_eval",
    "macro_f1", "macro_f1_change", "accuracy", "weighted_f1", "micro_f1",
)


def empty_imported() -> pl.DataFrame:
    """An empty imported-evaluation table (round, n_labeled, metric, value) with its column types."""
    return pl.DataFrame(schema=_IMPORTED_SCHEMA)


def iteration_table(
    round_table: pl.DataFrame, volume: pl.DataFrame, imported: pl.DataFrame | None = None
) -> pl.DataFrame:
    """The table of rounds: computed rounds with their labeled volume, beside imported rounds.

    ``round_table``: the table of ``round_metrics``. ``volume``: the result of
    ``labeled_volume`` (round, new_labeled, cumulative_labeled). ``imported``: a long table
    round, n_labeled, metric, value as accepted by ``merge_imported_rounds`` (None or empty:
    no imported rounds); it is validated there (ValueError on a malformed table).

    A computed round r gets ``n_labeled`` = the cumulative labeled volume of the latest
    labeling round <= r (what a model of round r could have been trained on; null when no
    labeling round <= r exists) and ``new_labeled`` = the samples labeled in round r itself
    (null when round r is not a labeling round). Imported rows keep their own n_labeled and
    have null n_eval and new_labeled. ``macro_f1_change`` is the change of macro-F1 from the
    previous round of the same source that has a macro-F1 (null for the first).

    Returns the columns of ``ITERATION_COLUMNS``, sorted by round, computed before imported.
    """
    require_frame(volume, "volume", ("round", "new_labeled", "cumulative_labeled"))
    if imported is None:
        imported = empty_imported()
    vol = volume.select(
        pl.col("round").cast(pl.Int64), pl.col("new_labeled").cast(pl.Int64),
        pl.col("cumulative_labeled").cast(pl.Int64),
    ).sort("round")
    merged = merge_imported_rounds(round_table, imported)
    computed = merged.filter(pl.col("source") == "computed").drop("n_labeled").sort("round")
    if computed.height:
        computed = computed.join_asof(
            vol.select("round", pl.col("cumulative_labeled").alias("n_labeled")), on="round", strategy="backward"
        )
    else:
        computed = computed.with_columns(pl.lit(None, dtype=pl.Int64).alias("n_labeled"))
    computed = computed.join(vol.select("round", "new_labeled"), on="round", how="left")
    imported_rows = merged.filter(pl.col("source") == "imported").with_columns(
        pl.lit(None, dtype=pl.Int64).alias("new_labeled")
    )
    both = pl.concat([computed.select(imported_rows.columns), imported_rows]).sort(
        "round", "source", maintain_order=True
    )
    change = (
        both.filter(pl.col("macro_f1").is_not_null())
        .with_columns((pl.col("macro_f1") - pl.col("macro_f1").shift(1)).over("source").alias("macro_f1_change"))
        .select("round", "source", "macro_f1_change")
    )
    return both.join(change, on=["round", "source"], how="left", maintain_order="left").select(ITERATION_COLUMNS)


def progress_curve(table: pl.DataFrame) -> pl.DataFrame:
    """One macro-F1 per round, the series behind the headline and the plateau signal.

    ``table``: the result of ``iteration_table``. For each round with a macro-F1 the computed
    value is taken, else the imported one. Returns round, macro_f1, source, n_labeled and
    change (macro-F1 minus the previous row's; null for the first), sorted by round; rows
    without a macro-F1 are left out. Pass ``macro_f1`` to ``plateau`` for the stop signal.
    """
    require_frame(table, "table", ("round", "source", "n_labeled", "macro_f1"))
    return (
        table.filter(pl.col("macro_f1").is_not_null())
        .with_columns((pl.col("source") != "computed").alias("_rank"))
        .sort("round", "_rank")
        .unique("round", keep="first", maintain_order=True)
        .select(
            pl.col("round").cast(pl.Int64), pl.col("macro_f1").cast(pl.Float64), "source",
            pl.col("n_labeled").cast(pl.Int64),
        )
        .with_columns(pl.col("macro_f1").diff().alias("change"))
    )


def volume_bars(volume: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    """Cumulative labeled volume per round for the bars of the progress chart.

    Every labeling round of ``volume`` (from ``labeled_volume``) with its cumulative_labeled,
    source 'computed'; plus, for rounds that are not labeling rounds, the n_labeled of the
    imported rows of ``table`` (from ``iteration_table``), source 'imported'. Returns round,
    n_labeled, source sorted by round; rows without a number are left out.
    """
    require_frame(volume, "volume", ("round", "cumulative_labeled"))
    require_frame(table, "table", ("round", "source", "n_labeled"))
    own = volume.select(
        pl.col("round").cast(pl.Int64), pl.col("cumulative_labeled").cast(pl.Int64).alias("n_labeled"),
        source=pl.lit("computed"),
    )
    other = (
        table.filter((pl.col("source") == "imported") & pl.col("n_labeled").is_not_null())
        .select(pl.col("round").cast(pl.Int64), pl.col("n_labeled").cast(pl.Int64), source=pl.lit("imported"))
        .join(own.select("round"), on="round", how="anti")
        .unique("round", keep="first", maintain_order=True)
    )
    return pl.concat([own, other]).filter(pl.col("n_labeled").is_not_null()).sort("round")


def _whole_numbers(s: pl.Series, name: str, nullable: bool) -> pl.Series:
    """Text read from a file as Int64 (accepting '3' and '3.0'), or ValueError naming the column."""
    try:
        as_float = s.str.strip_chars().replace("", None).cast(pl.Float64, strict=True)
    except Exception:
        bad = s.filter(s.str.strip_chars().replace("", None).cast(pl.Float64, strict=False).is_null()
                       & s.str.strip_chars().replace("", None).is_not_null()).head(3).to_list()
        raise ValueError(f"{name} must hold whole numbers, got e.g. {bad}") from None
    return _integral(as_float, name, nullable=nullable)


def parse_imported_csv(data: bytes | str) -> pl.DataFrame:
    """Read an evaluation table computed elsewhere from CSV text: round, n_labeled, metric, value.

    The header names are matched ignoring case and surrounding spaces; ``n_labeled`` may be
    missing (then null) and other columns are ignored. A UTF-8 byte-order mark is accepted.
    Metric names are trimmed and lower-cased; round and n_labeled may be written '3' or
    '3.0'. The table is then validated by ``merge_imported_rounds`` (known metric names,
    values in [0, 1], one value per round and metric, one n_labeled per round).

    Returns round (Int64), n_labeled (Int64, nullable), metric (String), value (Float64),
    sorted by round and metric, ready for ``Store.save_imported_round_metrics``.
    Raises ValueError with a plain message for anything malformed (not UTF-8, not CSV,
    missing columns, bad values, no rows).
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValueError(f"the file is not UTF-8 text (byte {exc.start})") from None
    elif isinstance(data, str):
        text = data[1:] if data.startswith("\ufeff") else data
    else:
        raise ValueError(f"expected the CSV file's bytes or text, got {type(data).__name__}")
    if not text.strip():
        raise ValueError("the file is empty")
    import io

    try:
        raw = pl.read_csv(io.StringIO(text), infer_schema=False, truncate_ragged_lines=False)
    except Exception as exc:  # polars raises several exception types for malformed CSV
        raise ValueError(f"cannot read the file as CSV ({str(exc).splitlines()[0]})") from None
    by_name = {c.strip().lower(): c for c in reversed(raw.columns)}
    missing = [c for c in ("round", "metric", "value") if c not in by_name]
    if missing:
        raise ValueError(
            f"the file has no {', '.join(missing)} column(s); expected the header round, n_labeled, metric, value "
            f"(found: {', '.join(raw.columns) or 'nothing'})"
        )
    if raw.height == 0:
        raise ValueError("the file has a header but no rows")

    def col(name: str) -> pl.Series:
        return raw[by_name[name]] if name in by_name else pl.Series(name, [None] * raw.height, dtype=pl.String)

    value = col("value").str.strip_chars().replace("", None)
    try:
        value_f = value.cast(pl.Float64, strict=True)
    except Exception:
        bad = value.filter(value.cast(pl.Float64, strict=False).is_null() & value.is_not_null()).head(3).to_list()
        raise ValueError(f"value must hold numbers, got e.g. {bad}") from None
    table = pl.DataFrame({
        "round": _whole_numbers(col("round"), "round", nullable=False),
        "n_labeled": _whole_numbers(col("n_labeled"), "n_labeled", nullable=True),
        "metric": col("metric").str.strip_chars().str.to_lowercase().replace("", None),
        "value": value_f,
    })
    merge_imported_rounds(pl.DataFrame(schema=_ROUND_TABLE_SCHEMA), table)  # validation; raises ValueError
    return table.sort("round", "metric")


def combine_imported(existing: pl.DataFrame, new: pl.DataFrame, replace: bool = False) -> pl.DataFrame:
    """The imported evaluation rows after an upload of ``new``.

    ``replace=True``: ``new`` alone. Otherwise the rows of ``existing`` whose round does not
    appear in ``new``, plus ``new`` (a round in the upload replaces that whole round, so its
    n_labeled stays consistent). Both tables have columns round, n_labeled, metric, value.
    Returns those columns with their types (round Int64, n_labeled Int64, metric String,
    value Float64), sorted by round and metric.
    """
    require_frame(existing, "existing", _IMPORTED_COLUMNS)
    require_frame(new, "new", _IMPORTED_COLUMNS)

    def typed(df: pl.DataFrame) -> pl.DataFrame:
        return df.select([pl.col(c).cast(t) for c, t in _IMPORTED_SCHEMA.items()])

    fresh = typed(new)
    if replace:
        return fresh.sort("round", "metric")
    kept = typed(existing).join(fresh.select("round").unique(), on="round", how="anti")
    return pl.concat([kept, fresh]).sort("round", "metric")


def confusion_shares(confusion: Any) -> np.ndarray:
    """Row-normalised confusion matrix: each true label's samples split by predicted label.

    ``confusion``: a square count matrix (rows true, columns predicted), e.g. the
    ``confusion`` of ``classification_metrics``. Returns floats whose rows sum to 1 (a row
    without samples stays all 0). Raises ValueError for a non-square or negative matrix.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion must be a square matrix, got shape {cm.shape}")
    if (cm < 0).any():
        raise ValueError("confusion must not hold negative counts")
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def __getattr__(name: str) -> Any:
    # gold_labels moved to core.gold (the gold-label rule is policy, not a metric); old imports keep working.
    if name == "gold_labels":
        from core.gold import gold_labels

        return gold_labels
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
