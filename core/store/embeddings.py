"""The embeddings cache (table ``embeddings``): vectors by (model id, content hash)."""

from __future__ import annotations

import numpy as np
import polars as pl

from core.store.db import Database, _frame


class EmbeddingCache(Database):
    """The two methods :class:`core.embeddings.EmbeddingStore` needs."""

    def cached_embeddings(self, model_id: str, hashes: list[str]) -> dict[str, np.ndarray]:
        """Cached vectors for ``hashes`` under ``model_id`` (missing ones are absent)."""
        if not hashes:
            return {}
        with self.cursor() as cur:
            cur.register("_h", pl.DataFrame({"h": list(dict.fromkeys(hashes))}).to_arrow())
            try:
                df = _frame(cur, 
                    """SELECT e.content_hash, e.vector FROM embeddings e SEMI JOIN _h ON e.content_hash = _h.h
                       WHERE e.model_id = ?""",
                    [model_id],
                )
            finally:
                cur.unregister("_h")
        if df.height == 0:
            return {}
        width = len(df["vector"][0])
        vectors = df["vector"].list.to_array(width).to_numpy().astype(np.float32, copy=False)
        return dict(zip(df["content_hash"].to_list(), vectors))

    def save_embeddings(self, model_id: str, hashes: list[str], vectors: np.ndarray) -> None:
        """Store vectors (one row per hash) under ``model_id``; existing entries are kept."""
        if len(hashes) != len(vectors):
            raise ValueError(f"{len(hashes)} hashes but {len(vectors)} vectors")
        if not hashes:
            return
        # a 2-D array as one Series (an Array column): 40x faster than a dict of columns, which reads it row by row
        frame = (pl.DataFrame({"content_hash": hashes}, schema={"content_hash": pl.Utf8})
                 .with_columns(pl.Series("vector", np.ascontiguousarray(vectors, dtype=np.float32)))
                 .unique("content_hash", keep="first", maintain_order=True))
        with self.transaction() as cur:
            cur.register("_v", frame.to_arrow())
            try:
                # the primary key (model_id, content_hash) skips what is held: an anti-join against every cached
                # vector of the model cost each save a scan (quadratic over a million texts saved 1,024 at a time)
                cur.execute(
                    """INSERT OR IGNORE INTO embeddings (model_id, content_hash, vector)
                       SELECT ?, v.content_hash, v.vector::FLOAT[] FROM _v v""",
                    [model_id],
                )
            finally:
                cur.unregister("_v")
