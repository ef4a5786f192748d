"""The Annotators page's numbers: each annotator's quality by every consensus method, on gold questions and per
round, their confusions, and how the dataset's gold labels would change under another consensus method."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from core import privacy, vocab
from core.agreement import annotator_report, cohen_kappa, ratings_matrix
from core.consensus import METHODS, consensus
from core.gold import (
    N_BOOT,
    Consensus,
    consensus_method,
    consensus_of,
    gold_from,
    gold_threshold,
    latest_probabilities,
    score_gold_questions,
    share_interval,
)
from core.queue import annotation_pool, preview_text
from core.store import TEXT_FIELDS, Store
from core.store.results import register_result_type

#: Quality below this flags an annotator (the labeling guideline: below 0.6, retrain).
RETRAIN = vocab.AGREEMENT_RETRAIN
#: A class needs this many of an annotator's items before it can be their "worst confused class".
MIN_CLASS_ITEMS = 5
#: Display names of the consensus methods.
METHOD_NAMES = {"majority": "Majority vote", "dawid_skene": "Dawid-Skene", "crowdlab": "CROWDLAB"}

_TABLE_SCHEMA = {
    "annotator": pl.Utf8, "n_items": pl.Int64,
    "majority": pl.Float64, "majority_low": pl.Float64, "majority_high": pl.Float64, "n_compared": pl.Int64,
    "dawid_skene": pl.Float64, "crowdlab": pl.Float64,
    "n_gold": pl.Int64, "gold_accuracy": pl.Float64, "gold_accuracy_low": pl.Float64,
    "gold_accuracy_high": pl.Float64, "gold_kappa": pl.Float64, "gold_kappa_low": pl.Float64,
    "gold_kappa_high": pl.Float64, "kappa_vs_majority": pl.Float64, "kappa_vs_consensus": pl.Float64,
    "worst_class": pl.Utf8,
    "flagged": pl.Boolean, "why": pl.Utf8,
}


@register_result_type
@dataclass(frozen=True)
class AnnotatorsView:
    """Everything the Annotators page draws for one dataset.

    table: one row per annotator (columns of ``_TABLE_SCHEMA``): items labeled; ``majority`` — share of
      their labels equal to the strict majority of the *other* annotators, their own vote left out (as the
      Agreement page's "agreement with majority": :func:`core.agreement.annotator_report`), on the samples
      where the others have one (``n_compared``), with a 95 % percentile interval over ``n_boot`` resamples
      of those items; ``kappa_vs_majority`` — Cohen's kappa against that leave-one-out majority;
      ``dawid_skene`` — the mean of the diagonal of their estimated confusion matrix (no interval: a
      bootstrap would refit EM hundreds of times); ``crowdlab`` — cleanlab's annotator quality (null
      without model probabilities); gold-question accuracy and kappa with 95 % percentile intervals over
      ``n_boot`` resamples of their gold items; ``kappa_vs_consensus`` — Cohen's kappa against the
      current gold labels (their own vote is part of the consensus); ``worst_class`` — the gold class they
      get wrong most often (at least :data:`MIN_CLASS_ITEMS` items) and where their labels go;
      ``flagged`` / ``why`` — flagged when any of (``why`` names each that holds): their quality by the
      dataset's consensus method below 0.6, kappa against the others' majority below 0.6 (the Agreement
      page's retrain flag), kappa against the consensus below 0.6, gold accuracy below the dataset's gold
      threshold.
    weakest: the annotator with the lowest quality by ``weakest_by`` (Dawid-Skene when it ran, else
      majority agreement), or None with fewer than two annotators.
    per_round: annotator, round, method, quality, n_items — each method fitted on one round's samples.
    ds_confusion: annotator -> (classes, matrix) Dawid-Skene's estimate, rows true class, columns their
      label, rows summing to 1. gold_confusion: annotator -> (classes, counts) their labels against the
      current gold labels (rows gold, columns theirs).
    comparison: samples whose gold label differs under some method from the current one: sample_id,
      text, current (null: a majority tie), source, confidence (the current method's consensus
      confidence, a tie's share of the votes included), then one column per method that ran, and
      priority (1 − confidence) for the queue. changes: method, n_gold (gold labels under it), n_changed (gold
      labels that differ from the current method's), split into n_relabeled (another label), n_new (a
      gold label where the current method has none: a majority tie) and n_dropped (the reverse).
    notes: method -> why it ran differently or not at all.
    """

    dataset: str
    method: str
    methods: list[str]
    prob_round: int | None
    n_samples: int
    annotators: list[str]
    table: pl.DataFrame
    weakest: str | None
    weakest_by: str
    per_round: pl.DataFrame
    ds_confusion: dict
    gold_confusion: dict
    comparison: pl.DataFrame
    changes: pl.DataFrame
    gold_threshold: float
    n_gold_questions: int
    n_boot: int
    notes: dict[str, str] = field(default_factory=dict)
    #: :func:`core.queue.annotation_pool`: the samples "needs another annotation" can list at any setting (None in
    #: results stored before it existed).
    uncertain: pl.DataFrame | None = None


def _aligned(frame: pl.DataFrame, column: str, sample_ids: list[str]) -> np.ndarray:
    """``frame[column]`` by sample id, in the order of ``sample_ids`` (None where absent)."""
    lookup = dict(frame.select(pl.col("sample_id").cast(pl.Utf8), column).iter_rows())
    out = np.empty(len(sample_ids), dtype=object)
    out[:] = [lookup.get(s) for s in sample_ids]
    return out


def _worst_class(mine: np.ndarray, truth: np.ndarray) -> str | None:
    """'gold → their label: k of n wrong' for the class they miss most often, or None."""
    both = (mine != None) & (truth != None)
    mine, truth = mine[both], truth[both]
    worst, worst_rate = None, 0.0
    for c in sorted(set(truth.tolist()), key=str):
        on_c = truth == c
        n = int(on_c.sum())
        wrong = mine[on_c][mine[on_c] != c]
        if n < MIN_CLASS_ITEMS or wrong.size == 0 or wrong.size / n <= worst_rate:
            continue
        values, counts = np.unique(wrong.astype(str), return_counts=True)
        worst_rate = wrong.size / n
        worst = f"{c} → {values[counts.argmax()]}: {wrong.size} of {n} wrong"
    return worst


def _confusion_counts(mine: np.ndarray, truth: np.ndarray, classes: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    table = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for g, m in zip(truth, mine):
        if g is not None and m is not None and g in index and m in index:
            table[index[g], index[m]] += 1
    return table


def _per_round(ann: pl.DataFrame, order: list[str]) -> pl.DataFrame:
    rows: list[tuple] = []
    for rnd in sorted(ann["round"].drop_nulls().unique().to_list()):
        matrix, names, _ids = ratings_matrix(ann.filter(pl.col("round") == rnd))
        for method in ("majority", "dawid_skene"):
            fit = consensus(matrix, method, annotators=names, labels=order)
            for name, quality, n in fit.annotator_quality.iter_rows():
                rows.append((name, int(rnd), method, quality, n))
    return pl.DataFrame(rows, schema={"annotator": pl.Utf8, "round": pl.Int64, "method": pl.Utf8,
                                      "quality": pl.Float64, "n_items": pl.Int64}, orient="row")


#: What each quality column is called in a "why flagged" sentence.
_QUALITY_NAMES = {"majority": "majority agreement", "dawid_skene": "Dawid-Skene quality", "crowdlab": "CROWDLAB quality"}


def _why(row: dict, threshold: float, method: str = "majority") -> str | None:
    """Why an annotator is flagged (None: not flagged). Any of: quality by the dataset's consensus
    ``method`` below :data:`RETRAIN`; kappa against the others' majority (the Agreement page's flag) or
    against the consensus below it; gold accuracy below ``threshold``."""
    reasons = []
    for column, name in ((method, _QUALITY_NAMES[method]), ("kappa_vs_majority", "kappa vs the others' majority"),
                         ("kappa_vs_consensus", "kappa vs consensus")):
        value = row.get(column)
        if value is not None and not math.isnan(value) and value < RETRAIN:
            reasons.append(f"{name} {value:.2f} < {RETRAIN:g}")
    accuracy = row["gold_accuracy"]
    if row["n_gold"] and accuracy is not None and not math.isnan(accuracy) and accuracy < threshold:
        reasons.append(f"gold accuracy {accuracy:.2f} < {threshold:g}")
    return "; ".join(reasons) or None


def _comparison(store: Store, dataset: str, golds: dict[str, pl.DataFrame], method: str,
                current_fit: Consensus) -> tuple[pl.DataFrame, pl.DataFrame]:
    # confidence: the current method's consensus confidence, defined for a tie too (its share of the votes)
    current = (golds[method].select("sample_id", pl.col("gold_label").alias("current"), "source")
               .join(current_fit.frame.select(pl.col("sample_id").cast(pl.Utf8), "confidence"), on="sample_id",
                     how="full", coalesce=True))
    wide = current
    for name, gold in golds.items():
        wide = wide.join(gold.select("sample_id", pl.col("gold_label").alias(name)), on="sample_id", how="full",
                         coalesce=True)
    def count(name: str, kind: pl.Expr) -> int:
        return wide.filter(pl.col(name).ne_missing(pl.col("current")) & kind).height

    changes = pl.DataFrame(
        {"method": list(golds), "n_gold": [g.height for g in golds.values()],
         "n_changed": [count(n, pl.lit(True)) for n in golds],
         "n_relabeled": [count(n, pl.col(n).is_not_null() & pl.col("current").is_not_null()) for n in golds],
         "n_new": [count(n, pl.col("current").is_null()) for n in golds],
         "n_dropped": [count(n, pl.col(n).is_null()) for n in golds]},
        schema={"method": pl.Utf8, "n_gold": pl.Int64, "n_changed": pl.Int64, "n_relabeled": pl.Int64,
                "n_new": pl.Int64, "n_dropped": pl.Int64})
    differs = pl.any_horizontal([pl.col(n).ne_missing(pl.col("current")) for n in golds])
    rows = wide.filter(differs)
    texts = (store.sample_review_state(dataset, rows["sample_id"].to_list(), with_text=True)
             if rows.height else pl.DataFrame(schema={"sample_id": pl.Utf8, **{f: pl.Utf8 for f in TEXT_FIELDS}}))
    preview = {r["sample_id"]: preview_text(r) for r in texts.select("sample_id", *TEXT_FIELDS).iter_rows(named=True)}
    rows = rows.with_columns(
        pl.col("sample_id").replace_strict(preview, default=None, return_dtype=pl.Utf8).alias("text"),
        (1.0 - pl.col("confidence").fill_null(0.0)).alias("priority"),
    )
    # the page shows and downloads it masked (personal data): masked here, once, not in every page run
    rows = privacy.mask_frame(rows, columns=["text"])
    return (rows.select("sample_id", "text", "current", "source", "confidence", *golds, "priority")
            .sort(["confidence", "sample_id"], nulls_last=False), changes)


def annotators_view(store: Store, dataset: str, n_boot: int = N_BOOT, seed: int = 0) -> AnnotatorsView:
    """Compute the whole Annotators page for ``dataset`` (intervals: percentile bootstrap, ``n_boot``
    resamples, seed ``seed``)."""
    info = store.get_dataset(dataset)
    method = consensus_method(info.settings)
    threshold = gold_threshold(info.settings)
    ann = store.annotations(dataset).filter(pl.col("label").is_not_null())
    votes = ann.select("sample_id", "annotator", "label")
    reviews, questions = store.latest_reviews(dataset), store.gold_questions(dataset)
    probabilities, prob_round = latest_probabilities(store, dataset)

    fits: dict[str, Consensus] = {"majority": consensus_of(votes, "majority")}
    fits["dawid_skene"] = consensus_of(votes, "dawid_skene", labels=info.labels)
    notes = {m: fits[m].note for m in fits if fits[m].note}
    if probabilities is not None:
        fits["crowdlab"] = consensus_of(votes, "crowdlab", probabilities, info.labels)
        if fits["crowdlab"].note:
            notes["crowdlab"] = fits["crowdlab"].note
    else:
        notes["crowdlab"] = ("CROWDLAB needs a model round with predicted probabilities; this dataset has none, so "
                             "it is not compared (import predictions with probabilities to use it).")
    golds = {m: gold_from(fit, reviews, questions) for m, fit in fits.items()}
    shown_method = method if method in golds else "dawid_skene"  # crowdlab chosen but not runnable: its gold is DS
    gold = golds[shown_method]

    matrix, annotators, sample_ids = ratings_matrix(votes) if votes.height else (np.empty((0, 0), object), [], [])
    rated = matrix != None
    truth = _aligned(gold, "gold_label", sample_ids)
    # leave-one-out majority, exactly as the Agreement page: their own vote would inflate their score
    loo = ({r["annotator"]: r for r in annotator_report(matrix, annotators).iter_rows(named=True)}
           if annotators else {})
    ds_fit = fits["dawid_skene"].fit
    ds_quality = (dict(ds_fit.annotator_quality.select("annotator", "quality").iter_rows())
                  if ds_fit is not None and ds_fit.reason is None else {})
    cl_fit = fits.get("crowdlab").crowdlab_fit if "crowdlab" in fits else None
    cl_quality = dict(cl_fit.annotator_quality.select("annotator", "quality").iter_rows()) if cl_fit else {}
    on_gold = {r["annotator"]: r for r in score_gold_questions(votes, questions, threshold, n_boot, seed)
               .iter_rows(named=True)}
    classes = [str(c) for c in info.labels]
    classes += sorted({str(v) for v in ann["label"].unique().to_list()} - set(classes))

    rows, gold_confusion = [], {}
    for j, name in enumerate(annotators):
        mine = matrix[:, j]
        mine_loo = loo[name]
        n = int(mine_loo["n_compared"])
        hits = round(mine_loo["agreement_with_majority"] * n) if n else 0
        low, high = share_interval(hits, n, n_boot, seed)
        g = on_gold.get(name, {})
        kappa = cohen_kappa(mine, truth) if (rated[:, j] & (truth != None)).any() else float("nan")
        row = {
            "annotator": name, "n_items": int(rated[:, j].sum()),
            "majority": hits / n if n else float("nan"), "majority_low": low, "majority_high": high, "n_compared": n,
            "dawid_skene": ds_quality.get(name), "crowdlab": cl_quality.get(name),
            "n_gold": g.get("n_gold", 0), "gold_accuracy": g.get("accuracy"),
            "gold_accuracy_low": g.get("accuracy_low"), "gold_accuracy_high": g.get("accuracy_high"),
            "gold_kappa": g.get("kappa"), "gold_kappa_low": g.get("kappa_low"), "gold_kappa_high": g.get("kappa_high"),
            "kappa_vs_majority": mine_loo["kappa_vs_majority"],
            "kappa_vs_consensus": kappa, "worst_class": _worst_class(mine, truth),
        }
        row["why"] = _why(row, threshold, shown_method)
        row["flagged"] = row["why"] is not None
        rows.append(row)
        gold_confusion[name] = (classes, _confusion_counts(mine, truth, classes))
    table = pl.DataFrame(rows, schema=_TABLE_SCHEMA) if rows else pl.DataFrame(schema=_TABLE_SCHEMA)

    weakest_by = "dawid_skene" if ds_quality else "majority"
    ranked = table.filter(pl.col(weakest_by).is_not_null() & pl.col(weakest_by).is_not_nan()).sort(weakest_by)
    weakest = ranked["annotator"][0] if ranked.height >= 2 else None
    comparison, changes = _comparison(store, dataset, golds, shown_method, fits[shown_method])
    return AnnotatorsView(
        dataset=dataset, method=method, methods=list(fits), prob_round=prob_round if cl_fit else None,
        n_samples=len(sample_ids), annotators=annotators, table=table, weakest=weakest, weakest_by=weakest_by,
        per_round=_per_round(ann, [str(c) for c in classes]) if votes.height else
        pl.DataFrame(schema={"annotator": pl.Utf8, "round": pl.Int64, "method": pl.Utf8, "quality": pl.Float64,
                             "n_items": pl.Int64}),
        ds_confusion=dict(ds_fit.confusion) if ds_fit is not None else {},
        gold_confusion=gold_confusion, comparison=comparison, changes=changes, gold_threshold=threshold,
        n_gold_questions=questions.height, n_boot=n_boot, notes=notes, uncertain=annotation_pool(store, dataset),
    )


__all__ = ["METHODS", "METHOD_NAMES", "MIN_CLASS_ITEMS", "RETRAIN", "AnnotatorsView", "annotators_view"]
