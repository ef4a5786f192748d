"""Predictions (table ``predictions``): model outputs per (sample, round), read lean for each use."""

from __future__ import annotations

import polars as pl

from core.store.db import Database, _frame


class Predictions(Database):
    """Reads of the predictions table (imports write it, see :mod:`core.store.imports.write`)."""

    def predictions(self, dataset: str, round: int | None = None) -> pl.DataFrame:
        """Predictions: sample_id, round, model, predicted, confidence, probs (aligned with labels)."""
        return self.query_df(
            """SELECT sample_id, round, model, predicted, confidence, probs FROM predictions
               WHERE dataset = ? AND (?::INTEGER IS NULL OR round = ?) ORDER BY round, sample_id""",
            [dataset, round, round],
        )

    def sample_predictions(self, dataset: str, sample_id: str) -> pl.DataFrame:
        """Predictions of one sample, latest round first."""
        return self.query_df(
            """SELECT round, model, predicted, confidence, probs FROM predictions
               WHERE dataset = ? AND sample_id = ? ORDER BY round DESC""",
            [dataset, sample_id],
        )

    def prediction_rounds(self, dataset: str) -> list[int]:
        """Rounds that have predictions, ascending (a lean read: no probabilities)."""
        with self.cursor() as cur:
            return [int(r[0]) for r in cur.execute(
                "SELECT DISTINCT round FROM predictions WHERE dataset = ? AND round IS NOT NULL ORDER BY round",
                [dataset]).fetchall()]

    def selection_predictions(self, dataset: str, batch: str | None = None, round: int | None = None,
                              include_excluded: bool = True) -> pl.DataFrame:
        """Predictions of the samples in one batch and/or sample round, every prediction round.

        Columns: sample_id, pred_round (the prediction's round), predicted, confidence.
        """
        with self.cursor() as cur:
            return _frame(cur,
                          """SELECT p.sample_id, p.round AS pred_round, p.predicted, p.confidence
                             FROM predictions p JOIN samples s ON s.dataset = p.dataset AND s.sample_id = p.sample_id
                             WHERE p.dataset = ? AND (?::VARCHAR IS NULL OR s.batch = ?)
                               AND (?::INTEGER IS NULL OR s.round = ?) AND (? OR NOT s.excluded)
                             ORDER BY p.round, p.sample_id""",
                          [dataset, batch, batch, round, round, include_excluded])

    def prediction_labels(self, dataset: str) -> pl.DataFrame:
        """Predicted labels only, every round: sample_id, round, predicted (unordered; for metrics).

        A lean read of the predictions table: without the probability lists it is a fraction
        of :meth:`predictions` on millions of rows.
        """
        with self.cursor() as cur:
            return _frame(cur, "SELECT sample_id, round, predicted FROM predictions WHERE dataset = ?", [dataset])

    def prediction_confidences(self, dataset: str, round: int | None = None) -> pl.DataFrame:
        """Model confidence of one prediction round (default: the latest): sample_id, round, confidence."""
        return self.query_df(
            """SELECT sample_id, round, confidence FROM predictions
               WHERE dataset = ? AND round = coalesce(?::INTEGER, (SELECT max(round) FROM predictions WHERE dataset = ?))
               ORDER BY sample_id""",
            [dataset, round, dataset],
        )
