"""Annotations (table ``annotations``): the labels annotators gave, one per (sample, annotator)."""

from __future__ import annotations

from typing import Sequence

import polars as pl

from core.store.db import Database, _frame


class Annotations(Database):
    """Reads of the annotations table (imports write it, see :mod:`core.store.imports.write`)."""

    def annotations(self, dataset: str, batch: str | None = None, round: int | None = None) -> pl.DataFrame:
        """Long-form annotations: sample_id, annotator, label, confidence, batch, round."""
        return self.query_df(
            """SELECT a.sample_id, a.annotator, a.label, a.confidence, s.batch, s.round
               FROM annotations a JOIN samples s ON s.dataset = a.dataset AND s.sample_id = a.sample_id
               WHERE a.dataset = ? AND (?::VARCHAR IS NULL OR s.batch = ?)
                 AND (?::INTEGER IS NULL OR s.round = ?)
               ORDER BY a.sample_id, a.annotator""",
            [dataset, batch, batch, round, round],
        )

    def sample_annotations(self, dataset: str, sample_id: str) -> pl.DataFrame:
        """Annotations of one sample: annotator, label, confidence, created_at."""
        return self.query_df(
            """SELECT annotator, label, confidence, created_at FROM annotations
               WHERE dataset = ? AND sample_id = ? ORDER BY annotator""",
            [dataset, sample_id],
        )

    def annotations_of(self, dataset: str, sample_ids: Sequence[str]) -> pl.DataFrame:
        """Annotations (sample_id, annotator, label) of the given samples only."""
        ids = pl.DataFrame({"sample_id": list(dict.fromkeys(str(s) for s in sample_ids))}, schema={"sample_id": pl.Utf8})
        with self.cursor() as cur:
            cur.register("_ao_ids", ids.to_arrow())
            try:
                return _frame(cur,
                              """SELECT a.sample_id, a.annotator, a.label FROM annotations a
                                 SEMI JOIN _ao_ids i ON a.sample_id = i.sample_id
                                 WHERE a.dataset = ? ORDER BY a.sample_id, a.annotator""",
                              [dataset])
            finally:
                cur.unregister("_ao_ids")

    def majority_label(self, dataset: str, sample_id: str) -> str | None:
        """The label with strictly the most annotators on one sample, or None (no votes, or a tie).

        The same rule as :func:`core.metrics.gold_labels`, for one sample in one query.
        """
        with self.cursor() as cur:
            rows = cur.execute(
                """SELECT label, count(DISTINCT annotator) AS votes FROM annotations
                   WHERE dataset = ? AND sample_id = ? GROUP BY label ORDER BY votes DESC, label LIMIT 2""",
                [dataset, sample_id]).fetchall()
        if not rows or (len(rows) == 2 and rows[0][1] == rows[1][1]):
            return None
        return rows[0][0]

    def label_counts(self, dataset: str) -> pl.DataFrame:
        """Annotation counts per label (all annotators), for the overview chart."""
        return self.query_df(
            "SELECT label, count(*) AS n FROM annotations WHERE dataset = ? GROUP BY label ORDER BY n DESC",
            [dataset],
        )
