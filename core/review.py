"""Label write-back: versioned, conflict-checked reviews with an audit trail, and undo."""

from __future__ import annotations

from typing import Any

from core import vocab
from core.auth import authorize
from core.gold import gold_labels
from core.roles import Action
from core.store import Store, StoreConflict, StoreError

QUEUE_REASONS: tuple[str, ...] = tuple(vocab.QUEUE_REASONS)


class ReviewError(ValueError):
    """A review that is refused before anything is written (bad label, reviewer or sample)."""


class ReviewConflict(StoreError):
    """The sample changed since the reviewer loaded it; nothing was written.

    ``current`` holds the other reviewer's change (version, reviewer, new_label, created_at).
    """

    def __init__(self, message: str, current: dict[str, Any] | None = None):
        super().__init__(message)
        self.current = current or {}


def sample_version(store: Store, dataset: str, sample_id: str) -> int:
    """The sample's current review version: 0 before any review, then 1, 2, ..."""
    head = store.review_head(dataset, sample_id)
    return 0 if head is None else int(head["version"])


def current_label(store: Store, dataset: str, sample_id: str) -> tuple[str | None, str | None]:
    """``(label, source)``: the latest review, else the strict-plurality vote, else ``(None, None)``.

    The same rule as :func:`core.gold.gold_labels`, evaluated for one sample.
    """
    head = store.review_head(dataset, sample_id)
    if head is not None:
        return head["new_label"], "review"
    majority = store.majority_label(dataset, sample_id)
    return (majority, "majority") if majority is not None else (None, None)


def _conflict_message(sample_id: str, base_version: int, head: dict[str, Any] | None) -> str:
    if head is None:
        return f"sample {sample_id!r} changed since version {base_version}; reload it"
    return (f"sample {sample_id!r} was changed by {head['reviewer']} to {head['new_label']!r} "
            f"(version {head['version']}, {head['created_at']:%Y-%m-%d %H:%M:%S}) after you loaded "
            f"version {base_version}")


def save_review(store: Store, dataset: str, sample_id: str, new_label: str, reviewer: str,
                reason: str | None, base_version: int, *, action: str = "review.save") -> int:
    """Append a review that sets ``new_label`` and return the new version.

    Checks, before anything is written: the reviewer is not empty, the sample exists, the
    label belongs to the dataset's label set. Inside one transaction: the sample's version
    must still equal ``base_version`` (else :class:`ReviewConflict` naming the other change),
    then the review row, the closing of the sample's queue entries and the audit row are
    written together. A concurrent save of the same version loses at commit with the same
    ``ReviewConflict``.
    """
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise ReviewError("a reviewer name is required")
    authorize(reviewer, Action.REVIEW)
    with store.cursor():  # one cursor for the whole save: the file is opened once
        return _save_review(store, dataset, sample_id, new_label, reviewer, reason, base_version, action)


def _save_review(store: Store, dataset: str, sample_id: str, new_label: str, reviewer: str,
                 reason: str | None, base_version: int, action: str) -> int:
    info = store.get_dataset(dataset)
    if new_label not in info.labels:
        raise ReviewError(f"label {new_label!r} is not in the label set of {dataset!r}: {', '.join(info.labels)}")
    if not store.has_sample(dataset, sample_id):
        raise ReviewError(f"unknown sample {sample_id!r} in {dataset!r}")
    base_version = int(base_version)
    try:
        with store.transaction():
            head = store.review_head(dataset, sample_id)
            version = 0 if head is None else int(head["version"])
            if version != base_version:
                raise ReviewConflict(_conflict_message(sample_id, base_version, head), head)
            old_label = head["new_label"] if head is not None else store.majority_label(dataset, sample_id)
            store.append_review(dataset, sample_id, version + 1, base_version, reviewer, old_label,
                                new_label, reason, action=action)
    except StoreConflict as exc:
        head = store.review_head(dataset, sample_id)
        raise ReviewConflict(_conflict_message(sample_id, base_version, head), head) from exc
    return base_version + 1


def undo_review(store: Store, dataset: str, sample_id: str, reviewer: str, base_version: int) -> int:
    """Undo the latest review by appending one that restores its previous label.

    History is never rewritten: the undo is itself a review (action ``review.undo``).
    """
    head = store.review_head(dataset, sample_id)
    if head is None:
        raise ReviewError(f"sample {sample_id!r} has no review to undo")
    if head["old_label"] is None:
        raise ReviewError(f"sample {sample_id!r} had no label before its latest review; nothing to restore")
    return save_review(store, dataset, sample_id, head["old_label"], reviewer,
                       f"undo of version {head['version']}", base_version, action="review.undo")


def _bulk_conflict_message(conflicts: list[dict[str, Any]]) -> str:
    shown = "; ".join(
        f"{c['sample_id']!r} (you loaded version {c['base_version']}, now version {c['version']}"
        + (f" by {c['reviewer']} → {c['review_label']!r}" if c.get("reviewer") else "") + ")"
        for c in conflicts[:10]
    )
    more = f" and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""
    return (f"{len(conflicts)} sample(s) changed since you loaded them, nothing was saved: {shown}{more}. "
            "Reload the table and review them again.")


