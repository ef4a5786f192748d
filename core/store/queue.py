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


# A reviewer's unexpired claims of some reasons; parameters: dataset, reviewer, now, ttl seconds, reasons
# (VARCHAR[] or NULL for any) twice. A fixed fragment: values still reach SQL only as parameters.
_HELD = """dataset = ? AND status = 'claimed' AND claimed_by = ? AND claimed_at > ? - to_seconds(?)
           AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], reason))"""


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
                        f"SELECT entry_id FROM review_queue WHERE {_HELD} ORDER BY priority DESC, entry_id LIMIT 1",
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

    # -- claims held by one reviewer (bulk review, the desk's "your claims", undo) ---------------------
    def claim_queue_entries(self, dataset: str, reviewer: str, n: int, claim_ttl_seconds: float,
                            reasons: Sequence[str] | None = None) -> pl.DataFrame:
        """Atomically bring the reviewer's unexpired claims (of ``reasons``) up to ``n`` entries.

        Claims the highest-priority open entries (or expired claims) needed to reach ``n``, in one
        transaction, and returns every unexpired claim of the reviewer of those reasons (entry_id,
        sample_id, reason, priority, claimed_at), highest priority first. Calling it again with the
        same ``n`` claims nothing more, so a retry after a claim that committed is harmless. Two
        reviewers never get the same entry: the UPDATE only takes rows still open (or expired) when
        it runs, and a lost race is retried. Not audited, like a single claim.
        """
        authorize(reviewer, Action.CLAIM)
        reason_list = list(reasons) if reasons else None
        n = max(int(n), 0)
        ttl = float(claim_ttl_seconds)
        for _attempt in range(20):
            try:
                with self.transaction() as cur:
                    now = _now()
                    held = _first(cur.execute(
                        f"SELECT count(*) FROM review_queue WHERE {_HELD}",
                        [dataset, reviewer, now, ttl, reason_list, reason_list],
                    ))[0]
                    need = n - int(held)
                    if need > 0:
                        cur.execute(
                            """UPDATE review_queue SET status = 'claimed', claimed_by = ?, claimed_at = ?
                               WHERE entry_id IN (
                                   SELECT entry_id FROM review_queue
                                   WHERE dataset = ? AND (status = 'open' OR (status = 'claimed'
                                         AND claimed_at <= ? - to_seconds(?)))
                                     AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], reason))
                                   ORDER BY priority DESC, entry_id LIMIT ?)""",
                            [reviewer, now, dataset, now, ttl, reason_list, reason_list, need],
                        )
                    return _frame(cur,
                                  """SELECT entry_id, sample_id, reason, priority, claimed_at FROM review_queue
                                     WHERE dataset = ? AND status = 'claimed' AND claimed_by = ?
                                       AND (claimed_at > ? - to_seconds(?) OR claimed_at = ?)
                                       AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], reason))
                                     ORDER BY priority DESC, entry_id""",
                                  [dataset, reviewer, now, ttl, now, reason_list, reason_list])
            except StoreConflict:
                time.sleep(0.005 * (_attempt + 1))  # another reviewer took one of these rows: pick again
        raise StoreBusy("could not claim queue entries: too many concurrent claims, try again")

    def claims_of(self, reviewer: str, dataset: str | None = None) -> pl.DataFrame:
        """Entries claimed by ``reviewer`` (every dataset, or one): entry_id, dataset, sample_id,
        reason, priority, claimed_at, oldest claim first. Expiry is the caller's rule (per dataset)."""
        return self.query_df(
            """SELECT entry_id, dataset, sample_id, reason, priority, claimed_at FROM review_queue
               WHERE status = 'claimed' AND claimed_by = ? AND (?::VARCHAR IS NULL OR dataset = ?)
               ORDER BY claimed_at, entry_id""",
            [reviewer, dataset, dataset],
        )

    def release_claims(self, dataset: str, entry_ids: Sequence[int], reviewer: str) -> int:
        """Give the reviewer's own claims among ``entry_ids`` back to the queue (status ``open``).

        Entries claimed by someone else (a claim that expired and was taken) or no longer claimed are
        left alone. Returns how many were released; audited as one ``queue.open`` row.
        """
        authorize(reviewer, Action.QUEUE_STATUS)
        ids = [int(e) for e in dict.fromkeys(entry_ids)]
        if not ids:
            return 0
        with self.transaction() as cur:
            mine = [r[0] for r in cur.execute(
                """SELECT entry_id FROM review_queue WHERE dataset = ? AND status = 'claimed' AND claimed_by = ?
                   AND list_contains(?::BIGINT[], entry_id) ORDER BY entry_id""",
                [dataset, reviewer, ids]).fetchall()]
            if not mine:
                return 0
            cur.execute(
                """UPDATE review_queue SET status = 'open', claimed_by = NULL, claimed_at = NULL
                   WHERE list_contains(?::BIGINT[], entry_id)""",
                [mine],
            )
            self._audit(cur, reviewer, "queue.open", dataset, None, "claimed", "open",
                        {"entry_ids": mine[:1000], "count": len(mine)})
        return len(mine)

    def reopen_queue_entry(self, entry_id: int, reviewer: str) -> dict[str, Any]:
        """Claim a resolved entry (``done`` or ``skipped``) again for ``reviewer`` (undo on the desk).

        A live entry is returned as it is when the reviewer holds it; one claimed by someone else
        raises :class:`StoreError`. Audited as ``queue.reopen``.
        """
        authorize(reviewer, Action.CLAIM)
        with self.transaction() as cur:
            row = _first(cur.execute(
                "SELECT dataset, sample_id, status, claimed_by FROM review_queue WHERE entry_id = ?", [int(entry_id)]))
            if row is None:
                raise StoreError(f"no queue entry {entry_id}")
            dataset, sample_id, status, claimed_by = row
            if status in ("done", "skipped"):
                cur.execute(
                    """UPDATE review_queue SET status = 'claimed', claimed_by = ?, claimed_at = ?, resolved_at = NULL
                       WHERE entry_id = ?""",
                    [reviewer, _now(), int(entry_id)],
                )
                self._audit(cur, reviewer, "queue.reopen", dataset, sample_id, status, "claimed",
                            {"entry_id": int(entry_id)})
            elif status == "claimed" and claimed_by != reviewer:
                raise StoreError(f"entry {entry_id} (sample {sample_id!r}) is claimed by {claimed_by}")
            elif status == "open":
                cur.execute("UPDATE review_queue SET status = 'claimed', claimed_by = ?, claimed_at = ? "
                            "WHERE entry_id = ?", [reviewer, _now(), int(entry_id)])
            return _frame(cur, "SELECT * FROM review_queue WHERE entry_id = ?", [int(entry_id)]).row(0, named=True)

    def bulk_review_rows(self, dataset: str, entry_ids: Sequence[int]) -> pl.DataFrame:
        """What the bulk review shows of each entry, in one query: entry_id, sample_id, reason, priority,
        status, claimed_by, the text fields, shape, version (0 before any review), review_label, votes
        (a list of {annotator, label}), and the latest prediction (pred_round, predicted, confidence).
        Ordered as the queue (priority, then entry id)."""
        ids = pl.DataFrame({"entry_id": [int(e) for e in dict.fromkeys(entry_ids)]}, schema={"entry_id": pl.Int64})
        with self.cursor() as cur:
            cur.register("_br_ids", ids.to_arrow())
            try:
                return _frame(cur,
                              """WITH q AS (SELECT q.* FROM review_queue q
                                            SEMI JOIN _br_ids i ON i.entry_id = q.entry_id WHERE q.dataset = $1),
                                 r AS (SELECT sample_id, version, new_label FROM reviews
                                       WHERE dataset = $1 AND sample_id IN (SELECT sample_id FROM q)
                                       QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY version DESC) = 1),
                                 a AS (SELECT sample_id, list({'annotator': annotator, 'label': label}
                                                              ORDER BY annotator) AS votes
                                       FROM annotations WHERE dataset = $1 AND sample_id IN (SELECT sample_id FROM q)
                                       GROUP BY sample_id),
                                 p AS (SELECT sample_id, round AS pred_round, predicted, confidence FROM predictions
                                       WHERE dataset = $1 AND sample_id IN (SELECT sample_id FROM q)
                                       QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY round DESC) = 1)
                                 SELECT q.entry_id, q.sample_id, q.reason, q.priority, q.status, q.claimed_by,
                                        s.instruction, s.input, s.output, s.text, s.shape,
                                        coalesce(r.version, 0) AS version, r.new_label AS review_label,
                                        a.votes, p.pred_round, p.predicted, p.confidence
                                 FROM q LEFT JOIN samples s ON s.dataset = $1 AND s.sample_id = q.sample_id
                                 LEFT JOIN r ON r.sample_id = q.sample_id
                                 LEFT JOIN a ON a.sample_id = q.sample_id
                                 LEFT JOIN p ON p.sample_id = q.sample_id
                                 ORDER BY q.priority DESC, q.entry_id""",
                              [dataset])
            finally:
                cur.unregister("_br_ids")
