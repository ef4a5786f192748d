"""Imported evaluation rounds (table ``imported_round_metrics``): metrics measured outside the app."""

from __future__ import annotations

import polars as pl

from core.auth import authorize
from core.roles import Action
from core.store.db import Database


class EvaluationRounds(Database):
    """Reads and replaces the imported evaluation metrics of a dataset."""

    def imported_round_metrics(self, dataset: str) -> pl.DataFrame:
        return self.query_df(
            "SELECT round, n_labeled, metric, value FROM imported_round_metrics WHERE dataset = ? ORDER BY round, metric",
            [dataset],
        )

    def save_imported_round_metrics(self, dataset: str, table: pl.DataFrame, actor: str) -> int:
        """Replace the imported evaluation rows of ``dataset`` with ``table`` (round, n_labeled, metric, value)."""
        authorize(actor, Action.EVALUATION)
        with self.transaction() as cur:
            self.get_dataset(dataset)
            cur.execute("DELETE FROM imported_round_metrics WHERE dataset = ?", [dataset])
            cur.register("_m", table.select("round", "n_labeled", "metric", "value").to_arrow())
            try:
                cur.execute(
                    """INSERT INTO imported_round_metrics (dataset, round, n_labeled, metric, value)
                       SELECT ?, round, n_labeled, metric, value FROM _m""",
                    [dataset],
                )
            finally:
                cur.unregister("_m")
            self._audit(cur, actor, "metrics.import", dataset, None, None, None, {"rows": table.height})
        return table.height
