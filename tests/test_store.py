"""Tests for core/store.py: migrations, transactions, the cross-process file lock, threads,
the review queue, the audit log and the embeddings cache."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from factories import CONNECT_WHEN_FREE
from factories import release_holder as _release
from factories import spawn_holder as _spawn_holder
from thread_helpers import run_threads

from core.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    PermissionDenied,
    Store,
    StoreBusy,
    StoreError,
    open_store,
)

ROOT = Path(__file__).resolve().parents[1]

EXPECTED_TABLES = {
    "schema_version", "datasets", "samples", "annotations", "predictions", "reviews", "audit_log",
    "embeddings", "imports", "import_errors", "review_queue", "imported_round_metrics",
}


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def db(tmp_path) -> Store:
    return open_store(tmp_path / "s.duckdb")


def _tables(store: Store) -> set[str]:
    df = store.query_df("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")
    return set(df["table_name"].to_list())


def _seed(store: Store, dataset: str = "ds", ids: tuple[str, ...] = ("s1", "s2", "s3")) -> None:
    """Write a small dataset through the store's own import write (no ingest involved)."""
    n = len(ids)
    samples = pl.DataFrame({
        "sample_id": list(ids),
        "instruction": [None] * n, "input": [None] * n, "output": [None] * n,
        "text": [f"text of {i}" for i in ids],
        "batch": ["b1"] * n, "round": [1] * n, "meta": [None] * n,
    }, schema={"sample_id": pl.Utf8, "instruction": pl.Utf8, "input": pl.Utf8, "output": pl.Utf8,
               "text": pl.Utf8, "batch": pl.Utf8, "round": pl.Int32, "meta": pl.Utf8})
    annotations = pl.DataFrame({
        "sample_id": list(ids), "annotator": ["ann"] * n, "label": ["pos"] * n, "confidence": [None] * n,
    }, schema={"sample_id": pl.Utf8, "annotator": pl.Utf8, "label": pl.Utf8, "confidence": pl.Float64})
    predictions = pl.DataFrame(schema={"sample_id": pl.Utf8, "round": pl.Int32, "model": pl.Utf8,
                                       "predicted": pl.Utf8, "confidence": pl.Float64,
                                       "probs": pl.List(pl.Float64)})
    errors = pl.DataFrame(schema={"__row": pl.Int64, "reason": pl.Utf8, "raw": pl.Utf8})
    store.write_import(dataset=dataset, labels=["neg", "pos"], file=f"{dataset}.jsonl",
                       file_sha256="0" * 64, fmt="jsonl", rows_total=n, samples=samples,
                       annotations=annotations, predictions=predictions, errors=errors, actor="test")


# --------------------------------------------------------------------------- migrations


def test_migrations_create_every_table_and_record_version(db):
    assert EXPECTED_TABLES <= _tables(db)
    versions = db.query_df("SELECT version, description, applied_at FROM schema_version ORDER BY version")
    assert versions["version"].to_list() == [v for v, _, _ in MIGRATIONS]
    assert versions["applied_at"].null_count() == 0
    assert db.schema_version() == SCHEMA_VERSION
    assert all(v == 0 for v in db.table_counts().values())


def test_reopening_does_not_reapply_migrations(tmp_path):
    path = tmp_path / "s.duckdb"
    first = open_store(path)
    _seed(first)
    before = first.table_counts()
    applied = first.query_df("SELECT version, applied_at FROM schema_version")
    del first
    second = open_store(path)
    assert second.migrate() == SCHEMA_VERSION  # explicit re-run is a no-op too
    assert second.query_df("SELECT version, applied_at FROM schema_version").equals(applied)
    assert second.table_counts() == before


def test_newer_schema_than_code_is_refused(tmp_path):
    path = tmp_path / "s.duckdb"
    store = open_store(path)
    with store.transaction() as cur:
        cur.execute("INSERT INTO schema_version (version, description) VALUES (?, ?)",
                    [SCHEMA_VERSION + 1, "from the future"])
    with pytest.raises(StoreError, match="newer than this code"):
        open_store(path)


# --------------------------------------------------------------------------- transactions


def test_transaction_rolls_back_on_python_exception(db):
    _seed(db)
    before = db.table_counts()
    with pytest.raises(RuntimeError, match="boom"):
        with db.transaction() as cur:
            cur.execute("INSERT INTO datasets (name, labels) VALUES (?, ?)", ["half", ["a"]])
            cur.execute("DELETE FROM samples")
            db.audit("system:t", "half.written")  # nested use joins the same transaction
            raise RuntimeError("boom")
    assert db.table_counts() == before
    assert not db.has_dataset("half")


