"""Exact duplicates: samples whose joined text fields are equal after normalization."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from core.checks import register
from core.checks.base import (
    Check,
    CheckContext,
    CheckResult,
    joined_texts,
    preview,
    sample_ids,
    text_fields,
)
from core.quality import exact_duplicates

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
    texts = joined_texts(samples, fields)
    ids = sample_ids(samples)
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
            rows["text"].append(preview(texts[i]))
    return pl.DataFrame(rows, schema=_DUP_SCHEMA)


def _run(ctx: CheckContext) -> CheckResult:
    frame = duplicate_report(ctx.samples, ctx.fields)
    n_groups = frame["group"].n_unique() if frame.height else 0
    return CheckResult(frame, frame.height - n_groups, f"{n_groups} groups, {frame.height} samples" if n_groups else "")


CHECK = register(Check(
    name="exact_duplicates", title="Exact duplicates", severity="warning", order=10, run=_run, empty=_DUP_SCHEMA,
    help="Samples whose instruction, input and output are equal after Unicode NFKC, case folding and whitespace "
         "collapsing. Count: redundant copies (group members minus one per group).",
))
