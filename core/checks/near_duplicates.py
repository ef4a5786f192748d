"""Near duplicates: clusters of samples with character 3-gram Jaccard at or above a threshold (MinHash LSH)."""

from __future__ import annotations

import difflib
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
    uses_cache,
)
from core.quality import exact_duplicates, groups_from_pairs, near_duplicate_pairs

_NEAR_MEMBER_SCHEMA = {"cluster": pl.Int64, "sample_id": pl.Utf8, "cluster_size": pl.Int64, "first": pl.Boolean,
                       "max_jaccard": pl.Float64, "text": pl.Utf8}
_NEAR_PAIR_SCHEMA = {"cluster": pl.Int64, "sample_id_a": pl.Utf8, "sample_id_b": pl.Utf8, "jaccard": pl.Float64,
                     "text_a": pl.Utf8, "text_b": pl.Utf8}


def near_duplicate_report(samples: pl.DataFrame, fields: Sequence[str] | None = None,
                          threshold: float = 0.8, signed: pl.DataFrame | None = None
                          ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Near-duplicate clusters: ``(members, pairs)``.

    Later copies of exact duplicates are set aside first (the first copy stands for its group),
    then :func:`core.quality.near_duplicate_pairs` finds pairs with exact 3-gram Jaccard >=
    ``threshold`` and clusters are their connected components.

    ``members``: ``cluster`` (1-based), ``sample_id``, ``cluster_size``, ``first`` (first sample
    of the cluster), ``max_jaccard`` (highest similarity to another member), ``text``.
    ``pairs``: ``cluster``, ``sample_id_a``, ``sample_id_b``, ``jaccard``, ``text_a``, ``text_b``
    (full joined texts, for a side-by-side view), most similar first within a cluster.

    ``signed``: the samples' rows of the ``minhash`` pass (:mod:`core.passes.minhash`: ``norm_key, signature``, one
    per sample in the order of ``samples``), read from the pass cache; then the texts are not normalized and signed
    again here (the result is the same).
    """
    fields = list(fields) if fields is not None else text_fields(samples)
    texts = joined_texts(samples, fields)
    ids = sample_ids(samples)
    if signed is None:
        later_copies = {i for g in exact_duplicates(texts) for i in g[1:]}
        searched = [None if i in later_copies else t for i, t in enumerate(texts)]
        pairs = near_duplicate_pairs(searched, threshold=threshold) if len(texts) > 1 else None
    else:
        from core.passes.minhash import NUM_PERM, SEED, SHINGLE

        keys = signed.get_column("norm_key").to_list()
        later_copies = {i for g in _key_groups(keys) for i in g[1:]}
        searched = [None if i in later_copies else t for i, t in enumerate(texts)]
        pairs = (near_duplicate_pairs(searched, threshold=threshold, num_perm=NUM_PERM, shingle=SHINGLE, seed=SEED,
                                      keys=[None if i in later_copies else k for i, k in enumerate(keys)],
                                      signatures=signed.get_column("signature").to_numpy())
                 if len(texts) > 1 else None)
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
            "text": [preview(texts[i]) for m in clusters for i in m],
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


def _key_groups(keys: Sequence[str | None]) -> list[list[int]]:
    """:func:`core.quality.exact_duplicates` from keys of the normalized texts (None: an empty text)."""
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        if k:
            groups.setdefault(k, []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


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


def _signed(ctx: CheckContext) -> pl.DataFrame | None:
    """The samples' cached signatures (None: no pass cache, or fields chosen otherwise than the pass joins them)."""
    if not uses_cache(ctx) or ctx.samples.height < 2 or not set(text_fields(ctx.samples)) <= set(ctx.fields):
        return None
    from core.passes.runner import pass_frame

    signed = pass_frame(ctx.store, ctx.dataset, "minhash", ctx.samples, progress=ctx.progress)
    return signed if signed.get_column("sample_id").equals(ctx.samples.get_column("sample_id").cast(pl.Utf8),
                                                          check_names=False) else None


def _run(ctx: CheckContext) -> CheckResult:
    members, pairs = near_duplicate_report(ctx.samples, ctx.fields, threshold=ctx.threshold, signed=_signed(ctx))
    n_clusters = members["cluster"].n_unique() if members.height else 0
    detail = (f"{n_clusters} clusters, {members.height} samples, Jaccard ≥ {ctx.threshold:g}" if n_clusters else "")
    return CheckResult(members, members.height - n_clusters, detail, extra={"pairs": pairs})


CHECK = register(Check(
    name="near_duplicates", title="Near duplicates", severity="warning", order=20, run=_run,
    empty=_NEAR_MEMBER_SCHEMA,
    help="Clusters of samples whose character 3-gram Jaccard similarity (MinHash LSH, then exact) is at least the "
         "threshold; exact copies are counted under exact duplicates. Count: cluster members minus one per cluster.",
))