def test_transaction_rolls_back_on_sql_error(db):
    _seed(db)
    before = db.table_counts()
    with pytest.raises(StoreError):  # no DuckDB exception leaves the store package (a PK clash: a conflict)
        with db.transaction() as cur:
            cur.execute("INSERT INTO datasets (name, labels) VALUES (?, ?)", ["other", ["a"]])
            cur.execute("INSERT INTO datasets (name, labels) VALUES (?, ?)", ["ds", ["a"]])  # PK clash
    assert db.table_counts() == before
    assert db.dataset_names() == ["ds"]
    # and the store is usable afterwards
    db.audit("system:t", "after.rollback")
    assert db.table_counts()["audit_log"] == before["audit_log"] + 1


def test_write_import_is_one_transaction(db, monkeypatch):
    """A failure at the very end of an import write leaves no dataset, sample or audit row."""
    before = db.table_counts()
    real = Store._audit

    def failing(cur, actor, action, *args, **kwargs):
        if action == "import":
            raise RuntimeError("disk full")
        return real(cur, actor, action, *args, **kwargs)

    monkeypatch.setattr(Store, "_audit", staticmethod(failing))
    with pytest.raises(RuntimeError, match="disk full"):
        _seed(db)
    monkeypatch.undo()
    assert db.table_counts() == before
    _seed(db)
    assert db.table_counts()["samples"] == 3


# --------------------------------------------------------------------------- other processes


def test_second_process_holding_the_file_gives_store_busy(tmp_path):
    path = tmp_path / "s.duckdb"
    store = open_store(path, busy_timeout=0.5)
    _seed(store)
    before = store.table_counts()
    holder = _spawn_holder(path)
    try:
        with pytest.raises(StoreBusy, match="store busy") as info:
            store.table_counts()
        assert "another process" in str(info.value)
        with pytest.raises(StoreBusy, match="store busy"):
            store.audit("system:t", "while.busy")
        with pytest.raises(StoreBusy, match="store busy"):
            open_store(path, busy_timeout=0.5)
    finally:
        _release(holder)
    assert holder.returncode == 0
    # The holder is gone: the same Store object works again and nothing was lost.
    assert store.table_counts() == before
    store.audit("system:t", "after.busy")
    assert store.table_counts()["audit_log"] == before["audit_log"] + 1
    assert store.samples("ds")["sample_id"].to_list() == ["s1", "s2", "s3"]


def test_lock_is_released_between_operations(tmp_path):
    """Another process can open the file and write while our Store object is alive.

    The store may keep the file open for a short linger after an operation, so the other
    process waits for the lock (bounded, like the CLI does) instead of failing at once.
    """
    path = tmp_path / "s.duckdb"
    store = open_store(path)
    _seed(store)
    writer = CONNECT_WHEN_FREE + textwrap.dedent(
        """
        con.execute("INSERT INTO audit_log (actor, action, dataset) VALUES ('other-process', 'cli.write', 'ds')")
        con.close()
        """
    )
    for i in range(2):  # twice: also after our store has worked in between
        done = subprocess.run([sys.executable, "-c", writer, str(path)], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        log = store.audit_log(actor="other-process")
        assert log.height == i + 1
        store.audit("system:us", "in.between")
    assert store.samples("ds").height == 3
    assert store.audit_log(action="in.between").height == 2


def test_close_releases_the_file_at_once(tmp_path):
    path = tmp_path / "s.duckdb"
    store = open_store(path)
    _seed(store)
    store.close()
    con = duckdb.connect(str(path))  # no retry: the lock must be free right after close()
    assert con.execute("SELECT count(*) FROM samples").fetchone()[0] == 3
    con.close()
    assert store.table_counts()["samples"] == 3  # and the store reopens on demand


# --------------------------------------------------------------------------- threads


def test_threads_share_one_store(db):
    _seed(db)
    n_threads, n_iter = 8, 6
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(n_iter):
                db.audit(f"system:thread-{t}", "thread.write", "ds", None, None, str(i))
                assert db.samples("ds").height == 3
                assert db.audit_log(actor=f"system:thread-{t}").height == i + 1
                with db.transaction() as cur:
                    cur.execute("INSERT INTO import_errors (import_id, dataset, file, row_number, reason) "
                                "VALUES (?, ?, ?, ?, ?)", [t, "ds", f"t{t}", i, "thread"])
                db.table_counts()
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)

    run_threads(work, n_threads)
    assert errors == []
    counts = db.table_counts()
    assert counts["import_errors"] == n_threads * n_iter
    assert db.audit_log(action="thread.write").height == n_threads * n_iter
    # every thread gave its cursor back, so the file lock can be released
    assert db._users == 0


