"""The Agreement page's numbers for one selection (dataset, round, batch): metrics, tables, disputes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from core.agreement import (
    REWORK_THRESHOLD,
    agreement_summary,
    annotator_report,
    disputed_samples,
    kappa_matrix,
    label_distribution,
    majority_vote,
    pair_confusion,
    pairwise_cohen_kappa,
    per_label_agreement,
    percent_agreement_by_group,
    ratings_matrix,
)
from core.store import Store
from core.store.results import register_result_type

N_BOOT = 1000


@dataclass(frozen=True)
class Ratings:
    """The ratings matrix of a selection: samples × annotators (labels or None), one batch per sample."""

    matrix: np.ndarray
    annotators: list[str]
    sample_ids: list[str]
    batches: list[str | None]


@register_result_type
@dataclass(frozen=True)
class AgreementView:
    """Everything the Agreement page draws for one selection.

    ``disputed``: sample_id, text, why (tie / no majority), top_share, adjudicated (the label of
    the sample's latest review, null when it has none), priority, then ``label_by_<annotator>``.
    """

    n_samples: int
    n_pairable: int
    annotators: list[str]
    summary: pl.DataFrame
    pairwise: pl.DataFrame
    kappa_grid: np.ndarray
    report: pl.DataFrame
    distribution: pl.DataFrame
    per_label: pl.DataFrame
    per_batch: pl.DataFrame
    disputed: pl.DataFrame


def load_ratings(store: Store, dataset: str, batch: str | None = None, round_: int | None = None) -> Ratings:
    annotations = store.annotations(dataset, batch=batch, round=round_)
    matrix, annotators, sample_ids = ratings_matrix(annotations)
    batch_of = (pl.DataFrame({"sample_id": sample_ids}, schema={"sample_id": pl.Utf8})
                .join(annotations.select("sample_id", "batch").unique("sample_id"), on="sample_id", how="left",
                      maintain_order="left"))
    return Ratings(matrix, annotators, sample_ids, batch_of["batch"].to_list())


def disputed_table(store: Store, dataset: str, ratings: Ratings, batch: str | None = None,
                   round_: int | None = None) -> pl.DataFrame:
    """The disputed samples of a selection (no strict majority), most split first by ``priority``."""
    matrix, annotators = ratings.matrix, ratings.annotators
    mask = disputed_samples(matrix)
    _, tie, support = majority_vote(matrix)
    ids = [s for s, keep in zip(ratings.sample_ids, mask) if keep]
    disputed = pl.DataFrame({
        "sample_id": ids,
        "why": np.where(tie[mask], "tie", "no majority").tolist(),
        "top_share": support[mask],
        "priority": 1.0 - support[mask],  # the more split the votes, the sooner it is adjudicated
    }, schema={"sample_id": pl.Utf8, "why": pl.Utf8, "top_share": pl.Float64, "priority": pl.Float64})
    disputed = disputed.with_columns(
        [pl.Series(f"label_by_{a}", matrix[mask, j].tolist(), dtype=pl.Utf8) for j, a in enumerate(annotators)])
    if disputed.height:
        samples = store.samples(dataset, batch=batch, round=round_).select(
            "sample_id",
            pl.coalesce(pl.col("text"), pl.concat_str("instruction", "input", separator=" ",
                                                      ignore_nulls=True)).alias("text"))
        disputed = disputed.join(samples, on="sample_id", how="left", maintain_order="left")
    else:
        disputed = disputed.with_columns(pl.lit(None, dtype=pl.Utf8).alias("text"))
    reviewed = store.latest_reviews(dataset).select("sample_id", pl.col("new_label").alias("adjudicated"))
    return (disputed.join(reviewed, on="sample_id", how="left", maintain_order="left")
            .select("sample_id", "text", "why", "top_share", "adjudicated",
                    pl.exclude("sample_id", "text", "why", "top_share", "adjudicated")))


def agreement_view(store: Store, dataset: str, batch: str | None = None, round_: int | None = None,
                   n_boot: int = N_BOOT, ratings: Ratings | None = None) -> AgreementView:
    """Compute the whole Agreement page for one selection (bootstrap intervals with seed 0)."""
    ratings = ratings if ratings is not None else load_ratings(store, dataset, batch, round_)
    matrix, annotators = ratings.matrix, ratings.annotators
    pairwise = pairwise_cohen_kappa(matrix, annotators)
    per_batch = percent_agreement_by_group(matrix, ratings.batches, threshold=REWORK_THRESHOLD)
    return AgreementView(
        n_samples=len(ratings.sample_ids),
        n_pairable=int(per_batch["n_compared"].sum()),
        annotators=annotators,
        summary=agreement_summary(matrix, n_boot=n_boot, seed=0),
        pairwise=pairwise,
        kappa_grid=kappa_matrix(pairwise, annotators),
        report=annotator_report(matrix, annotators),
        distribution=label_distribution(matrix, annotators),
        per_label=per_label_agreement(matrix),
        per_batch=per_batch,
        disputed=disputed_table(store, dataset, ratings, batch, round_),
    )


#: Pair confusion matrices are precomputed for every ordered pair up to this many annotators.
MAX_CONFUSION_ANNOTATORS = 12


@register_result_type
@dataclass(frozen=True)
class AgreementResult:
    """The persisted result of the ``agreement`` job for one selection.

    ``view`` is None when the selection has no annotations or a single annotator (``annotators`` says
    which); ``confusions`` maps (annotator A, annotator B) to :func:`core.agreement.pair_confusion`'s
    (labels, counts) for every ordered pair when there are at most :data:`MAX_CONFUSION_ANNOTATORS`.
    """

    n_samples: int
    annotators: list[str]
    view: AgreementView | None
    confusions: dict


def agreement_result(store: Store, dataset: str, batch: str | None = None, round_: int | None = None,
                     n_boot: int = N_BOOT, progress=None) -> AgreementResult:
    """Everything the Agreement page draws for one selection, without the page reading the ratings."""
    if progress:
        progress("loading annotations", 0.05)
    ratings = load_ratings(store, dataset, batch, round_)
    if len(ratings.annotators) < 2 or not ratings.sample_ids:
        return AgreementResult(len(ratings.sample_ids), ratings.annotators, None, {})
    if progress:
        progress("agreement and bootstrap intervals", 0.2)
    view = agreement_view(store, dataset, batch, round_, n_boot=n_boot, ratings=ratings)
    confusions = {}
    if len(ratings.annotators) <= MAX_CONFUSION_ANNOTATORS:
        if progress:
            progress("pair confusion matrices", 0.9)
        for i, a in enumerate(ratings.annotators):
            for j, b in enumerate(ratings.annotators):
                axis, table = pair_confusion(ratings.matrix, i, j)
                confusions[(a, b)] = (list(axis), table)
    return AgreementResult(len(ratings.sample_ids), ratings.annotators, view, confusions)
