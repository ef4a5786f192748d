"""Tests of the pass cache tables (core.store.passes): round trip, samples without rows, stale entries, atomic saves."""

from __future__ import annotations

import polars as pl
import pytest
from factories import import_rows

from core.store import StoreError


@pytest.fixture
def ds(store, tmp_path):
    rows = [{"id": f"s{i}", "instruction": f"question {i}", "output": f"answer {i}", "label": "a", "annotator": "x"}
            for i in range(5)]
    import_rows(store, tmp_path, rows, name="d", labels=["a", "b"])
    return store


def keys(store):
    return store.samples("d").select("sample_id", "content_hash")


def test_round_trip_and_samples_without_rows(ds):
    k = keys(ds)
    rows = pl.DataFrame({"sample_id": ["s1", "s1", "s3"], "n": [1, 2, 3]})
    assert ds.save_pass_rows("d", "p", 1, "", k, rows) == 5
    got, missing = ds.cached_pass_rows("d", "p", 1, "", k)
    assert missing.height == 0  # s0, s2, s4 gave no row and are still computed
    assert got.to_dicts() == rows.to_dicts()
    assert ds.save_pass_rows("d", "p", 1, "", k, rows) == 0  # held already: kept, not duplicated
    assert ds.pass_cache_counts("d").select("samples", "parts", "rows").row(0) == (5, 1, 3)
    none, missing = ds.cached_pass_rows("d", "p", 1, "other-options", k)
    assert none is None and missing["sample_id"].to_list() == k["sample_id"].to_list()


def test_stale_hash_is_missing_and_pruned(ds):
    k = keys(ds)
    ds.save_pass_rows("d", "p", 1, "", k, pl.DataFrame({"sample_id": ["s2"], "n": [7]}))
    changed = k.with_columns(pl.when(pl.col("sample_id") == "s2").then(pl.lit("new")).otherwise("content_hash")
                             .alias("content_hash"))
    got, missing = ds.cached_pass_rows("d", "p", 1, "", changed)
    assert missing["sample_id"].to_list() == ["s2"] and got.height == 0
    with ds.transaction() as cur:
        cur.execute("UPDATE samples SET content_hash = 'new' WHERE dataset = 'd' AND sample_id = 's2'")
    ds.save_pass_rows("d", "p", 1, "", missing, pl.DataFrame({"sample_id": ["s2"], "n": [8]}))
    got, missing = ds.cached_pass_rows("d", "p", 1, "", changed)
    assert missing.height == 0 and got["n"].to_list() == [8]  # the old part's row is not returned
    # the stale entry is pruned; its old part stays while it holds the other samples' entries
    assert ds.pass_cache_counts("d").select("samples", "parts").row(0) == (5, 2)


def test_parts_split_and_empty_keys(ds, monkeypatch):
    from core.store import passes

    monkeypatch.setattr(passes, "PART_SAMPLES", 2)
    k = keys(ds)
    ds.save_pass_rows("d", "p", 1, "", k, pl.DataFrame({"sample_id": [f"s{i}" for i in range(5)], "n": range(5)}))
    assert ds.pass_cache_counts("d")["parts"].item() == 3
    got, _ = ds.cached_pass_rows("d", "p", 1, "", k.reverse())
    assert sorted(got["n"].to_list()) == [0, 1, 2, 3, 4]
    none, missing = ds.cached_pass_rows("d", "p", 1, "", k.head(0))
    assert none is None and missing.height == 0


def test_a_failed_save_changes_nothing(ds, monkeypatch):
    from core.store.passes import PassCache

    def boom(self, cur, *args):
        cur.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(PassCache, "_prune_passes", boom)
    with pytest.raises(StoreError):
        ds.save_pass_rows("d", "p", 1, "", keys(ds), pl.DataFrame({"sample_id": ["s1"], "n": [1]}))
    assert ds.pass_cache_counts("d").height == 0
    assert ds.cached_pass_rows("d", "p", 1, "", keys(ds))[1].height == 5


def test_rows_without_sample_id_are_refused(ds):
    with pytest.raises(ValueError, match="sample_id"):
        ds.save_pass_rows("d", "p", 1, "", keys(ds), pl.DataFrame({"n": [1]}))


def test_sample_shapes_and_records(ds):
    shapes = ds.sample_shapes("d")
    assert shapes.columns == ["sample_id", "shape", "has_record"] and shapes.height == 5
    recs = ds.sample_records_of("d", ["s3", "s1", "missing"])
    assert recs["sample_id"].to_list() == ["s3", "s1"]
