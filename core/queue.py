"""The review queue: rules that fill it, claims, progress, and the helpers of the review pages.

Entries live in the store's ``review_queue`` table (sample, reason, priority, status ``open`` /
``claimed`` / ``done`` / ``skipped``, claimed-by and time). Every rule writes through
:meth:`core.store.Store.enqueue`, which skips a sample already open or claimed for the same
reason, and returns how many entries it added. Rules never queue a sample that is excluded from
export or that already has a review (a human has decided it); a skipped entry is queued again
the next time its rule runs.

Pure functions (``*_candidates``, :func:`progress_counts`, :func:`top_probabilities`,
:func:`changed_rows`, :func:`day_bounds`, :func:`claim_ttl_seconds`) hold the logic and are unit
tested without a store; the ``queue_*`` functions read through the store, call them and write.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import numpy as np
import polars as pl

from core import vocab
from core.gold import dataset_gold, gold_labels, sample_gold
from core.review import QUEUE_REASONS
from core.store import TEXT_FIELDS, Store, StoreError

#: How long a claim lasts before another reviewer may take the entry (seconds).
CLAIM_TTL = 15 * 60.0
#: Environment variable that overrides :data:`CLAIM_TTL` (minutes), e.g. ``QUALITY_CLAIM_TTL_MINUTES=30``.
CLAIM_TTL_ENV = "QUALITY_CLAIM_TTL_MINUTES"
#: Dataset setting that overrides both (minutes).
CLAIM_TTL_SETTING = "claim_ttl_minutes"
DEFAULT_CONFIDENCE_THRESHOLD = 0.7
CONFIDENCE_SETTING = "confidence_threshold"
QUEUE_STATUSES = vocab.QUEUE_STATUSES


# --------------------------------------------------------------------------------- validation
def _actor(actor: str) -> str:
    name = (actor or "").strip()
    if not name:
        raise ValueError("an actor name is required for the audit trail")
    return name


def _reasons(reasons: Sequence[str] | None) -> list[str] | None:
    if not reasons:
        return None
    unknown = [r for r in reasons if r not in QUEUE_REASONS]
    if unknown:
        raise ValueError(f"unknown queue reason(s) {unknown}: expected {', '.join(QUEUE_REASONS)}")
    return list(reasons)


def _ids_and_scores(sample_ids: Sequence[Any], scores: Sequence[float] | np.ndarray) -> tuple[list[str], list[float]]:
    """Validate parallel ids and scores; a repeated id keeps its highest score."""
    ids = [str(s) for s in sample_ids]
    vals = np.asarray(list(scores) if not isinstance(scores, np.ndarray) else scores, dtype=np.float64).ravel()
    if len(ids) != len(vals):
        raise ValueError(f"{len(ids)} sample ids but {len(vals)} scores")
    if len(vals) and not np.all(np.isfinite(vals)):
        raise ValueError("scores must be finite numbers")
    best: dict[str, float] = {}
    for sid, v in zip(ids, vals.tolist()):
        if not sid.strip():
            raise ValueError("empty sample id")
        if sid not in best or v > best[sid]:
            best[sid] = v
    return list(best), list(best.values())


# ------------------------------------------------------------------------------ settings/claims
def claim_ttl_seconds(settings: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> float:
    """How long a claim lasts, in seconds.

    The dataset setting ``claim_ttl_minutes`` wins, then ``$QUALITY_CLAIM_TTL_MINUTES``, then
    :data:`CLAIM_TTL` (15 minutes). A value that is not a positive number is ignored.
    """
    env = os.environ if environ is None else environ
    for raw in ((settings or {}).get(CLAIM_TTL_SETTING), env.get(CLAIM_TTL_ENV)):
        try:
            minutes = float(raw)
        except (TypeError, ValueError):
            continue
        if math.isfinite(minutes) and minutes > 0:
            return minutes * 60.0
    return CLAIM_TTL


def confidence_threshold(settings: Mapping[str, Any] | None) -> float:
    """The dataset's ``confidence_threshold`` setting, else 0.7."""
    raw = (settings or {}).get(CONFIDENCE_SETTING)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return DEFAULT_CONFIDENCE_THRESHOLD
    return value if 0.0 <= value <= 1.0 else DEFAULT_CONFIDENCE_THRESHOLD