def save_reviews_bulk(store: Store, dataset: str, rows: Any, reviewer: str, reason: str | None) -> int:
    """Save many reviews all-or-nothing in ONE transaction; returns how many were saved.

    ``rows``: mappings (or a polars DataFrame) with ``sample_id``, ``new_label`` and
    ``base_version`` (the version the reviewer saw). Refused before anything is written, with a
    :class:`ReviewError`: an empty reviewer, a label outside the label set, an unknown or
    repeated sample, a missing or negative base version. Inside the transaction every row's
    current version must still equal its base version; if any does not, nothing is written and
    :class:`ReviewConflict` lists the conflicting samples (``exc.current`` maps each of their ids
    to its latest review: version, reviewer, new_label, created_at). A concurrent save of any of
    the same samples loses at commit with the same exception. Each review is audited as
    ``review.save`` (detail ``bulk: true``) and closes the sample's open queue entries.
    """
    import polars as pl
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise ReviewError("a reviewer name is required")
    authorize(reviewer, Action.REVIEW)
    items = rows.to_dicts() if isinstance(rows, pl.DataFrame) else [dict(r) for r in rows]
    if not items:
        return 0
    ids, labels, bases = [], [], []
    for i, item in enumerate(items, 1):
        sid = str(item.get("sample_id") or "").strip()
        if not sid:
            raise ReviewError(f"row {i}: a sample id is required")
        base = item.get("base_version")
        try:
            base_int = int(base)
        except (TypeError, ValueError):
            raise ReviewError(f"row {i} ({sid!r}): base_version must be a whole number, got {base!r}") from None
        if base_int < 0 or base_int != base:
            raise ReviewError(f"row {i} ({sid!r}): base_version must be a whole number >= 0, got {base!r}")
        ids.append(sid)
        labels.append(item.get("new_label"))
        bases.append(base_int)
    repeated = sorted({s for s in ids if ids.count(s) > 1}) if len(set(ids)) != len(ids) else []
    if repeated:
        raise ReviewError(f"sample(s) listed more than once: {', '.join(repeated[:5])}")
    info = store.get_dataset(dataset)
    allowed = set(info.labels)
    bad = [(s, lab) for s, lab in zip(ids, labels) if lab not in allowed]
    if bad:
        shown = ", ".join(f"{s}: {lab!r}" for s, lab in bad[:5])
        raise ReviewError(f"label(s) not in the label set of {dataset!r} ({', '.join(info.labels)}): {shown}")
    frame = pl.DataFrame({"sample_id": ids, "new_label": labels, "base_version": bases},
                         schema={"sample_id": pl.Utf8, "new_label": pl.Utf8, "base_version": pl.Int64})

    def conflicts_of(state: pl.DataFrame) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rows_ = (frame.join(state, on="sample_id", how="inner")
                 .filter(pl.col("version") != pl.col("base_version")).sort("sample_id").to_dicts())
        current = {c["sample_id"]: {"version": c["version"], "reviewer": c["reviewer"],
                                    "new_label": c["review_label"], "created_at": c["reviewed_at"]} for c in rows_}
        return rows_, current

    with store.cursor():  # one cursor (and one open of the file) for the whole batch
        try:
            with store.transaction():
                state = store.sample_review_state(dataset, ids)
                if state.height != len(ids):
                    missing = sorted(set(ids) - set(state["sample_id"].to_list()))
                    raise ReviewError(f"unknown sample(s) in {dataset!r}: {', '.join(missing[:5])}"
                                      + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
                conflicts, current = conflicts_of(state)
                if conflicts:
                    raise ReviewConflict(_bulk_conflict_message(conflicts), current)
                unreviewed = state.filter(pl.col("version") == 0)["sample_id"].to_list()
                no_reviews = pl.DataFrame(schema={"sample_id": pl.Utf8, "version": pl.Int64, "new_label": pl.Utf8})
                majority = gold_labels(store.annotations_of(dataset, unreviewed), no_reviews) if unreviewed else \
                    pl.DataFrame(schema={"sample_id": pl.Utf8, "gold_label": pl.Utf8})
                out = (
                    frame.join(state.select("sample_id", "review_label"), on="sample_id", how="left")
                    .join(majority.select("sample_id", "gold_label"), on="sample_id", how="left")
                    .select("sample_id", (pl.col("base_version") + 1).alias("version"), "base_version",
                            pl.coalesce("review_label", "gold_label").alias("old_label"), "new_label")
                )
                store.append_reviews(dataset, out, reviewer, reason, action="review.save")
        except StoreConflict as exc:
            conflicts, current = conflicts_of(store.sample_review_state(dataset, ids))
            raise ReviewConflict(_bulk_conflict_message(conflicts) if conflicts else
                                 f"another review of one of these samples was saved at the same time; "
                                 f"nothing was saved: {exc}", current) from exc
    return len(ids)