# --------------------------------------------------------------------------- queue and audit


def test_enqueue_skips_duplicates_and_rejects_unknown_ids(db):
    _seed(db)
    assert db.enqueue("ds", ["s1", "s2", "s1"], "disagreement", "lead", priority=0.5) == 2
    assert db.enqueue("ds", ["s2", "s3"], "disagreement", "lead") == 1
    assert db.enqueue("ds", ["s1"], "low confidence", "lead") == 1  # another reason is another entry
    q = db.queue("ds")
    assert sorted(q.filter(pl.col("reason") == "disagreement")["sample_id"].to_list()) == ["s1", "s2", "s3"]
    assert q.height == 4
    before = db.table_counts()
    with pytest.raises(StoreError, match="unknown sample id"):
        db.enqueue("ds", ["s1", "nope"], "other", "lead")
    assert db.table_counts() == before
    with pytest.raises(ValueError):
        db.enqueue("ds", ["s1", "s2"], "x", "lead", priority=[1.0])
    assert db.enqueue("ds", [], "x", "lead") == 0


def test_audit_rows_are_written(db):
    _seed(db)
    db.enqueue("ds", ["s1"], "r", "lead")
    db.set_dataset_setting("ds", "confidence_threshold", 0.7, actor="lead")
    db.audit("system:rules", "custom.action", "ds", "s1", "a", "b", {"note": "中文 ✓"})
    log = db.audit_log(dataset="ds")
    actions = log["action"].to_list()
    assert actions[0] == "custom.action"  # newest first
    for action in ("dataset.create", "import", "queue.add", "dataset.setting", "custom.action"):
        assert action in actions
    row = log.filter(pl.col("action") == "custom.action").row(0, named=True)
    assert (row["actor"], row["sample_id"], row["old_value"], row["new_value"]) == ("system:rules", "s1", "a", "b")
    with pytest.raises(PermissionDenied):  # a person cannot forge an audit row
        db.audit("lead", "forged.action", "ds")
    assert db.audit_log(action="forged.action").height == 0
    assert json.loads(row["detail"]) == {"note": "中文 ✓"}
    assert row["logged_at"] is not None
    assert db.get_dataset("ds").settings == {"confidence_threshold": 0.7}
    assert db.audit_log(actor="nobody").height == 0


# --------------------------------------------------------------------------- embeddings cache


def test_embeddings_cache_round_trip(db):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((4, 16)).astype(np.float32)
    hashes = [f"h{i}" for i in range(4)]
    assert db.cached_embeddings("m", hashes) == {}
    db.save_embeddings("m", hashes, vectors)
    got = db.cached_embeddings("m", hashes + ["missing"])
    assert set(got) == set(hashes)
    for h, v in zip(hashes, vectors):
        assert got[h].dtype == np.float32
        np.testing.assert_array_equal(got[h], v)  # float32 in, float32 out: bit-exact
    # idempotent: saving again (even with other values) keeps the first vectors and adds no rows
    db.save_embeddings("m", hashes, vectors + 1)
    db.save_embeddings("m", hashes[:2] + hashes[:2], np.vstack([vectors[:2], vectors[:2]]))
    assert db.table_counts()["embeddings"] == 4
    np.testing.assert_array_equal(db.cached_embeddings("m", ["h0"])["h0"], vectors[0])
    # models are separate caches
    assert db.cached_embeddings("other-model", hashes) == {}
    db.save_embeddings("other-model", ["h0"], np.ones((1, 3), dtype=np.float64))
    other = db.cached_embeddings("other-model", ["h0"])["h0"]
    assert other.dtype == np.float32 and other.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError):
        db.save_embeddings("m", ["a", "b"], vectors[:1])
    db.save_embeddings("m", [], np.zeros((0, 16), dtype=np.float32))
    assert db.cached_embeddings("m", []) == {}
