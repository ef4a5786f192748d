"""The review queue (table ``review_queue``): entries, the claim protocol and status changes."""

from __future__ import annotations

import json
import time
from typing import Any, Sequence

import numpy as np
import polars as pl

from core.auth import authorize
from core.roles import Action
from core.store.db import Database, _first, _frame, _now
from core.store.errors import StoreBusy, StoreConflict, StoreError


class ReviewQueue(Database):
    """Adds, claims, lists and resolves queue entries (the rules that fill it are in :mod:`core.queue`)."""

    def enqueue(self, dataset: str, sample_ids: Sequence[str], reason: str, actor: str,
                priority: Sequence[float] | float = 0.0, detail: dict[str, Any] | None = None) -> int:
        """Add open queue entries; a sample already open/claimed for the same reason is skipped.

        Returns the number of entries added. Audited as one ``queue.add`` row.
        """
        authorize(actor, Action.QUEUE_RULES)
        ids = list(dict.fromkeys(str(s) for s in sample_ids))
        if not ids:
            return 0
        prio = [float(priority)] * len(ids) if np.isscalar(priority) else [float(p) for p in priority]
        if len(prio) != len(ids):
            raise ValueError("priority must be a number or one number per sample id")
        frame = pl.DataFrame({"sample_id": ids, "priority": prio})
        with self.transaction() as cur:
            cur.register("_q", frame.to_arrow())
            try:
                unknown = cur.execute(
                    """SELECT q.sample_id FROM _q q ANTI JOIN (SELECT sample_id FROM samples WHERE dataset = ?) s
                       ON s.sample_id = q.sample_id LIMIT 5""",
                    [dataset],
                ).fetchall()
                if unknown:
                    raise StoreError(f"unknown sample id(s) in {dataset!r}: {', '.join(r[0] for r in unknown)}")
                before = _first(cur.execute("SELECT count(*) FROM review_queue"))[0]
                cur.execute(
                    """INSERT INTO review_queue (dataset, sample_id, reason, priority, created_by, created_at, detail)
                       SELECT ?, q.sample_id, ?, q.priority, ?, ?, ? FROM _q q
                       ANTI JOIN (SELECT sample_id FROM review_queue
                                  WHERE dataset = ? AND reason = ? AND status IN ('open', 'claimed')) e
                              ON e.sample_id = q.sample_id""",
                    [dataset, reason, actor, _now(), json.dumps(detail, ensure_ascii=False) if detail else None,
                     dataset, reason],
                )
                added = _first(cur.execute("SELECT count(*) FROM review_queue"))[0] - before
            finally:
                cur.unregister("_q")
            self._audit(cur, actor, "queue.add", dataset, None, None, reason,
                        {"added": int(added), "requested": len(ids), "reason": reason})
        return int(added)

    def queue(self, dataset: str, status: Sequence[str] | None = None, reason: str | None = None) -> pl.DataFrame:
        """Queue entries of a dataset, highest priority first."""
        return self.query_df(
            """SELECT entry_id, sample_id, reason, priority, status, claimed_by, claimed_at, created_by,
                      created_at, resolved_at, detail
               FROM review_queue WHERE dataset = ?
                 AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], status))
                 AND (?::VARCHAR IS NULL OR reason = ?)
               ORDER BY priority DESC, entry_id""",
            [dataset, list(status) if status else None, list(status) if status else None, reason, reason],
        )

    def claim_queue_entry(self, dataset: str, reviewer: str, claim_ttl_seconds: float,
                          reasons: Sequence[str] | None = None) -> dict[str, Any] | None:
        """Atomically claim the highest-priority open entry (or one whose claim expired).

        Returns the claimed entry, or None when nothing is left. A reviewer who already holds
        an unexpired claim gets that entry back. Two sessions never get the same entry: the
        UPDATE is conditional on the status read, and a lost race is retried.
        """
        authorize(reviewer, Action.CLAIM)
        reason_list = list(reasons) if reasons else None
        for _attempt in range(20):
            try:
                with self.transaction() as cur:
                    now = _now()
                    held = _first(cur.execute(
                        """SELECT entry_id FROM review_queue
                           WHERE dataset = ? AND status = 'claimed' AND claimed_by = ?
                             AND claimed_at > ? - to_seconds(?)
                             AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], reason))
                           ORDER BY priority DESC, entry_id LIMIT 1""",
                        [dataset, reviewer, now, float(claim_ttl_seconds), reason_list, reason_list],
                    ))
                    if held is None:
                        cand = _first(cur.execute(
                            """SELECT entry_id FROM review_queue
                               WHERE dataset = ? AND (status = 'open' OR (status = 'claimed'
                                     AND claimed_at <= ? - to_seconds(?)))
                                 AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], reason))
                               ORDER BY priority DESC, entry_id LIMIT 1""",
                            [dataset, now, float(claim_ttl_seconds), reason_list, reason_list],
                        ))
                        if cand is None:
                            return None
                        cur.execute(
                            "UPDATE review_queue SET status = 'claimed', claimed_by = ?, claimed_at = ? WHERE entry_id = ?",
                            [reviewer, now, cand[0]],
                        )
                        entry_id = cand[0]
                    else:
                        entry_id = held[0]
                    df = _frame(cur, "SELECT * FROM review_queue WHERE entry_id = ?", [entry_id])
                return df.row(0, named=True)
            except StoreConflict:
                time.sleep(0.005 * (_attempt + 1))  # another session won this entry: try the next
        raise StoreBusy("could not claim a queue entry: too many concurrent claims, try again")

    def set_queue_status(self, entry_id: int, status: str, actor: str) -> None:
        """Set an entry's status (``open`` releases a claim, ``skipped``, ``done``), audited."""
        authorize(actor, Action.QUEUE_STATUS)
        if status not in {"open", "claimed", "done", "skipped"}:
            raise ValueError(f"unknown queue status {status!r}")
        with self.transaction() as cur:
            row = _first(cur.execute("SELECT dataset, sample_id, status FROM review_queue WHERE entry_id = ?",
                                     [entry_id]))
            if row is None:
                raise StoreError(f"no queue entry {entry_id}")
            cur.execute(
                """UPDATE review_queue SET status = ?,
                          claimed_by = CASE WHEN ? = 'open' THEN NULL ELSE claimed_by END,
                          resolved_at = CASE WHEN ? IN ('done', 'skipped') THEN ? ELSE NULL END
                   WHERE entry_id = ?""",
                [status, status, status, _now(), entry_id],
            )
            self._audit(cur, actor, f"queue.{status}", row[0], row[1], row[2], status, {"entry_id": entry_id})
