"""The per-sample pass cache (tables ``pass_parts`` and ``pass_samples``): each pass's output rows by sample content.

A pass (:mod:`core.passes`) maps each sample to rows that depend on that sample alone, so its output for a sample
stays valid while the sample's ``content_hash`` does. A cache entry is keyed by dataset, pass name, pass version and
options key (a hash of the dataset settings the pass reads); within it, ``pass_samples`` records every computed
sample — also one that produced no row — by ``(sample_id, content_hash)`` and the part that holds its rows;
``pass_parts`` holds the rows as Arrow IPC, one part per :data:`PART_SAMPLES` samples of a save (each pass has its
own columns, and the rows are always read part by part).

A sample whose content changed, or that is gone, simply has no entry for its current hash and is computed again;
its old rows are never returned (they are pruned on the next save). Excluded samples are not asked for, so not
returned; their entries stay, and serve again if they are included back.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import polars as pl

from core.store.db import Database, _first, _frame, _now

#: Samples per stored part: large enough that a million samples are a few dozen parts, small enough that a part
#: of MinHash signatures (128 x 4 bytes a sample) stays around 10 MB.
PART_SAMPLES = 20_000

def _keys(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.col("sample_id").cast(pl.Utf8), pl.col("content_hash").cast(pl.Utf8))


def _ipc(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_ipc(buf, compression="zstd")
    return buf.getvalue()


class PassCache(Database):
    """Reads and writes of cached per-sample pass outputs (:func:`core.passes.runner.pass_frame` uses these)."""

    def cached_pass_rows(self, dataset: str, name: str, version: int, options_key: str,
                         keys: pl.DataFrame) -> tuple[pl.DataFrame | None, pl.DataFrame]:
        """``(rows, missing)`` for the samples of ``keys`` (``sample_id, content_hash``).

        ``rows``: the cached output rows of the samples that have an entry for their current hash (None when no
        part holds any: the caller knows the pass's columns), part by part in the order they were saved.
        ``missing``: the keys without an entry (new or changed samples), in the order of ``keys``.
        """
        keys = _keys(keys).with_row_index("_pos")
        if keys.height == 0:
            return None, keys.drop("_pos")
        with self.cursor() as cur:
            cur.register("_k", keys.to_arrow())
            try:
                held = _frame(cur, """
                    SELECT m.sample_id, m.part_id, k._pos FROM pass_samples m
                    JOIN _k k ON k.sample_id = m.sample_id AND k.content_hash = m.content_hash
                    WHERE m.dataset = ? AND m.pass = ? AND m.version = ? AND m.options_key = ?""",
                    [dataset, name, int(version), options_key])
                parts = held.get_column("part_id").unique().sort().to_list() if held.height else []
                blobs = (cur.execute("SELECT part_id, rows FROM pass_parts WHERE list_contains(?::BIGINT[], part_id) "
                                     "ORDER BY part_id", [parts]).fetchall() if parts else [])
            finally:
                cur.unregister("_k")
        held_pos = held.get_column("_pos") if held.height else pl.Series("_pos", [], dtype=pl.UInt32)
        missing = keys.filter(~pl.col("_pos").is_in(held_pos.implode())).drop("_pos")
        if not blobs:
            return None, missing
        frames = [pl.read_ipc(io.BytesIO(blob)).with_columns(pl.lit(part, dtype=pl.Int64).alias("_part"))
                  for part, blob in blobs]
        rows = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
        # A part may hold rows of an older content of a sample (recomputed since into another part): keep the rows
        # of the part each sample's current entry names.
        current = held.select(pl.col("sample_id").cast(pl.Utf8), pl.col("part_id").cast(pl.Int64).alias("_part"))
        rows = rows.join(current, on=["sample_id", "_part"], how="semi", maintain_order="left").drop("_part")
        return rows, missing

    def save_pass_rows(self, dataset: str, name: str, version: int, options_key: str, keys: pl.DataFrame,
                       rows: pl.DataFrame) -> int:
        """Record the samples of ``keys`` (``sample_id, content_hash``) as computed, with their output ``rows`` (which
        carry ``sample_id``), in one transaction; returns how many samples were new to the cache.

        Samples already recorded for the same hash keep their entry. Entries whose hash no longer matches the
        sample (or whose sample is gone), entries of older versions of the pass, and parts left without any entry,
        are pruned in the same transaction.
        """
        keys = _keys(keys).unique("sample_id", keep="first", maintain_order=True).with_row_index("_pos")
        if "sample_id" not in rows.columns:
            raise ValueError(f"pass {name!r}: its output rows must carry sample_id")
        rows = rows.with_columns(pl.col("sample_id").cast(pl.Utf8))
        now = _now()
        params = [dataset, name, int(version), options_key]
        with self.transaction() as cur:
            cur.register("_k", keys.to_arrow())
            try:
                new = _frame(cur, """
                    SELECT k._pos, k.sample_id, k.content_hash FROM _k k
                    ANTI JOIN (SELECT sample_id, content_hash FROM pass_samples
                               WHERE dataset = ? AND pass = ? AND version = ? AND options_key = ?) m
                           ON m.sample_id = k.sample_id AND m.content_hash = k.content_hash
                    ORDER BY k._pos""", params)
            finally:
                cur.unregister("_k")
            for start in range(0, new.height, PART_SAMPLES):
                chunk = new.slice(start, PART_SAMPLES)
                part_rows = rows.join(chunk.select("sample_id"), on="sample_id", how="semi", maintain_order="left")
                part_id = _first(cur.execute("SELECT nextval('pass_part_seq')"))[0]
                cur.execute("""INSERT INTO pass_parts (part_id, dataset, pass, version, options_key, n_samples, n_rows,
                                                       computed_at, rows) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                            [part_id, *params, chunk.height, part_rows.height, now, _ipc(part_rows)])
                cur.register("_n", chunk.select("sample_id", "content_hash").to_arrow())
                try:
                    cur.execute("""INSERT INTO pass_samples (dataset, pass, version, options_key, sample_id,
                                                             content_hash, part_id)
                                   SELECT ?, ?, ?, ?, sample_id, content_hash, ? FROM _n""", [*params, part_id])
                finally:
                    cur.unregister("_n")
            self._prune_passes(cur, dataset, name, int(version))
        return new.height

    def _prune_passes(self, cur, dataset: str, name: str, version: int) -> None:
        cur.execute("""DELETE FROM pass_samples m WHERE m.dataset = ? AND m.pass = ?
                         AND (m.version < ? OR NOT EXISTS (
                              SELECT 1 FROM samples s WHERE s.dataset = m.dataset AND s.sample_id = m.sample_id
                                                        AND s.content_hash = m.content_hash))""",
                    [dataset, name, version])
        cur.execute("""DELETE FROM pass_parts p WHERE p.dataset = ? AND p.pass = ?
                         AND NOT EXISTS (SELECT 1 FROM pass_samples m WHERE m.part_id = p.part_id)""",
                    [dataset, name])

    def pass_cache_counts(self, dataset: str) -> pl.DataFrame:
        """Per pass, version and options key of ``dataset``: ``pass, version, options_key, samples, parts, rows``."""
        return self.query_df(
            """SELECT m.pass, m.version, m.options_key, count(*) AS samples,
                      (SELECT count(*) FROM pass_parts p WHERE p.dataset = m.dataset AND p.pass = m.pass
                         AND p.version = m.version AND p.options_key = m.options_key) AS parts,
                      (SELECT coalesce(sum(n_rows), 0) FROM pass_parts p WHERE p.dataset = m.dataset
                         AND p.pass = m.pass AND p.version = m.version AND p.options_key = m.options_key) AS rows
               FROM pass_samples m WHERE m.dataset = ? GROUP BY ALL ORDER BY m.pass, m.version, m.options_key""",
            [dataset])

    def clear_pass_cache(self, dataset: str, name: str | None = None) -> None:
        """Forget the cached outputs of ``dataset`` (of one pass when ``name`` is given)."""
        with self.transaction() as cur:
            for table in ("pass_samples", "pass_parts"):
                cur.execute(f"DELETE FROM {table} WHERE dataset = ? AND (?::VARCHAR IS NULL OR pass = ?)",
                            [dataset, name, name])

    def sample_shapes(self, dataset: str, sample_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """``sample_id, shape, has_record`` of a dataset's samples (all of them, or those of ``sample_ids``)."""
        return self._sample_columns(dataset, sample_ids, "shape, record IS NOT NULL AS has_record")

    def sample_records_of(self, dataset: str, sample_ids: Sequence[str]) -> pl.DataFrame:
        """``sample_id, shape, record`` (JSON text) of the samples of ``sample_ids``, in that order."""
        return self._sample_columns(dataset, sample_ids, "shape, CAST(record AS VARCHAR) AS record")

    def _sample_columns(self, dataset: str, sample_ids: Sequence[str] | None, columns: str) -> pl.DataFrame:
        # columns: one of the fixed select lists above, never a caller's text.
        if sample_ids is None:
            return self.query_df(f"SELECT sample_id, {columns} FROM samples WHERE dataset = ? ORDER BY sample_id",
                                 [dataset])
        ids = pl.DataFrame({"sample_id": [str(s) for s in sample_ids]}, schema={"sample_id": pl.Utf8})
        with self.cursor() as cur:
            cur.register("_i", ids.with_row_index("_pos").to_arrow())
            try:
                return _frame(cur, f"""SELECT s.sample_id, {columns} FROM samples s
                                       JOIN _i ON _i.sample_id = s.sample_id WHERE s.dataset = ? ORDER BY _i._pos""",
                              [dataset])
            finally:
                cur.unregister("_i")
