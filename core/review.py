"""Label write-back: versioned, conflict-checked reviews with an audit trail, and undo."""

from __future__ import annotations

from typing import Any

import duckdb

from core.store import Store, StoreError

QUEUE_REASONS = ("low_confidence", "disagreement", "label_issue", "active_learning", "manual")


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

    The same rule as :func:`core.metrics.gold_labels`, evaluated for one sample.
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
    except (duckdb.TransactionException, duckdb.ConstraintException) as exc:
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
