"""Gold (honeypot) questions (table ``gold_questions``): samples whose true label a lead has fixed, to score annotators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import polars as pl

from core.auth import authorize
from core.roles import Action
from core.store.db import Database, _first, _frame, _now
from core.store.errors import StoreError

#: Where a gold question came from: an imported ``gold_label`` column, a lead's decision after
#: adjudication on the Review page, or a lead marking it by hand elsewhere.
GOLD_QUESTION_SOURCES: tuple[str, ...] = ("import", "review", "manual")

_ROWS_SCHEMA = {"sample_id": pl.Utf8, "gold_label": pl.Utf8}


def _check_source(source: str) -> str:
    if source not in GOLD_QUESTION_SOURCES:
        raise ValueError(f"source: expected one of {', '.join(GOLD_QUESTION_SOURCES)}, got {source!r}")
    return source


class GoldQuestions(Database):
    """Marks, clears and lists the gold questions of a dataset (each write audited, leads only)."""

    def gold_questions(self, dataset: str) -> pl.DataFrame:
        """The gold questions of ``dataset``: sample_id, gold_label, source, set_by, set_at, by sample id."""
        return self.query_df(
            """SELECT sample_id, gold_label, source, set_by, set_at FROM gold_questions
               WHERE dataset = ? ORDER BY sample_id""",
            [dataset],
        )

    def set_gold_question(self, dataset: str, sample_id: str, label: str, actor: str, source: str = "review") -> None:
        """Mark one sample of ``dataset`` as a gold question whose true label is ``label`` (replacing an
        earlier gold label of the sample). ``label`` must be one of the dataset's labels; ``source`` one
        of :data:`GOLD_QUESTION_SOURCES`. Leads only (``Action.GOLD``); audited as ``gold.set``."""
        self.set_gold_questions(dataset, pl.DataFrame({"sample_id": [str(sample_id)], "gold_label": [label]},
                                                      schema=_ROWS_SCHEMA), actor, source)

    def set_gold_questions(self, dataset: str, rows: pl.DataFrame, actor: str, source: str = "import") -> int:
        """Mark many samples as gold questions at once (one transaction, one audit row); returns how many
        rows were written. ``rows``: columns sample_id, gold_label (one row per sample; a sample already
        gold gets the new label). Raises ValueError (bad label, source or repeated sample) or StoreError
        (sample ids not in the dataset) and writes nothing then.

        Called inside a transaction the caller holds (the importer's), it joins it: the gold questions
        commit with the caller's rows (and see the samples it inserted), or neither does."""
        authorize(actor, Action.GOLD)
        with self.transaction() as cur:
            return self._write_gold_questions(cur, dataset, rows, actor, source)

    def _write_gold_questions(self, cur: duckdb.DuckDBPyConnection, dataset: str, rows: pl.DataFrame, actor: str,
                              source: str) -> int:
        _check_source(source)
        missing = [c for c in ("sample_id", "gold_label") if c not in rows.columns]
        if missing:
            raise ValueError(f"rows: missing column(s) {', '.join(missing)}; expected sample_id, gold_label")
        frame = rows.select(pl.col("sample_id").cast(pl.Utf8), pl.col("gold_label").cast(pl.Utf8))
        if frame.height == 0:
            return 0
        for column in ("sample_id", "gold_label"):
            if frame[column].null_count():
                raise ValueError(f"rows: {frame[column].null_count()} row(s) without a {column}")
        repeated = frame.filter(pl.col("sample_id").is_duplicated())["sample_id"].unique().sort().head(5).to_list()
        if repeated:
            raise ValueError(f"rows: sample id(s) given more than once: {', '.join(repeated)}")
        labels = self.get_dataset(dataset).labels
        unknown = frame.filter(~pl.col("gold_label").is_in(labels))
        if unknown.height:
            example = unknown.row(0, named=True)
            raise ValueError(
                f"gold label {example['gold_label']!r} of sample {example['sample_id']!r} is not a label of "
                f"{dataset!r} ({', '.join(labels)}); {unknown.height} row(s) affected")
        cur.register("_gq", frame.to_arrow())
        try:
            absent = cur.execute(
                """SELECT g.sample_id FROM _gq g ANTI JOIN (SELECT sample_id FROM samples WHERE dataset = ?) s
                   ON s.sample_id = g.sample_id ORDER BY g.sample_id LIMIT 5""", [dataset]).fetchall()
            if absent:
                raise StoreError(f"unknown sample id(s) in {dataset!r}: {', '.join(r[0] for r in absent)}")
            before = _frame(cur, """SELECT q.sample_id, q.gold_label FROM gold_questions q
                                    SEMI JOIN _gq g ON g.sample_id = q.sample_id WHERE q.dataset = ?""", [dataset])
            cur.execute(
                """INSERT OR REPLACE INTO gold_questions (dataset, sample_id, gold_label, source, set_by, set_at)
                   SELECT ?, sample_id, gold_label, ?, ?, ? FROM _gq""",
                [dataset, source, actor, _now()])
        finally:
            cur.unregister("_gq")
        single = frame.height == 1
        old = before["gold_label"][0] if single and before.height else None
        detail: dict[str, Any] = {"source": source, "count": frame.height, "replaced": before.height}
        if not single:
            detail["sample_ids"] = frame["sample_id"].head(1000).to_list()
        self._audit(cur, actor, "gold.set", dataset, frame["sample_id"][0] if single else None, old,
                    frame["gold_label"][0] if single else None, detail)
        return frame.height

    def clear_gold_questions(self, dataset: str, sample_ids: Sequence[str], actor: str) -> int:
        """Unmark gold questions (the samples stay, their annotations too); returns how many were
        removed. Leads only; audited as ``gold.clear``."""
        authorize(actor, Action.GOLD)
        ids = list(dict.fromkeys(str(s) for s in sample_ids))
        if not ids:
            return 0
        with self.transaction() as cur:
            self.get_dataset(dataset)
            before = _frame(cur, """SELECT sample_id, gold_label FROM gold_questions
                                    WHERE dataset = ? AND list_contains(?::VARCHAR[], sample_id)""", [dataset, ids])
            cur.execute("DELETE FROM gold_questions WHERE dataset = ? AND list_contains(?::VARCHAR[], sample_id)",
                        [dataset, ids])
            single = len(ids) == 1
            self._audit(cur, actor, "gold.clear", dataset, ids[0] if single else None,
                        before["gold_label"][0] if single and before.height else None, None,
                        {"count": before.height, **({} if single else {"sample_ids": ids[:1000]})})
        return before.height

    def clear_gold_question(self, dataset: str, sample_id: str, actor: str) -> bool:
        """Unmark one gold question; returns whether the sample was one."""
        return self.clear_gold_questions(dataset, [sample_id], actor) > 0

    def gold_question_count(self, dataset: str) -> int:
        with self.cursor() as cur:
            return int(_first(cur.execute("SELECT count(*) FROM gold_questions WHERE dataset = ?", [dataset]))[0])