def _check_threshold(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the confidence threshold must be a number between 0 and 1, got {value!r}") from None
    if not (0.0 <= v <= 1.0):  # also refuses NaN
        raise ValueError(f"the confidence threshold must be between 0 and 1, got {value!r}")
    return v


def set_confidence_threshold(store: Store, dataset: str, value: float, actor: str) -> float:
    """Store the dataset's default confidence threshold (0–1), audited; returns it."""
    v = _check_threshold(value)
    store.set_dataset_setting(dataset, CONFIDENCE_SETTING, v, _actor(actor))
    return v


def claim_next(store: Store, dataset: str, reviewer: str, reasons: Sequence[str] | None = None,
               ttl_seconds: float | None = None) -> dict[str, Any] | None:
    """Claim the next entry for ``reviewer`` (their unexpired claim first), or None when none is left.

    ``reasons`` limits the claim to those reasons (None = any). ``ttl_seconds`` defaults to
    :func:`claim_ttl_seconds` of the dataset.
    """
    reviewer = _actor(reviewer)
    reason_list = _reasons(reasons)
    if ttl_seconds is None:
        ttl_seconds = claim_ttl_seconds(store.get_dataset(dataset).settings)
    if not (float(ttl_seconds) >= 0):
        raise ValueError("the claim time-to-live must be a non-negative number of seconds")
    return store.claim_queue_entry(dataset, reviewer, float(ttl_seconds), reason_list)


def skip_entry(store: Store, entry_id: int, actor: str) -> None:
    """Mark an entry skipped (it leaves the queue until its rule queues the sample again)."""
    store.set_queue_status(int(entry_id), "skipped", _actor(actor))


def release_entry(store: Store, entry_id: int, actor: str) -> None:
    """Give a claimed entry back to the queue (status ``open``, no claimer)."""
    store.set_queue_status(int(entry_id), "open", _actor(actor))


def close_entry(store: Store, dataset: str, entry_id: int, actor: str) -> bool:
    """Mark an entry done if it is still open or claimed; returns whether it changed.

    Used when a reviewer keeps another reviewer's label after a conflict (that save usually
    closed the entry already).
    """
    live = store.queue(dataset, status=list(vocab.LIVE_STATUSES))
    if not live.filter(pl.col("entry_id") == int(entry_id)).height:
        return False
    store.set_queue_status(int(entry_id), "done", _actor(actor))
    return True


def claim_entries(store: Store, dataset: str, reviewer: str, n: int, reasons: Sequence[str] | None = None,
                  ttl_seconds: float | None = None) -> pl.DataFrame:
    """Claim up to ``n`` entries for ``reviewer`` at once (bulk review), atomically.

    The reviewer ends up holding at most ``n`` unexpired claims of ``reasons`` (None = any): the
    claims held already count, so calling it twice (a retry, a rerun) claims nothing more.
    Returns the held claims (entry_id, sample_id, reason, priority, claimed_at), highest priority
    first. Two reviewers never hold the same entry.
    """
    reviewer = _actor(reviewer)
    reason_list = _reasons(reasons)
    try:
        count = int(n)
    except (TypeError, ValueError):
        raise ValueError(f"n must be a whole number of entries, got {n!r}") from None
    if count < 0:
        raise ValueError(f"n must be 0 or more, got {n!r}")
    if ttl_seconds is None:
        ttl_seconds = claim_ttl_seconds(store.get_dataset(dataset).settings)
    return store.claim_queue_entries(dataset, reviewer, count, float(ttl_seconds), reason_list)


def held_claims(store: Store, reviewer: str, dataset: str | None = None, now: datetime | None = None,
                include_expired: bool = False) -> pl.DataFrame:
    """The entries ``reviewer`` holds (unexpired claims, each dataset's time-to-live), in every dataset
    or one: entry_id, dataset, sample_id, reason, priority, claimed_at, expired, oldest first.

    What the review page shows as "your claims", so that no claim is held out of sight.
    ``include_expired`` adds the reviewer's expired claims nobody has taken yet (``expired`` true).
    """
    reviewer = _actor(reviewer)
    claims = store.claims_of(reviewer, dataset)
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    ttl = {name: claim_ttl_seconds(store.get_dataset(name).settings) for name in claims["dataset"].unique().to_list()}
    expired = [c is None or (now - c).total_seconds() >= ttl[d]
               for d, c in zip(claims["dataset"].to_list(), claims["claimed_at"].to_list())]
    claims = claims.with_columns(pl.Series("expired", expired, dtype=pl.Boolean))
    return claims if include_expired else claims.filter(~pl.col("expired"))


def release_claims(store: Store, dataset: str, entry_ids: Sequence[int], reviewer: str) -> int:
    """Give the reviewer's own claims among ``entry_ids`` back to the queue; returns how many."""
    return store.release_claims(dataset, [int(e) for e in entry_ids], _actor(reviewer))


def reopen_entry(store: Store, entry_id: int, reviewer: str) -> dict[str, Any]:
    """Claim a done or skipped entry again for ``reviewer`` (the desk's undo); returns the entry."""
    return store.reopen_queue_entry(int(entry_id), _actor(reviewer))


# ------------------------------------------------------------------------------------ rules
def low_confidence_candidates(predictions: pl.DataFrame, state: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """Samples whose prediction confidence is below ``threshold``, least confident first.

    predictions: sample_id, confidence (one round). state: sample_id, excluded, version (see
    :meth:`Store.sample_review_state`); excluded or already reviewed samples are left out, as
    are predictions without a confidence. Returns sample_id, confidence, priority (1 − confidence).
    """
    t = _check_threshold(threshold)
    skip = state.filter(pl.col("excluded") | (pl.col("version") > 0)).select("sample_id")
    return (
        predictions.select("sample_id", pl.col("confidence").cast(pl.Float64))
        .filter(pl.col("confidence").is_not_null() & pl.col("confidence").is_not_nan() & (pl.col("confidence") < t))
        .join(skip, on="sample_id", how="anti")
        .with_columns((1.0 - pl.col("confidence")).alias("priority"))
        .sort(["confidence", "sample_id"])
    )


def queue_low_confidence(store: Store, dataset: str, actor: str, threshold: float | None = None,
                         round: int | None = None, limit: int | None = None) -> int:
    """Queue samples whose model confidence is below the threshold; returns how many were added.

    ``threshold`` defaults to the dataset setting ``confidence_threshold``, else 0.7; ``round``
    to the latest prediction round. Priority is 1 − confidence. ``limit`` keeps only the least
    confident ones.
    """
    actor = _actor(actor)
    info = store.get_dataset(dataset)
    t = confidence_threshold(info.settings) if threshold is None else _check_threshold(threshold)
    preds = store.prediction_confidences(dataset, round)
    if preds.height == 0:
        return 0
    cand = low_confidence_candidates(preds, store.sample_review_state(dataset), t)
    if limit is not None:
        cand = cand.head(max(int(limit), 0))
    if cand.height == 0:
        return 0
    used_round = int(preds["round"][0])
    return store.enqueue(dataset, cand["sample_id"].to_list(), "low_confidence", actor,
                         priority=cand["priority"].to_list(),
                         detail={"threshold": t, "round": used_round, "rule": "confidence below threshold"})


def disagreement_candidates(annotations: pl.DataFrame, state: pl.DataFrame | None = None,
                            disputed_only: bool = False) -> pl.DataFrame:
    """Samples whose annotators disagree, most disputed first.

    annotations: sample_id, annotator, label (one row per annotator and sample). A sample with
    at least two ratings is a candidate when its ratings are not unanimous; with
    ``disputed_only`` only when no label has a strict majority (ties such as A/B or A/B/C, see
    :func:`core.agreement.disputed_samples`). Excluded or reviewed samples in ``state`` are
    left out. Returns sample_id, support (the top label's share), disputed (bool) and priority:
    ``1 − support`` plus 1 when disputed, so every tie comes before every plain majority.
    """
    from core.agreement import disputed_samples, majority_vote, ratings_matrix

    empty = pl.DataFrame(schema={"sample_id": pl.Utf8, "support": pl.Float64, "disputed": pl.Boolean,
                                 "priority": pl.Float64})
    ann = annotations.select("sample_id", "annotator", "label").filter(pl.col("label").is_not_null())
    if ann.height == 0:
        return empty
    matrix, _annotators, sample_ids = ratings_matrix(ann)
    _labels, _tie, support = majority_vote(matrix)
    disputed = disputed_samples(matrix)
    n_rated = (matrix != None).sum(axis=1)  # noqa: E711 - elementwise on an object array
    keep = (n_rated >= 2) & (disputed if disputed_only else (support < 1.0))
    if not keep.any():
        return empty
    frame = pl.DataFrame({
        "sample_id": np.asarray(sample_ids, dtype=object)[keep].tolist(),
        "support": support[keep].astype(np.float64),
        "disputed": disputed[keep].astype(bool),
    }, schema={"sample_id": pl.Utf8, "support": pl.Float64, "disputed": pl.Boolean})
    if state is not None:
        skip = state.filter(pl.col("excluded") | (pl.col("version") > 0)).select("sample_id")
        frame = frame.join(skip, on="sample_id", how="anti")
    return (
        frame.with_columns((1.0 - pl.col("support") + pl.col("disputed").cast(pl.Float64)).alias("priority"))
        .sort(["priority", "sample_id"], descending=[True, False])
    )


def queue_disagreement(store: Store, dataset: str, actor: str, disputed_only: bool = False) -> int:
    """Queue samples whose annotators disagree (ties first); returns how many were added."""
    actor = _actor(actor)
    store.get_dataset(dataset)
    cand = disagreement_candidates(store.annotations(dataset), store.sample_review_state(dataset), disputed_only)
    if cand.height == 0:
        return 0
    return store.enqueue(dataset, cand["sample_id"].to_list(), "disagreement", actor,
                         priority=cand["priority"].to_list(),
                         detail={"rule": "ties only" if disputed_only else "not unanimous",
                                 "ties": int(cand["disputed"].sum())})


def _queue_scored(store: Store, dataset: str, sample_ids: Sequence[Any], scores: Any, actor: str,
                  reason: str, detail: dict[str, Any]) -> int:
    actor = _actor(actor)
    ids, prio = _ids_and_scores(sample_ids, scores)
    if not ids:
        return 0
    return store.enqueue(dataset, ids, reason, actor, priority=prio, detail=detail)


def queue_label_issues(store: Store, dataset: str, sample_ids: Sequence[Any], scores: Any, actor: str) -> int:
    """Queue suspected label errors; ``scores`` (one per id, higher = more suspicious, e.g.
    1 − self-confidence) become the priorities. Returns how many entries were added."""
    return _queue_scored(store, dataset, sample_ids, scores, actor, "label_issue", {"rule": "suspected label error"})


def queue_active_learning(store: Store, dataset: str, sample_ids: Sequence[Any], scores: Any, actor: str) -> int:
    """Queue active-learning picks; ``scores`` (one per id, higher = more informative) become the
    priorities. Returns how many entries were added."""
    return _queue_scored(store, dataset, sample_ids, scores, actor, "active_learning", {"rule": "active learning"})


def queue_manual(store: Store, dataset: str, sample_ids: Sequence[Any], actor: str, note: str | None = None,
                 priority: float = 1.0) -> int:
    """Flag samples by hand (from any table) with an optional note; returns how many were added."""
    actor = _actor(actor)
    ids = list(dict.fromkeys(str(s) for s in sample_ids))
    if not ids:
        return 0
    p = float(priority)
    if not math.isfinite(p):
        raise ValueError("priority must be a finite number")
    note = (note or "").strip() or None
    return store.enqueue(dataset, ids, "manual", actor, priority=p, detail={"note": note} if note else None)


def queue_disputed(store: Store, dataset: str, disputed: pl.DataFrame, actor: str,
                   detail: dict[str, Any] | None = None) -> tuple[int, int]:
    """Queue the not yet adjudicated rows of a disputed-samples table (columns sample_id,
    adjudicated, priority: :func:`core.analyses.agreement.disputed_table`) for adjudication.

    Returns ``(added, pending)``: entries added, and disputed samples without a review (those
    already open in the queue for disagreement are not added twice).
    """
    actor = _actor(actor)
    pending = disputed.filter(pl.col("adjudicated").is_null())
    if pending.height == 0:
        return 0, 0
    added = store.enqueue(dataset, pending["sample_id"].to_list(), "disagreement", actor,
                          priority=pending["priority"].to_list(),
                          detail={"source": "agreement page", "disputed": pending.height, **(detail or {})})
    return added, pending.height


# --------------------------------------------------------------------------------- progress
def day_bounds(first: date, last: date | None = None) -> tuple[datetime, datetime]:
    """The stored-time (UTC, naive) range of local calendar days ``first`` .. ``last`` inclusive.

    Returns ``(since, until)`` with ``until`` the last microsecond of ``last``, as the store's
    ``audit_log(since=, until=)`` compares inclusively.
    """
    last = first if last is None else last
    if last < first:
        raise ValueError(f"the end date {last} is before the start date {first}")

    def utc(d: date) -> datetime:
        return datetime.combine(d, time.min).astimezone(timezone.utc).replace(tzinfo=None)

    return utc(first), utc(last + timedelta(days=1)) - timedelta(microseconds=1)


def progress_counts(queue: pl.DataFrame, since: datetime, until: datetime, now: datetime,
                    ttl_seconds: float = CLAIM_TTL) -> dict[str, Any]:
    """Counts of a queue frame (entry_id, reason, status, claimed_at, resolved_at).

    ``done_today`` / ``skipped_today``: entries resolved in [since, until]; ``open`` counts
    open entries plus claims older than ``ttl_seconds`` (anyone may take them); ``claimed``
    the live claims; ``skipped`` every skipped entry; ``open_by_reason`` the open count per reason.
    """
    expired_before = now - timedelta(seconds=float(ttl_seconds))
    status, claimed_at = pl.col("status"), pl.col("claimed_at")
    is_open = (status == "open") | ((status == "claimed") & (claimed_at <= expired_before))
    resolved_in = pl.col("resolved_at").is_between(since, until)
    q = queue.select("reason", "status", "claimed_at", "resolved_at").with_columns(is_open.alias("_open"))
    by_reason = q.filter(pl.col("_open")).group_by("reason").len().sort("reason")
    return {
        "done_today": q.filter((status == "done") & resolved_in).height,
        "skipped_today": q.filter((status == "skipped") & resolved_in).height,
        "open": q.filter(pl.col("_open")).height,
        "claimed": q.filter((status == "claimed") & ~pl.col("_open")).height,
        "skipped": q.filter(status == "skipped").height,
        "done": q.filter(status == "done").height,
        "open_by_reason": dict(zip(by_reason["reason"].to_list(), by_reason["len"].to_list())),
    }


def queue_progress(store: Store, dataset: str, day: date | None = None) -> dict[str, Any]:
    """Progress of a dataset's queue on ``day`` (local date, default today): done today, open,
    claimed, skipped (see :func:`progress_counts`)."""
    info = store.get_dataset(dataset)
    since, until = day_bounds(day or date.today())
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return progress_counts(store.queue(dataset), since, until, now, claim_ttl_seconds(info.settings))


# ------------------------------------------------------------------------- review page helpers
def top_probabilities(probs: Sequence[float] | None, labels: Sequence[str], k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable labels as ``(label, p)``, highest first (ties: label-set order).

    ``probs`` is aligned with ``labels``; a shorter vector (labels appended later) covers only
    its first labels. None or an empty vector gives ``[]``.
    """
    if probs is None:
        return []
    p = [float(x) for x in probs][: len(labels)]
    order = sorted(range(len(p)), key=lambda i: (-p[i], i))
    return [(labels[i], p[i]) for i in order[: max(int(k), 0)] if p[i] == p[i]]


def preview_text(row: Mapping[str, Any], width: int = 160) -> str:
    """A one-line preview of a sample's text fields (text, else instruction / input / output)."""
    parts = [str(row.get(f)) for f in ("text", "instruction", "input", "output") if row.get(f)]
    flat = " · ".join(" ".join(p.split()) for p in parts)
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def bulk_frame(entries: pl.DataFrame, state: pl.DataFrame, gold: pl.DataFrame) -> pl.DataFrame:
    """The table of the bulk review: one row per queue entry.

    entries: entry_id, sample_id, priority (queue rows). state: sample_id, version and the text
    fields. gold: sample_id, gold_label, source (see :func:`core.gold.gold_labels`).
    Returns entry_id, sample_id, priority, preview, current_label, source, base_version, label
    (``label`` starts as the current label; the page makes it editable).
    """
    rows = (
        entries.select("entry_id", "sample_id", "priority")
        .join(state, on="sample_id", how="left")
        .join(gold.select("sample_id", pl.col("gold_label").alias("current_label"), "source"),
              on="sample_id", how="left")
    )
    preview = [preview_text(r) for r in rows.select([c for c in TEXT_FIELDS if c in rows.columns]).iter_rows(named=True)]
    return rows.select(
        "entry_id", "sample_id", "priority",
        pl.Series("preview", preview, dtype=pl.Utf8),
        "current_label", "source",
        pl.col("version").fill_null(0).cast(pl.Int64).alias("base_version"),
        pl.col("current_label").alias("label"),
    )


def bulk_entries(store: Store, dataset: str, reason: str, limit: int = 200) -> pl.DataFrame:
    """The open entries of one reason (highest priority first, at most ``limit``) as
    :func:`bulk_frame` rows, with each sample's current label and version read now."""
    _reasons([reason])
    entries = store.queue(dataset, status=["open"], reason=reason).head(max(int(limit), 0))
    ids = entries["sample_id"].to_list()
    state = store.sample_review_state(dataset, ids, with_text=True)
    reviews = state.filter(pl.col("version") > 0).select("sample_id", "version",
                                                         pl.col("review_label").alias("new_label"))
    gold = sample_gold(store, dataset, ids, reviews)  # the dataset's gold rule (its consensus method)
    return bulk_frame(entries, state, gold)


def queue_listing(store: Store, dataset: str, limit: int = 500) -> pl.DataFrame:
    """The live (open and claimed) entries of a dataset for the review page's list, highest priority
    first, at most ``limit``: entry_id, sample_id, preview (:func:`preview_text`), reason (its display
    name, :func:`core.vocab.reason_name`), priority, status, claimed_by, created_at."""
    entries = store.queue(dataset, status=list(vocab.LIVE_STATUSES)).head(max(int(limit), 0))
    state = store.sample_review_state(dataset, entries["sample_id"].to_list(), with_text=True)
    text = state.select("sample_id", *[c for c in TEXT_FIELDS if c in state.columns])
    rows = entries.join(text, on="sample_id", how="left", maintain_order="left")
    preview = [preview_text(r) for r in rows.iter_rows(named=True)]
    return rows.select(
        "entry_id", "sample_id", pl.Series("preview", preview, dtype=pl.Utf8),
        pl.Series("reason", [vocab.reason_name(r) for r in rows["reason"].to_list()], dtype=pl.Utf8),
        "priority", "status",
        "claimed_by", "created_at",
    )


def votes_text(votes: Sequence[Mapping[str, Any]] | None) -> str:
    """Annotator votes as one line, most common label first: ``cancel ×2 (alice, bo) · refund (chen)``."""
    by_label: dict[str, list[str]] = {}
    for v in votes or []:
        if v and v.get("label") is not None:
            by_label.setdefault(str(v["label"]), []).append(str(v.get("annotator")))
    ordered = sorted(by_label.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return " · ".join(f"{lab}{f' ×{len(who)}' if len(who) > 1 else ''} ({', '.join(sorted(who))})"
                      for lab, who in ordered)


def claimed_frame(rows: pl.DataFrame) -> pl.DataFrame:
    """The bulk review table of claimed entries, from :meth:`Store.bulk_review_rows`.

    Returns entry_id, sample_id, reason, priority, preview, votes (:func:`votes_text`), predicted,
    confidence, current_label and source (the gold rule: latest review, else strict-plurality vote),
    base_version, label (starts as the current label; the page makes it editable).
    """
    empty_ann = {"sample_id": pl.Utf8, "annotator": pl.Utf8, "label": pl.Utf8}
    ann = (rows.select("sample_id", "votes").explode("votes").drop_nulls("votes")
           .select("sample_id", pl.col("votes").struct.field("annotator"), pl.col("votes").struct.field("label"))
           if rows.height else pl.DataFrame(schema=empty_ann))
    reviews = (rows.filter(pl.col("version") > 0)
               .select("sample_id", "version", pl.col("review_label").alias("new_label")))
    gold = gold_labels(ann.cast(empty_ann), reviews.cast({"sample_id": pl.Utf8, "version": pl.Int64,
                                                           "new_label": pl.Utf8}))
    text_cols = [c for c in TEXT_FIELDS if c in rows.columns]
    preview = [preview_text(r) for r in rows.select(text_cols).iter_rows(named=True)]
    votes = [votes_text(v) for v in rows["votes"].to_list()]
    return (
        rows.join(gold.select("sample_id", pl.col("gold_label").alias("current_label"), "source"),
                  on="sample_id", how="left")
        .select(
            "entry_id", "sample_id", "reason", "priority",
            pl.Series("preview", preview, dtype=pl.Utf8),
            pl.Series("votes", votes, dtype=pl.Utf8),
            "predicted", pl.col("confidence").cast(pl.Float64),
            "current_label", "source",
            pl.col("version").fill_null(0).cast(pl.Int64).alias("base_version"),
            pl.col("current_label").alias("label"),
        )
    )


def bulk_claimed(store: Store, dataset: str, reviewer: str, reason: str | None = None) -> pl.DataFrame:
    """The bulk review table of the entries ``reviewer`` holds in ``dataset`` (of ``reason``, or
    any): :func:`claimed_frame` rows, highest priority first, read in one query."""
    if reason is not None:
        _reasons([reason])
    claims = held_claims(store, reviewer, dataset)
    if reason is not None:
        claims = claims.filter(pl.col("reason") == reason)
    return _with_dataset_gold(store, dataset,
                              claimed_frame(store.bulk_review_rows(dataset, claims["entry_id"].to_list())))


def changed_rows(table: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows of an edited bulk table whose ``label`` differs from ``current_label``, as the rows
    :func:`core.review.save_reviews_bulk` takes (sample_id, new_label, base_version)."""
    changed = table.filter(pl.col("label").is_not_null()
                           & (pl.col("current_label").is_null() | (pl.col("label") != pl.col("current_label"))))
    return [{"sample_id": r["sample_id"], "new_label": r["label"], "base_version": int(r["base_version"])}
            for r in changed.iter_rows(named=True)]


# ------------------------------------------------------------------------- consensus routing
def _with_dataset_gold(store: Store, dataset: str, table: pl.DataFrame) -> pl.DataFrame:
    """A bulk table whose current_label / source / label follow the dataset's gold rule (its consensus
    method and gold questions) instead of the plain vote :func:`claimed_frame` computes from its rows."""
    ids = table["sample_id"].to_list()
    if not ids:
        return table
    gold = sample_gold(store, dataset, ids).select("sample_id", pl.col("gold_label").alias("_gold"),
                                                   pl.col("source").alias("_source"))
    return (table.join(gold, on="sample_id", how="left", maintain_order="left")
            .with_columns(pl.col("_gold").alias("current_label"), pl.col("_source").alias("source"),
                          pl.col("_gold").alias("label"))
            .drop("_gold", "_source"))


def _decided(state: pl.DataFrame, gold_questions: pl.DataFrame | None) -> pl.DataFrame:
    """Samples whose label a person has decided (reviewed, a gold question) or that are excluded."""
    skip = state.filter(pl.col("excluded") | (pl.col("version") > 0)).select(pl.col("sample_id").cast(pl.Utf8))
    if gold_questions is not None and gold_questions.height:
        skip = pl.concat([skip, gold_questions.select(pl.col("sample_id").cast(pl.Utf8))])
    return skip


def low_consensus_candidates(consensus: pl.DataFrame, state: pl.DataFrame, threshold: float,
                             gold_questions: pl.DataFrame | None = None) -> pl.DataFrame:
    """Samples whose consensus confidence is below ``threshold``, least confident first.

    consensus: sample_id, consensus_label, confidence, n_ratings, source (the frame of
    :class:`core.gold.Consensus`: one row per rated sample). state: sample_id, excluded, version
    (:meth:`Store.sample_review_state`). Excluded, reviewed and gold-question samples are left out:
    a person has decided them. A majority-vote tie (no label, confidence ≤ 0.5) is a candidate.
    Returns the consensus columns plus priority (1 − confidence).
    """
    t = _check_threshold(threshold)
    return (
        consensus.select("sample_id", "consensus_label", pl.col("confidence").cast(pl.Float64), "n_ratings", "source")
        .with_columns(pl.col("sample_id").cast(pl.Utf8))
        .filter(pl.col("confidence").is_not_null() & pl.col("confidence").is_not_nan() & (pl.col("confidence") < t))
        .join(_decided(state, gold_questions), on="sample_id", how="anti")
        .with_columns((1.0 - pl.col("confidence")).alias("priority"))
        .sort(["confidence", "sample_id"])
    )


def queue_low_consensus(store: Store, dataset: str, actor: str,
                        threshold: float = vocab.REVIEW_CONFIDENCE) -> int:
    """Send to review every sample whose consensus confidence (by the dataset's consensus method) is
    below ``threshold`` (default 0.7, the guideline's review threshold), reason ``low_consensus``,
    least confident first. Returns how many entries were added."""
    actor = _actor(actor)
    t = _check_threshold(threshold)
    found = dataset_gold(store, dataset)
    cand = low_consensus_candidates(found.consensus.frame, store.sample_review_state(dataset), t,
                                    store.gold_questions(dataset))
    if cand.height == 0:
        return 0
    return store.enqueue(dataset, cand["sample_id"].to_list(), "low_consensus", actor,
                         priority=cand["priority"].to_list(),
                         detail={"threshold": t, "method": found.method,
                                 "rule": "consensus confidence below threshold"})


def more_annotation_candidates(consensus: pl.DataFrame, state: pl.DataFrame, min_ratings: int, threshold: float,
                               gold_questions: pl.DataFrame | None = None) -> pl.DataFrame:
    """Samples that need another annotation: fewer than ``min_ratings`` ratings and consensus confidence
    below ``threshold``, least confident first (inputs as :func:`low_consensus_candidates`).

    Samples without any rating are not listed (they are plain unlabeled samples, not uncertain ones).
    """
    t = _check_threshold(threshold)
    if isinstance(min_ratings, bool) or not isinstance(min_ratings, (int, np.integer)) or min_ratings < 1:
        raise ValueError(f"min_ratings must be a whole number of ratings (1 or more), got {min_ratings!r}")
    return (low_consensus_candidates(consensus, state, t, gold_questions)
            .filter(pl.col("n_ratings") < int(min_ratings)))


def needs_more_annotations(store: Store, dataset: str, min_ratings: int = 3,
                           threshold: float = vocab.REVIEW_CONFIDENCE) -> pl.DataFrame:
    """The samples that need one more annotation (see :func:`more_annotation_candidates`), by the
    dataset's consensus method, for the labeling tool: sample_id, batch, round, n_ratings, rated_by
    (the annotators who labeled it already, ``;``-separated, so the tool assigns someone else),
    consensus_label, confidence, method, least confident first."""
    found = dataset_gold(store, dataset)
    cand = more_annotation_candidates(found.consensus.frame, store.sample_review_state(dataset), min_ratings,
                                      threshold, store.gold_questions(dataset))
    ann = store.annotations_of(dataset, cand["sample_id"].to_list()) if cand.height else \
        pl.DataFrame(schema={"sample_id": pl.Utf8, "annotator": pl.Utf8})
    who = ann.group_by("sample_id").agg(pl.col("annotator").unique().sort().str.join(";").alias("rated_by"))
    # batch and round only (page by page: the texts of a million samples are never read for this)
    where = pl.concat([page.join(cand.select("sample_id"), on="sample_id", how="semi")
                       for page in store.sample_pages(dataset, ("sample_id", "batch", "round"))]
                      or [pl.DataFrame(schema={"sample_id": pl.Utf8, "batch": pl.Utf8, "round": pl.Int32})])
    return (cand.join(where, on="sample_id", how="left", maintain_order="left")
            .join(who, on="sample_id", how="left", maintain_order="left")
            .select("sample_id", "batch", "round", "n_ratings", "rated_by", "consensus_label", "confidence",
                    pl.col("source").alias("method")))


def annotation_pool(store: Store, dataset: str) -> pl.DataFrame:
    """Every sample :func:`needs_more_annotations` can list, whatever its two settings: the undecided samples whose
    consensus confidence is below 1, with their columns, least confident first. The ``annotators`` job stores it,
    so the Annotators page answers any setting with :func:`more_from_pool` instead of a consensus fit."""
    return needs_more_annotations(store, dataset, min_ratings=_NO_RATING_LIMIT, threshold=1.0)


def more_from_pool(pool: pl.DataFrame, min_ratings: int = 3, threshold: float = vocab.REVIEW_CONFIDENCE) -> pl.DataFrame:
    """:func:`needs_more_annotations` for these settings, from an :func:`annotation_pool` (same rows, same order)."""
    t = _check_threshold(threshold)
    if isinstance(min_ratings, bool) or not isinstance(min_ratings, (int, np.integer)) or min_ratings < 1:
        raise ValueError(f"min_ratings must be a whole number of ratings (1 or more), got {min_ratings!r}")
    return pool.filter((pl.col("confidence") < t) & (pl.col("n_ratings") < int(min_ratings)))


#: A rating count no sample reaches: :func:`annotation_pool` keeps samples with any number of ratings.
_NO_RATING_LIMIT = 2**62


def needs_more_annotations_csv(frame: pl.DataFrame) -> bytes:
    """The :func:`needs_more_annotations` list as UTF-8 CSV for the labeling tool (ids, no sample text:
    the tool has the samples, and the file then carries no personal data)."""
    return frame.write_csv().encode("utf-8")


def queue_consensus_changes(store: Store, dataset: str, changed: pl.DataFrame, actor: str,
                            reason: str = "low_consensus", detail: dict[str, Any] | None = None) -> int:
    """Queue samples whose gold label differs between consensus methods (the Annotators page's
    comparison) for review. changed: sample_id and optionally priority (default 1). ``reason``:
    ``low_consensus`` or ``disagreement``. Reviewed or excluded samples are left out. Returns how many
    entries were added."""
    actor = _actor(actor)
    if reason not in ("low_consensus", "disagreement"):
        raise ValueError(f"reason must be low_consensus or disagreement, got {reason!r}")
    ids = changed.select(pl.col("sample_id").cast(pl.Utf8),
                         (pl.col("priority") if "priority" in changed.columns else pl.lit(1.0)).cast(pl.Float64)
                         .alias("priority"))
    ids = ids.join(_decided(store.sample_review_state(dataset, ids["sample_id"].to_list()), None),
                   on="sample_id", how="anti")
    if ids.height == 0:
        return 0
    return store.enqueue(dataset, ids["sample_id"].to_list(), reason, actor, priority=ids["priority"].to_list(),
                         detail={"rule": "consensus methods disagree", **(detail or {})})


__all__ = [
    "CLAIM_TTL", "DEFAULT_CONFIDENCE_THRESHOLD", "QUEUE_REASONS", "QUEUE_STATUSES", "StoreError", "annotation_pool",
    "bulk_claimed", "bulk_entries", "bulk_frame", "changed_rows", "claim_entries", "claim_next",
    "claim_ttl_seconds", "claimed_frame", "close_entry", "confidence_threshold", "day_bounds",
    "disagreement_candidates", "held_claims", "low_confidence_candidates", "low_consensus_candidates",
    "more_annotation_candidates", "more_from_pool", "needs_more_annotations", "needs_more_annotations_csv",
    "preview_text", "progress_counts", "queue_active_learning", "queue_consensus_changes", "queue_disagreement",
    "queue_label_issues", "queue_listing", "queue_low_confidence", "queue_low_consensus", "queue_manual",
    "queue_progress", "release_claims", "release_entry", "reopen_entry", "set_confidence_threshold", "skip_entry",
    "top_probabilities", "votes_text",
]
