"""The audit log (table ``audit_log``): the row every write appends, and its reads for the audit page."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from core.auth import authorize
from core.roles import Action
from core.store.db import Database, _now


class AuditLog(Database):
    """Appends to and reads the audit log.

    :meth:`audit` (a standalone audit row) is used only by tests and system actors: every user
    action is audited by the write that performs it, through :meth:`_audit` inside its transaction."""

    @staticmethod
    def _audit(
        cur: duckdb.DuckDBPyConnection,
        actor: str,
        action: str,
        dataset: str | None,
        sample_id: str | None,
        old_value: str | None,
        new_value: str | None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        cur.execute(
            "INSERT INTO audit_log (logged_at, actor, action, dataset, sample_id, old_value, new_value, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [_now(), actor, action, dataset, sample_id, old_value, new_value,
             json.dumps(detail, ensure_ascii=False) if detail else None],
        )

    def audit(self, actor: str, action: str, dataset: str | None = None, sample_id: str | None = None,
              old_value: str | None = None, new_value: str | None = None,
              detail: dict[str, Any] | None = None) -> None:
        """Append one row to the audit log in its own transaction (system actors only: every
        user action is audited by the write that performs it)."""
        authorize(actor, Action.AUDIT_NOTE)
        with self.transaction() as cur:
            self._audit(cur, actor, action, dataset, sample_id, old_value, new_value, detail)

    def audit_pii_reveal(self, actor: str, dataset: str, where: str, detail: dict[str, Any] | None = None) -> None:
        """Audit a raw view or export of ``dataset``'s personal data (``pii.reveal``; team leads only:
        :func:`core.privacy.reveal` is the way in)."""
        authorize(actor, Action.RAW_PII)
        with self.transaction() as cur:
            self.get_dataset(dataset)  # type: ignore[attr-defined]  (a clear error for an unknown dataset)
            self._audit(cur, actor, "pii.reveal", dataset, None, None, where, {"where": where, **(detail or {})})

    def audit_log(self, dataset: str | None = None, actor: str | None = None, action: str | None = None,
                  since: datetime | None = None, until: datetime | None = None,
                  sample_id: str | None = None, limit: int = 10_000) -> pl.DataFrame:
        """The audit log, newest first, filtered by any of the given fields (None = any)."""
        return self.query_df(
            """SELECT audit_id, logged_at, actor, action, dataset, sample_id, old_value, new_value, detail
               FROM audit_log
               WHERE (?::VARCHAR IS NULL OR dataset = ?)
                 AND (?::VARCHAR IS NULL OR actor = ?)
                 AND (?::VARCHAR IS NULL OR action = ?)
                 AND (?::TIMESTAMP IS NULL OR logged_at >= ?)
                 AND (?::TIMESTAMP IS NULL OR logged_at <= ?)
                 AND (?::VARCHAR IS NULL OR sample_id = ?)
               ORDER BY audit_id DESC LIMIT ?""",
            [dataset, dataset, actor, actor, action, action, since, since, until, until,
             sample_id, sample_id, int(limit)],
        )

    def audit_facets(self) -> pl.DataFrame:
        """Distinct (actor, action, dataset) of the audit log with their row counts (filter choices)."""
        return self.query_df(
            "SELECT actor, action, dataset, count(*) AS n FROM audit_log GROUP BY ALL ORDER BY actor, action, dataset"
        )
