"""Reviews (table ``reviews``): the append-only review history and each sample's latest review."""

from __future__ import annotations

from typing import Any, Sequence

import polars as pl

from core.auth import authorize
from core.roles import Action
from core.store.db import Database, _first, _frame, _now


class Reviews(Database):
    """Reads and appends of reviews (the version protocol is in :mod:`core.review`).

    A concurrent save of the same version fails on the primary key (dataset, sample_id, version)
    and comes out of the store as :class:`~core.store.errors.StoreConflict`."""

    def latest_reviews(self, dataset: str) -> pl.DataFrame:
        """The latest review of each reviewed sample: sample_id, version, new_label, reviewer, created_at."""
        return self.query_df(
            """SELECT sample_id, version, new_label, reviewer, created_at FROM reviews
               WHERE dataset = ? QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY version DESC) = 1
               ORDER BY sample_id""",
            [dataset],
        )

    def reviews(self, dataset: str, sample_id: str | None = None) -> pl.DataFrame:
        """All reviews (append-only history), oldest first."""
        return self.query_df(
            """SELECT review_id, sample_id, version, base_version, reviewer, old_label, new_label, reason, created_at
               FROM reviews WHERE dataset = ? AND (?::VARCHAR IS NULL OR sample_id = ?)
               ORDER BY sample_id, version""",
            [dataset, sample_id, sample_id],
        )

    def review_head(self, dataset: str, sample_id: str) -> dict[str, Any] | None:
        """The latest review of a sample (version, reviewer, old_label, new_label, reason, created_at), or None."""
        with self.cursor() as cur:
            row = _first(cur.execute(
                """SELECT version, reviewer, old_label, new_label, reason, created_at FROM reviews
                   WHERE dataset = ? AND sample_id = ? ORDER BY version DESC LIMIT 1""",
                [dataset, sample_id]))
        if row is None:
            return None
        return dict(zip(("version", "reviewer", "old_label", "new_label", "reason", "created_at"), row))

    def review_version(self, dataset: str, sample_id: str, version: int) -> dict[str, Any] | None:
        """One version of a sample's review (version, base_version, reviewer, old_label, new_label,
        reason, created_at), or None. A save that committed is found here by its version."""
        with self.cursor() as cur:
            row = _first(cur.execute(
                """SELECT version, base_version, reviewer, old_label, new_label, reason, created_at FROM reviews
                   WHERE dataset = ? AND sample_id = ? AND version = ?""",
                [dataset, sample_id, int(version)]))
        if row is None:
            return None
        return dict(zip(("version", "base_version", "reviewer", "old_label", "new_label", "reason", "created_at"),
                        row))

    def review_versions(self, dataset: str, wanted: pl.DataFrame) -> pl.DataFrame:
        """The reviews at the given (sample_id, version) pairs of ``wanted``: sample_id, version,
        base_version, reviewer, new_label (pairs without a review are absent)."""
        pairs = wanted.select(pl.col("sample_id").cast(pl.Utf8), pl.col("version").cast(pl.Int32))
        with self.cursor() as cur:
            cur.register("_rv_pairs", pairs.to_arrow())
            try:
                return _frame(cur,
                              """SELECT r.sample_id, r.version, r.base_version, r.reviewer, r.new_label
                                 FROM reviews r JOIN _rv_pairs p ON p.sample_id = r.sample_id AND p.version = r.version
                                 WHERE r.dataset = ? ORDER BY r.sample_id""",
                              [dataset])
            finally:
                cur.unregister("_rv_pairs")

    def sample_review_state(self, dataset: str, sample_ids: Sequence[str] | None = None,
                            with_text: bool = False, excluded_only: bool = False) -> pl.DataFrame:
        """Per sample: sample_id, excluded, version (0 before any review), review_label, reviewer and
        reviewed_at of its latest review, and the text fields (null unless ``with_text``).

        Every sample of ``dataset``, or only ``sample_ids`` (ids not in the dataset are absent);
        ``excluded_only`` keeps the samples excluded from export.
        """
        sql = """SELECT s.sample_id, s.excluded, coalesce(r.version, 0) AS version, r.new_label AS review_label,
                        r.reviewer, r.created_at AS reviewed_at,
                        CASE WHEN ? THEN s.instruction END AS instruction, CASE WHEN ? THEN s.input END AS input,
                        CASE WHEN ? THEN s.output END AS output, CASE WHEN ? THEN s.text END AS text
                 FROM samples s
                 LEFT JOIN (SELECT sample_id, version, new_label, reviewer, created_at FROM reviews WHERE dataset = ?
                            QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY version DESC) = 1) r
                        ON r.sample_id = s.sample_id
                 WHERE s.dataset = ? AND (NOT ? OR s.excluded)"""
        params = [bool(with_text)] * 4 + [dataset, dataset, bool(excluded_only)]
        with self.cursor() as cur:
            if sample_ids is None:
                return _frame(cur, sql + " ORDER BY s.sample_id", params)
            ids = pl.DataFrame({"sample_id": list(dict.fromkeys(str(s) for s in sample_ids))},
                               schema={"sample_id": pl.Utf8})
            cur.register("_srs_ids", ids.to_arrow())
            try:
                return _frame(cur, sql + " AND s.sample_id IN (SELECT sample_id FROM _srs_ids) ORDER BY s.sample_id",
                              params)
            finally:
                cur.unregister("_srs_ids")

    def append_review(self, dataset: str, sample_id: str, version: int, base_version: int, reviewer: str,
                      old_label: str | None, new_label: str, reason: str | None, action: str = "review.save") -> None:
        """Insert one review row, close the sample's queue entries and audit it (one transaction).

        The primary key (dataset, sample_id, version) makes a concurrent save of the same
        version fail at commit, which :mod:`core.review` turns into a ``ReviewConflict``.
        """
        authorize(reviewer, Action.REVIEW)
        now = _now()
        with self.transaction() as cur:
            cur.execute(
                """INSERT INTO reviews (dataset, sample_id, version, base_version, reviewer, old_label,
                                        new_label, reason, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [dataset, sample_id, version, base_version, reviewer, old_label, new_label, reason, now],
            )
            cur.execute(
                """UPDATE review_queue SET status = 'done', resolved_at = ?
                   WHERE dataset = ? AND sample_id = ? AND status IN ('open', 'claimed')""",
                [now, dataset, sample_id],
            )
            self._audit(cur, reviewer, action, dataset, sample_id, old_label, new_label,
                        {"version": version, "base_version": base_version, "reason": reason})

    def append_reviews(self, dataset: str, rows: pl.DataFrame, reviewer: str, reason: str | None,
                       action: str = "review.save") -> int:
        """Insert many review rows (sample_id, version, base_version, old_label, new_label), close the
        samples' open queue entries and write one audit row per review, all in one transaction.

        The primary key (dataset, sample_id, version) makes a concurrent save of any of the same
        versions fail, which :mod:`core.review` turns into a ``ReviewConflict``.
        """
        authorize(reviewer, Action.REVIEW)
        frame = rows.select(pl.col("sample_id").cast(pl.Utf8), pl.col("version").cast(pl.Int32),
                            pl.col("base_version").cast(pl.Int32), pl.col("old_label").cast(pl.Utf8),
                            pl.col("new_label").cast(pl.Utf8))
        now = _now()
        with self.transaction() as cur:
            cur.register("_ar_rows", frame.to_arrow())
            try:
                cur.execute(
                    """INSERT INTO reviews (dataset, sample_id, version, base_version, reviewer, old_label,
                                            new_label, reason, created_at)
                       SELECT ?, sample_id, version, base_version, ?, old_label, new_label, ?, ? FROM _ar_rows""",
                    [dataset, reviewer, reason, now],
                )
                cur.execute(
                    """UPDATE review_queue SET status = 'done', resolved_at = ?
                       WHERE dataset = ? AND status IN ('open', 'claimed')
                         AND sample_id IN (SELECT sample_id FROM _ar_rows)""",
                    [now, dataset],
                )
                cur.execute(
                    """INSERT INTO audit_log (logged_at, actor, action, dataset, sample_id, old_value, new_value, detail)
                       SELECT ?, ?, ?, ?, sample_id, old_label, new_label,
                              json_object('version', version, 'base_version', base_version, 'reason', ?::VARCHAR,
                                          'bulk', true)
                       FROM _ar_rows ORDER BY sample_id""",
                    [now, reviewer, action, dataset, reason],
                )
            finally:
                cur.unregister("_ar_rows")
        return frame.height
