"""The gold-label rule: which label of a sample counts as true (the latest review, else the annotators' vote).

Metrics, export, the quality checks, the queue and the pages all take gold labels from here.
"""

from __future__ import annotations

import polars as pl

from core.validation import no_nulls, require_frame, unify_columns

__all__ = ["gold_labels"]


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
