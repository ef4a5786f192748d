"""Samples (table ``samples``): reads for the pages, exclusion from export, and the overview counts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import polars as pl

from core.auth import authorize
from core.roles import Action
from core.store.db import Database, _first, _frame, _quote_ident

#: Columns :meth:`Samples.sample_pages` can read.
_PAGE_COLUMNS = frozenset({"sample_id", "instruction", "input", "output", "text", "batch", "round", "content_hash",
                           "excluded", "import_id"})


class Samples(Database):
    """Reads of the samples table, the exclude flag, and counts across tables."""

    def samples(self, dataset: str, batch: str | None = None, round: int | None = None,
                include_excluded: bool = True) -> pl.DataFrame:
        """Samples of a dataset (optionally one batch or round), ordered by sample_id."""
        return self.query_df(
            """SELECT sample_id, instruction, input, output, text, batch, round, content_hash, meta, excluded
               FROM samples WHERE dataset = ?
                 AND (?::VARCHAR IS NULL OR batch = ?) AND (?::INTEGER IS NULL OR round = ?)
                 AND (? OR NOT excluded)
               ORDER BY sample_id""",
            [dataset, batch, batch, round, round, include_excluded],
        )

    def sample_pages(self, dataset: str, columns: Sequence[str] = ("sample_id", "instruction", "input", "output",
                                                                   "text", "batch", "round"),
                     page_rows: int = 100_000, include_excluded: bool = True) -> Iterator[pl.DataFrame]:
        """The samples of a dataset in pages of at most ``page_rows`` rows, by sample_id (keyset pages: each page is
        its own short query, so a pass over a million samples holds one page of text at a time and no lock
        between pages). ``columns``: a subset of the samples table's plain columns."""
        unknown = sorted(set(columns) - _PAGE_COLUMNS)
        if unknown or "sample_id" not in columns:
            raise ValueError(f"sample_pages: columns must include sample_id and be among {sorted(_PAGE_COLUMNS)}; "
                             f"got {', '.join(unknown) or 'no sample_id'}")
        if page_rows < 1:
            raise ValueError(f"page_rows must be at least 1, got {page_rows!r}")
        select = ", ".join(_quote_ident(c) for c in columns)
        after: str | None = None
        while True:
            page = self.query_df(
                f"""SELECT {select} FROM samples
                    WHERE dataset = ? AND (?::VARCHAR IS NULL OR sample_id > ?) AND (? OR NOT excluded)
                    ORDER BY sample_id LIMIT ?""",
                [dataset, after, after, include_excluded, page_rows],
            )
            if page.height:
                yield page
            if page.height < page_rows:
                return
            after = page["sample_id"][-1]

    def samples_by_ids(self, dataset: str, sample_ids: Sequence[str]) -> pl.DataFrame:
        """The samples (columns of :meth:`samples`) with the given ids, by sample_id; unknown ids are absent."""
        ids = pl.DataFrame({"sample_id": list(dict.fromkeys(str(s) for s in sample_ids))}, schema={"sample_id": pl.Utf8})
        with self.cursor() as cur:
            cur.register("_ids", ids.to_arrow())
            try:
                return _frame(cur,
                              """SELECT s.sample_id, s.instruction, s.input, s.output, s.text, s.batch, s.round,
                                        s.content_hash, s.meta, s.excluded
                                 FROM samples s SEMI JOIN _ids ON s.sample_id = _ids.sample_id
                                 WHERE s.dataset = ? ORDER BY s.sample_id""", [dataset])
            finally:
                cur.unregister("_ids")

    def sample(self, dataset: str, sample_id: str) -> dict[str, Any] | None:
        """One sample: its text fields, batch, round, meta, excluded, and its record's shape and the
        record as imported (JSON text; both null for samples imported as plain text fields)."""
        df = self.query_df(
            """SELECT sample_id, instruction, input, output, text, batch, round, content_hash, meta, excluded,
                      shape, record
               FROM samples WHERE dataset = ? AND sample_id = ?""",
            [dataset, sample_id],
        )
        return df.row(0, named=True) if df.height else None

    def sample_records(self, dataset: str, include_excluded: bool = True) -> pl.DataFrame:
        """``sample_id, shape, record`` (the record as JSON text, null when none was kept) of a dataset,
        by sample_id: what an export in the records' own shape reads."""
        return self.query_df(
            """SELECT sample_id, shape, CAST(record AS VARCHAR) AS record FROM samples
               WHERE dataset = ? AND (? OR NOT excluded) ORDER BY sample_id""",
            [dataset, include_excluded],
        )

    def dataset_summaries(self) -> pl.DataFrame:
        """Per dataset (by name): ``name, samples, annotations, annotators, predictions, labels`` (the
        ordered label set), for ``python -m core datasets --json``."""
        return self.query_df(
            """SELECT d.name,
                      (SELECT count(*) FROM samples s WHERE s.dataset = d.name) AS samples,
                      (SELECT count(*) FROM annotations a WHERE a.dataset = d.name) AS annotations,
                      (SELECT count(DISTINCT annotator) FROM annotations a WHERE a.dataset = d.name) AS annotators,
                      (SELECT count(*) FROM predictions p WHERE p.dataset = d.name) AS predictions,
                      d.labels
               FROM datasets d ORDER BY d.name"""
        )

    def has_sample(self, dataset: str, sample_id: str) -> bool:
        return self._scalar("SELECT count(*) FROM samples WHERE dataset = ? AND sample_id = ?", [dataset, sample_id]) > 0

    def batches(self, dataset: str) -> list[str]:
        with self.cursor() as cur:
            return [r[0] for r in cur.execute(
                "SELECT DISTINCT batch FROM samples WHERE dataset = ? AND batch IS NOT NULL ORDER BY batch",
                [dataset]).fetchall()]

    def rounds(self, dataset: str) -> list[int]:
        """Rounds that have samples or predictions, ascending."""
        with self.cursor() as cur:
            return [r[0] for r in cur.execute(
                """SELECT round FROM (SELECT round FROM samples WHERE dataset = ? AND round IS NOT NULL
                   UNION SELECT round FROM predictions WHERE dataset = ?) ORDER BY round""",
                [dataset, dataset]).fetchall()]

    def samples_per_batch(self, dataset: str) -> pl.DataFrame:
        return self.query_df(
            """SELECT coalesce(batch, '(none)') AS batch, count(*) AS n FROM samples WHERE dataset = ?
               GROUP BY ALL ORDER BY batch""",
            [dataset],
        )

    def overview_counts(self, dataset: str) -> dict[str, int]:
        """KPI counts for the overview page."""
        with self.cursor() as cur:
            row = _first(cur.execute(
                """SELECT
                     (SELECT count(*) FROM samples WHERE dataset = $1),
                     (SELECT count(DISTINCT sample_id) FROM (
                         SELECT sample_id FROM annotations WHERE dataset = $1
                         UNION ALL SELECT sample_id FROM reviews WHERE dataset = $1)),
                     (SELECT count(DISTINCT annotator) FROM annotations WHERE dataset = $1),
                     (SELECT count(*) FROM (SELECT round FROM samples WHERE dataset = $1 AND round IS NOT NULL
                                            UNION SELECT round FROM predictions WHERE dataset = $1)),
                     (SELECT count(*) FROM review_queue WHERE dataset = $1 AND status IN ('open', 'claimed')),
                     (SELECT count(*) FROM predictions WHERE dataset = $1),
                     (SELECT count(DISTINCT sample_id) FROM reviews WHERE dataset = $1)""",
                [dataset],
            ))
        keys = ["samples", "labeled", "annotators", "rounds", "open_review", "predictions", "reviewed"]
        return dict(zip(keys, (int(v) for v in row)))

    def table_counts(self) -> dict[str, int]:
        """Row counts of every table (for tests and the CLI's ``info``)."""
        names = ["datasets", "samples", "annotations", "predictions", "reviews", "audit_log",
                 "embeddings", "imports", "import_errors", "review_queue", "imported_round_metrics"]
        with self.cursor() as cur:
            return {n: _first(cur.execute(f"SELECT count(*) FROM {_quote_ident(n)}"))[0] for n in names}

    def set_excluded(self, dataset: str, sample_ids: Sequence[str], excluded: bool, actor: str,
                     reason: str | None = None) -> int:
        """Mark samples excluded from (or back into) export; returns how many changed. Audited."""
        authorize(actor, Action.EXCLUDE)
        ids = list(dict.fromkeys(str(s) for s in sample_ids))
        if not ids:
            return 0
        with self.transaction() as cur:
            self.get_dataset(dataset)
            changed = _first(cur.execute(
                """SELECT count(*) FROM samples WHERE dataset = ? AND list_contains(?::VARCHAR[], sample_id)
                   AND excluded <> ?""",
                [dataset, ids, excluded],
            ))[0]
            cur.execute(
                "UPDATE samples SET excluded = ? WHERE dataset = ? AND list_contains(?::VARCHAR[], sample_id)",
                [excluded, dataset, ids],
            )
            self._audit(cur, actor, "sample.exclude" if excluded else "sample.include", dataset, None,
                        None, None, {"sample_ids": ids[:1000], "count": len(ids), "reason": reason})
        return int(changed)
