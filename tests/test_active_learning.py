"""Tests for core.active_learning (pool, strategies with score and reason, map, export, queue) and
the `python -m core embed` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core import active_learning as al
from core.embeddings import EmbeddingModel

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["a", "b", "c"]


# --------------------------------------------------------------------------- frame fixtures


def _samples(n: int, batch=None, rounds=None) -> pl.DataFrame:
    return pl.DataFrame({
        "sample_id": [f"s{i:02d}" for i in range(n)],
        "instruction": [f"问题 {i}" for i in range(n)],
        "input": [None] * n,
        "output": [f"回答 {i}" if i % 2 else None for i in range(n)],
        "text": [None] * n,
        "batch": batch or ["b1"] * n,
        "round": rounds or [1] * n,
    }, schema_overrides={"input": pl.Utf8, "text": pl.Utf8, "round": pl.Int64})


def _ann(rows) -> pl.DataFrame:
    return pl.DataFrame(rows or [], schema={"sample_id": pl.Utf8, "annotator": pl.Utf8, "label": pl.Utf8},
                        orient="row")


def _rev(rows) -> pl.DataFrame:
    return pl.DataFrame(rows or [], schema={"sample_id": pl.Utf8, "version": pl.Int64, "new_label": pl.Utf8},
                        orient="row")


def _pred(rows) -> pl.DataFrame:
    return pl.DataFrame(rows or [], schema={"sample_id": pl.Utf8, "round": pl.Int64, "predicted": pl.Utf8,
                                            "confidence": pl.Float64, "probs": pl.List(pl.Float64)}, orient="row")


def _queue(rows) -> pl.DataFrame:
    return pl.DataFrame(rows or [], schema={"sample_id": pl.Utf8, "status": pl.Utf8}, orient="row")


def _pool(n=6, ann=None, rev=None, pred=None, queue=None, **kw) -> al.Pool:
    return al.pool_from_frames("ds", LABELS, _samples(n), _ann(ann), _rev(rev), _pred(pred), _queue(queue), **kw)


# hand-checked margins: 1 - (p1 - p2)
PROBS = {
    "s00": [0.9, 0.05, 0.05],  # margin 0.15, least conf 0.10
    "s01": [0.5, 0.4, 0.1],    # margin 0.90, least conf 0.50
    "s02": [0.34, 0.33, 0.33],  # margin 0.99, least conf 0.66
    "s03": [0.6, 0.3, 0.1],    # margin 0.70, least conf 0.40
    "s04": [1.0, 0.0, 0.0],    # margin 0.00
    "s05": [0.45, 0.45, 0.10],  # margin 1.00, least conf 0.55
}


def _pred_rows(round_=1, probs=PROBS):
    return [(sid, round_, LABELS[int(np.argmax(p))], float(max(p)), p) for sid, p in probs.items()]


# --------------------------------------------------------------------------- prob_matrix


def test_prob_matrix_pads_shorter_vectors_and_falls_back_to_confidence():
    preds = _pred([
        ("x", 1, "a", 0.7, [0.7, 0.3]),        # from before label c existed: padded with 0
        ("y", 1, "b", 0.8, None),               # no probs: 0.8 on b, 0.1 each elsewhere
        ("z", 1, "zzz", 0.9, None),             # unknown label, no probs: unusable
        ("w", 1, "a", None, [0.0, 0.0, 0.0]),   # sums to 0: unusable
    ])
    probs, has = al.prob_matrix(preds, LABELS, ["x", "y", "z", "w", "missing"])
    np.testing.assert_allclose(probs[0], [0.7, 0.3, 0.0])
    np.testing.assert_allclose(probs[1], [0.1, 0.8, 0.1])
    assert has.tolist() == [True, True, False, False, False]
    assert (probs[2:] == 0).all()


def _prob_matrix_loop(predictions, labels, sample_ids):
    """The row-by-row reading prob_matrix replaced (issue 18: seconds at a million predictions): the reference."""
    import math

    c, n = len(labels), len(sample_ids)
    out, has = np.zeros((n, max(c, 1))), np.zeros(n, dtype=bool)
    pos = {str(s): i for i, s in enumerate(sample_ids)}
    lab_idx = {lab: j for j, lab in enumerate(labels)}
    preds = predictions.unique("sample_id", keep="last", maintain_order=True)
    for sid, predicted, conf, probs in zip(preds["sample_id"].to_list(), preds["predicted"].to_list(),
                                           preds["confidence"].to_list(), preds["probs"].to_list()):
        i = pos.get(str(sid))
        if i is None:
            continue
        row = np.zeros(c)
        if probs is not None and len(probs):
            vals = np.asarray([np.nan if v is None else v for v in probs[:c]], dtype=np.float64)
            row[: vals.size] = vals
        elif predicted in lab_idx:
            p = 1.0 if conf is None or not math.isfinite(conf) else min(max(float(conf), 0.0), 1.0)
            row[:] = (1.0 - p) / (c - 1) if c > 1 else 0.0
            row[lab_idx[predicted]] = p
        else:
            continue
        if not np.isfinite(row).all() or (row < 0).any() or row.sum() <= 0:
            continue
        out[i], has[i] = row / row.sum(), True
    return out, has


@pytest.mark.parametrize("seed", range(6))
def test_prob_matrix_equals_the_row_by_row_reading(seed):
    rng = np.random.default_rng(seed)
    labels = ["退款", "shipping", "billing", "other"][: 1 + seed % 4]
    rows = []
    for k in range(400):
        sid = f"s{rng.integers(0, 300)}"  # repeats: the last one wins
        kind = rng.integers(0, 6)
        probs = None
        if kind == 0:
            probs = rng.random(rng.integers(1, 7)).round(3).tolist()  # shorter or longer than the label set
        elif kind == 1:
            probs = [None if rng.random() < 0.3 else float(v) for v in rng.random(len(labels))]
        elif kind == 2:
            probs = [float(v) for v in rng.normal(size=len(labels))]  # negatives: unusable
        elif kind == 3:
            probs = []
        conf = [None, float("nan"), float(rng.random()), 1.7, -0.2][rng.integers(0, 5)]
        predicted = [*labels, "unknown", None][rng.integers(0, len(labels) + 2)]
        rows.append((sid, 1, predicted, conf, probs))
    preds = _pred(rows)
    ids = [f"s{i}" for i in range(0, 320, 1)][::-1] + ["s5"]  # unknown ids, a repeated id, any order
    got, got_has = al.prob_matrix(preds, labels, ids)
    want, want_has = _prob_matrix_loop(preds, labels, ids)
    assert got_has.tolist() == want_has.tolist()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_prob_matrix_renormalises_and_last_prediction_wins():
    preds = _pred([("x", 1, "a", 0.5, [0.5, 0.5, 0.0]), ("x", 1, "a", 0.6, [0.6, 0.2, 0.2 + 1e-4])])
    probs, has = al.prob_matrix(preds, LABELS, ["x"])
    assert has.tolist() == [True]
    assert probs[0].sum() == pytest.approx(1.0)
    assert probs[0][0] == pytest.approx(0.6 / 1.0001)


# --------------------------------------------------------------------------- the pool


def test_unlabeled_pool_drops_gold_but_keeps_ties():
    ann = [("s00", "ann1", "a"),                                  # majority of one: gold
           ("s01", "ann1", "a"), ("s01", "ann2", "b"),            # tie: no gold -> unlabeled
           ("s02", "ann1", "a"), ("s02", "ann2", "a"), ("s02", "ann3", "b")]  # majority a
    rev = [("s03", 1, "c")]                                       # reviewed: gold
    pool = _pool(6, ann=ann, rev=rev)
    assert pool.frame["sample_id"].to_list() == ["s01", "s04", "s05"]
    assert pool.kind == "unlabeled"
    assert _pool(6, ann=ann, rev=rev, kind="all").n == 6


def test_pool_texts_join_the_text_fields():
    pool = _pool(2)
    assert pool.texts == ["问题 0", "问题 1\n回答 1"]


def test_batch_and_round_pools():
    samples = _samples(4, batch=["b1", "b2", "b1", "b2"], rounds=[1, 1, 2, 2])
    args = ("ds", LABELS, samples, _ann(None), _rev(None), _pred(None), _queue(None))
    assert al.pool_from_frames(*args, kind="batch", batch="b2").frame["sample_id"].to_list() == ["s01", "s03"]
    assert al.pool_from_frames(*args, kind="round", round=2).frame["sample_id"].to_list() == ["s02", "s03"]
    with pytest.raises(ValueError, match="needs a batch"):
        al.pool_from_frames(*args, kind="batch")
    with pytest.raises(ValueError, match="pool: expected one of"):
        al.pool_from_frames(*args, kind="everything")


def test_reviewed_and_queued_are_excluded_by_default_and_can_be_kept():
    rev = [("s01", 1, "a")]
    queue = [("s02", "open"), ("s03", "done"), ("s04", "claimed")]
    pool = _pool(6, rev=rev, queue=queue, kind="all")
    assert pool.frame.filter(pl.col("candidate"))["sample_id"].to_list() == ["s00", "s03", "s05"]
    assert (pool.excluded_reviewed, pool.excluded_queued) == (1, 2)
    kept = _pool(6, rev=rev, queue=queue, kind="all", exclude_reviewed=False, exclude_queued=False)
    assert kept.n_candidates() == 6
    only_rev = _pool(6, rev=rev, queue=queue, kind="all", exclude_queued=False)
    assert only_rev.n_candidates() == 5


def test_prediction_round_defaults_to_latest_and_rows_without_one_are_not_scored():
    pred = _pred_rows(1) + [("s00", 2, "b", 0.6, [0.2, 0.6, 0.2]), ("s01", 2, "a", 0.9, [0.9, 0.05, 0.05])]
    pool = _pool(6, pred=pred)
    assert pool.pred_round == 2 and pool.pred_rounds == [1, 2]
    assert pool.frame["has_pred"].to_list() == [True, True, False, False, False, False]
    assert pool.frame["predicted"].to_list()[:3] == ["b", "a", None]
    assert pool.n_candidates("margin") == 2 and pool.n_candidates("k_center") == 6
    assert _pool(6, pred=pred, pred_round=1).n_candidates("margin") == 6
    with pytest.raises(ValueError, match="prediction round 7 does not exist"):
        _pool(6, pred=pred, pred_round=7)


# --------------------------------------------------------------------------- uncertainty strategies


def test_margin_picks_scores_and_reasons_are_hand_checked():
    picks = al.select(_pool(6, pred=_pred_rows()), "margin", 3)
    assert picks["sample_id"].to_list() == ["s05", "s02", "s01"]
    np.testing.assert_allclose(picks["score"].to_numpy(), [1.0, 0.99, 0.90])
    # the reason prints the real margin (p1 - p2), not the score (1 - margin)
    assert picks["reason"].to_list() == ["margin 0.00 between the top two labels",
                                         "margin 0.01 between the top two labels",
                                         "margin 0.10 between the top two labels"]
    assert picks["rank"].to_list() == [1, 2, 3]
    assert list(picks.columns) == list(al.PICK_COLUMNS)


def test_least_confidence_and_entropy():
    pool = _pool(6, pred=_pred_rows())
    lc = al.select(pool, "least_confidence", 2)
    assert lc["sample_id"].to_list() == ["s02", "s05"]
    assert lc["reason"][0] == "least confidence: top probability 0.34"  # the score is 1 - 0.34
    ent = al.select(pool, "entropy", 1)
    assert ent["sample_id"].to_list() == ["s02"]  # nearest the uniform distribution
    assert ent["score"][0] == pytest.approx(-sum(p * np.log(p) for p in PROBS["s02"]))


def test_uncertainty_skips_excluded_and_unpredicted_rows():
    pred = [r for r in _pred_rows() if r[0] != "s02"]
    picks = al.select(_pool(6, pred=pred, queue=[("s05", "open")]), "margin", 2)
    assert picks["sample_id"].to_list() == ["s01", "s03"]


def test_clear_errors_for_empty_pool_large_k_and_missing_inputs():
    pool = _pool(6, pred=_pred_rows())
    with pytest.raises(ValueError, match=r"budget k = 7 is larger than the pool: only 6 samples with a prediction"):
        al.select(pool, "margin", 7)
    with pytest.raises(ValueError, match="needs model predictions"):
        al.select(_pool(6), "entropy", 1)
    with pytest.raises(ValueError, match="needs text embeddings"):
        al.select(pool, "k_center", 2)
    with pytest.raises(ValueError, match="strategy: expected one of"):
        al.select(pool, "random", 2)
    with pytest.raises(ValueError, match="budget k: expected an integer >= 1"):
        al.select(pool, "margin", 0)
    everything_labeled = _pool(2, ann=[("s00", "x", "a"), ("s01", "x", "b")])
    with pytest.raises(ValueError, match="the pool is empty"):
        al.select(everything_labeled, "k_center", 1, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="expected 6 rows"):
        al.select(pool, "k_means", 2, np.zeros((5, 2)))


# --------------------------------------------------------------------------- diversity strategies

# six points on a line: 0, 1, 2, 10, 11, 20 (mean 7.33 -> nearest is 10 = row 3)
LINE = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [20.0]])


def test_k_center_picks_in_order_with_distances():
    picks = al.select(_pool(6), "k_center", 3, LINE)
    # first: nearest the mean (10); then farthest from {10}: 0 (distance 10, lower index than 20);
    # then farthest from {10, 0}: 20 (distance 10); then 2 or 11... -> 2 is 2 from 0, 11 is 1 from 10:
    # row 2 (distance 2)
    picks = al.select(_pool(6), "k_center", 4, LINE)
    assert picks["sample_id"].to_list() == ["s03", "s00", "s05", "s02"]
    np.testing.assert_allclose(picks["score"].to_numpy(), [10.0, 10.0, 10.0, 2.0])
    assert picks["reason"].to_list() == ["k-center pick #1 (nearest the pool mean, covers radius 10.00)",
                                         "k-center pick #2 (distance 10.00)", "k-center pick #3 (distance 10.00)",
                                         "k-center pick #4 (distance 2.00)"]


def test_k_center_treats_excluded_rows_as_centers():
    # s05 (20) is queued: it already covers the right end, so the picks go left
    pool = _pool(6, queue=[("s05", "open")])
    picks = al.select(pool, "k_center", 2, LINE)
    assert picks["sample_id"].to_list() == ["s00", "s03"]
    assert picks["score"].to_list() == [20.0, 10.0]
    assert "s05" not in picks["sample_id"].to_list()


def test_k_means_one_pick_per_cluster():
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [10, 0], [0, 10]], dtype=float)
    x = np.concatenate([c + rng.normal(scale=0.3, size=(5, 2)) for c in centers])
    picks = al.select(_pool(15), "k_means", 3, x)
    clusters = sorted(int(r) // 5 for r in picks["row"].to_list())
    assert clusters == [0, 1, 2]
    assert picks["score"].sum() == pytest.approx(1.0)
    assert all(r.startswith("k-means cluster #") and "represents 5 samples" in r for r in picks["reason"])


def test_hybrid_and_adaptive_hybrid_reasons():
    pool = _pool(6, pred=_pred_rows())
    picks = al.select(pool, "hybrid", 2, LINE, pool_factor=2)
    # the 4 most uncertain by margin: s05, s02, s01, s03 -> k-center among rows 1, 2, 3, 5
    assert set(picks["sample_id"].to_list()) <= {"s01", "s02", "s03", "s05"}
    assert picks["reason"][0].startswith("margin ")
    assert "among the 4 most uncertain (first center)" in picks["reason"][0]
    assert "(distance " in picks["reason"][1]
    ad = al.select(pool, "adaptive_hybrid", 2, LINE, round_index=9, n_rounds=10)
    # last round: pool factor 1 -> exactly the two most uncertain
    assert set(ad["sample_id"].to_list()) == {"s05", "s02"}
    assert "round 10/10" in ad["reason"][0]


@pytest.mark.parametrize("strategy", list(al.STRATEGIES))
def test_every_strategy_gives_distinct_candidate_picks(strategy):
    rng = np.random.default_rng(1)
    n = 30
    probs = rng.dirichlet(np.ones(3), size=n)
    pred = [(f"s{i:02d}", 1, "a", float(p.max()), p.tolist()) for i, p in enumerate(probs)]
    pool = _pool(n, pred=pred, queue=[("s00", "open"), ("s07", "open")], rev=None)
    x = rng.normal(size=(n, 4))
    picks = al.select(pool, strategy, 8, x)
    ids = picks["sample_id"].to_list()
    assert len(set(ids)) == 8 and not {"s00", "s07"} & set(ids)
    assert np.isfinite(picks["score"].to_numpy()).all()
    assert picks["reason"].str.len_chars().min() > 0


# --------------------------------------------------------------------------- map and export


def test_pool_map_keeps_every_pick_when_subsampling():
    rng = np.random.default_rng(2)
    n = 40
    pool = _pool(n, pred=[(f"s{i:02d}", 1, "b", 0.5, [0.25, 0.5, 0.25]) for i in range(0, n, 2)])
    x = rng.normal(size=(n, 8))
    picks = al.select(pool, "k_center", 5, x)
    m = al.pool_map(pool, picks, x, max_points=12)
    assert m.height == 12 and m["picked"].sum() == 5
    assert set(picks["sample_id"]) <= set(m["sample_id"])
    assert set(m["predicted"].to_list()) <= {"b", "(no prediction)"}
    assert m.filter(pl.col("picked"))["rank"].sort().to_list() == [1, 2, 3, 4, 5]
    assert m.filter(~pl.col("picked"))["rank"].null_count() == 7
    full = al.pool_map(pool, None, x)
    assert full.height == n and np.isfinite(full["x"].to_numpy()).all()
    assert al.pool_map(pool, picks, x, method="tsne").height == n
    rows = al.map_rows(pool, picks, max_points=10)
    assert rows.size == 10 and set(picks["row"].to_list()) <= set(rows.tolist())
    xy = al.project_2d(x[rows])
    framed = al.map_frame(pool, picks, xy, rows)
    assert framed["sample_id"].to_list() == [f"s{i:02d}" for i in rows]
    np.testing.assert_allclose(framed["x"].to_numpy(), xy[:, 0])
    assert al.project_2d(x[:1]).tolist() == [[0.0, 0.0]]
    has = pool.frame["has_pred"].to_numpy()
    only = al.map_rows(pool, picks, only=has)  # e.g. a map of the probabilities: predicted rows and picks
    assert set(only.tolist()) == set(np.flatnonzero(has).tolist()) | set(picks["row"].to_list())
    with pytest.raises(ValueError, match="projection"):
        al.pool_map(pool, picks, x, method="umap")


def test_csv_and_jsonl_exports():
    picks = al.select(_pool(6, pred=_pred_rows()), "margin", 2)
    csv = al.picks_csv(picks, "margin").decode("utf-8")
    assert csv.startswith("\ufeffrank,sample_id,instruction")
    back = pl.read_csv(csv.encode("utf-8"))
    assert back["sample_id"].to_list() == ["s05", "s02"] and back["strategy"].to_list() == ["margin"] * 2
    lines = al.picks_jsonl(picks, "margin").decode("utf-8").splitlines()
    first = json.loads(lines[0])
    assert first["id"] == "s05" and first["instruction"] == "问题 5" and first["output"] == "回答 5"
    assert "input" not in first and first["reason"] == "margin 0.00 between the top two labels" and first["strategy"] == "margin"
    assert json.loads(lines[1])["id"] == "s02" and "output" not in json.loads(lines[1])
    assert al.picks_jsonl(picks.clear()) == b""


# --------------------------------------------------------------------------- with a store


def _import(store, tmp_path, rows, name="ds"):
    from core.ingest import import_file

    f = tmp_path / f"{name}.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return import_file(store, f, name, labels=LABELS)


def _store_rows():
    rows = []
    for i, (sid, p) in enumerate(PROBS.items()):
        row = {"id": sid, "text": f"快递 {i} 什么时候到", "batch": "b1" if i < 3 else "b2", "round": 1,
               "probs": dict(zip(LABELS, p)), "pred_round": 1}
        if sid == "s00":
            row.update(annotator="ann1", label="a")
        rows.append(row)
    return rows


def test_build_pool_and_queue_picks_through_the_store(store, tmp_path):
    _import(store, tmp_path, _store_rows())
    store.append_review("ds", "s04", 1, 0, "rev", None, "b", "checked")
    store.enqueue("ds", ["s05"], "manual", actor="lead")
    pool = al.build_pool(store, "ds")
    assert pool.frame["sample_id"].to_list() == ["s01", "s02", "s03", "s05"]  # s00 gold, s04 reviewed
    assert pool.frame.filter(pl.col("candidate"))["sample_id"].to_list() == ["s01", "s02", "s03"]
    assert pool.pred_round == 1 and pool.labels == LABELS
    picks = al.select(pool, "margin", 2)
    assert picks["sample_id"].to_list() == ["s02", "s01"]
    added = al.queue_picks(store, "ds", picks, "lead", detail={"strategy": "margin", "k": 2})
    assert added == 2
    q = store.queue("ds", reason=al.QUEUE_REASON)
    assert q["sample_id"].to_list() == ["s02", "s01"]
    np.testing.assert_allclose(q["priority"].to_numpy(), [0.99, 0.90])
    log = store.audit_log(dataset="ds", action="queue.add")
    assert log.height == 2 and al.QUEUE_REASON in log["new_value"].to_list()
    # queued picks drop out of the next selection
    assert al.select(al.build_pool(store, "ds"), "margin", 1)["sample_id"].to_list() == ["s03"]
    assert al.queue_picks(store, "ds", picks, "lead") == 0  # already open: skipped
    opts = al.pool_options(store, "ds")
    assert opts == {"batches": ["b1", "b2"], "rounds": [1], "pred_rounds": [1], "labels": LABELS}
    b2 = al.build_pool(store, "ds", kind="batch", batch="b2")  # labeled or not, minus reviewed / queued
    assert b2.frame["sample_id"].to_list() == ["s03", "s04", "s05"]
    assert b2.frame.filter(pl.col("candidate"))["sample_id"].to_list() == ["s03"]


def _fake_model(dim=4) -> EmbeddingModel:
    def encode(texts, batch_size):
        return np.array([[len(t), t.count("快"), 1.0, i % 2] for i, t in enumerate(texts)], dtype=np.float32)

    return EmbeddingModel("fake:test", "fake", dim, encode)


def test_embed_pool_and_precompute_use_the_store_cache(store, tmp_path):
    _import(store, tmp_path, _store_rows())
    pool = al.build_pool(store, "ds", kind="all")
    calls = []
    x = al.embed_pool(pool, store=store, model=_fake_model(), progress=lambda d, t: calls.append((d, t)))
    assert x.shape == (6, 4) and calls[-1] == (6, 6)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    seen = []
    result = al.precompute_embeddings(store, "ds", model=_fake_model(), announce=seen.append)
    assert seen == ["configured model fake:test (fake, 4-d)"]
    assert (result["texts"], result["unique"], result["cached"], result["encoded"]) == (6, 6, 6, 0)


# --------------------------------------------------------------------------- the CLI


def _cli(*args: str, db: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("QUALITY_DB", None)
    return subprocess.run([sys.executable, "-m", "core", *args, "--db", str(db)], cwd=ROOT, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=300)


def test_cli_embed_encodes_then_serves_from_cache(tmp_path):
    from core.store import open_store

    db = tmp_path / "cli.duckdb"
    store = open_store(db)
    _import(store, tmp_path, [{"id": "1", "text": "我的快递到哪了", "label": "a", "annotator": "x"},
                              {"id": "2", "text": "请帮我取消订单并退款", "label": "b", "annotator": "x"},
                              {"id": "3", "text": "发票怎么开", "label": "c", "annotator": "x"},
                              {"id": "4", "text": "发票怎么开", "label": "c", "annotator": "y"}], name="小")
    store.close()
    first = _cli("embed", "--dataset", "小", db=db)
    assert first.returncode == 0, first.stderr
    assert "model: 100% of texts contain CJK" in first.stdout and "multilingual USE" in first.stdout
    assert "4 texts (3 distinct): 3 encoded, 0 already cached" in first.stdout
    assert "Traceback" not in first.stderr
    second = _cli("embed", "--dataset", "小", db=db)
    assert second.returncode == 0, second.stderr
    assert "4 texts (3 distinct): 0 encoded, 3 already cached" in second.stdout
    bad = _cli("embed", "--dataset", "nope", db=db)
    assert bad.returncode == 1 and "unknown dataset" in bad.stderr and "Traceback" not in bad.stderr


# --------------------------------------------------------------------------- embed only what a strategy reads


def _counting_model(dim=6):
    """A fake encoder that records every text it encodes (deterministic vectors from a hash)."""
    seen: list[str] = []

    def encode(texts, batch_size):
        seen.extend(texts)
        out = []
        for t in texts:
            rng = np.random.default_rng(abs(hash(t)) % (2 ** 32))
            out.append(rng.normal(size=dim))
        return np.array(out, dtype=np.float32)

    return EmbeddingModel("fake:counting", "fake", dim, encode), seen


def _big_pool(n=200, queued=("s003", "s010")):
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(3), size=n)
    samples = pl.DataFrame({"sample_id": [f"s{i:03d}" for i in range(n)], "text": [f"text {i}" for i in range(n)]})
    pred = [(f"s{i:03d}", 1, "a", float(p.max()), p.tolist()) for i, p in enumerate(probs)]
    return al.pool_from_frames("ds", LABELS, samples, _ann(None), _rev(None), _pred(pred),
                               _queue([(q, "open") for q in queued]), kind="all")


@pytest.mark.parametrize("strategy, kw", [("hybrid", {"pool_factor": 3}),
                                          ("adaptive_hybrid", {"round_index": 2, "n_rounds": 5})])
def test_a_hybrid_embeds_only_its_uncertain_candidates_and_picks_as_on_the_whole_pool(strategy, kw):
    pool = _big_pool()
    k = 5
    rows = al.embedding_rows(pool, strategy, k, **kw)
    pf = kw.get("pool_factor") or al.selection.adaptive_pool_factor(kw["round_index"], kw["n_rounds"])
    assert rows.size == min(pool.n_candidates(strategy), int(np.ceil(pf * k)))
    model, seen = _counting_model()
    x = al.embed_rows(pool, rows, model=model)
    assert sorted(seen) == sorted(pool.frame["text_joined"][rows.tolist()].to_list())  # only the candidates
    assert len(seen) < pool.n
    assert np.isnan(x[np.setdiff1d(np.arange(pool.n), rows)]).all()
    picks = al.select(pool, strategy, k, x, **kw)
    full = al.embed_rows(pool, model=_counting_model()[0])  # every row embedded: the old way
    assert picks["sample_id"].to_list() == al.select(pool, strategy, k, full, **kw)["sample_id"].to_list()
    assert picks["reason"].to_list() == al.select(pool, strategy, k, full, **kw)["reason"].to_list()


def test_k_center_reads_every_pool_row_and_k_means_the_candidates_only():
    pool = _big_pool()
    assert al.embedding_rows(pool, "k_center", 5).size == pool.n  # queued rows count as chosen centers
    km = al.embedding_rows(pool, "k_means", 5)
    assert km.size == pool.n - 2 and not {3, 10} & set(km.tolist())
    model, _ = _counting_model()
    x = al.embed_rows(pool, km, model=model)
    full = al.embed_rows(pool, model=_counting_model()[0])
    assert al.select(pool, "k_means", 4, x)["sample_id"].to_list() == \
        al.select(pool, "k_means", 4, full)["sample_id"].to_list()
    assert al.embedding_rows(pool, "margin", 5).size == 0
    with pytest.raises(ValueError, match="some are missing"):
        al.select(pool, "k_center", 3, x)


def test_the_estimate_counts_cached_texts_and_asks_above_the_limit(store, tmp_path, monkeypatch):
    rows = [{"id": f"s{i:03d}", "text": f"text {i}"} for i in range(300)]
    _import(store, tmp_path, rows)
    pool = al.build_pool(store, "ds", kind="all")
    model, _ = _counting_model()
    monkeypatch.setattr(al, "_THROUGHPUT", {})  # nothing measured yet in this process
    est = al.embedding_estimate(pool, np.arange(pool.n), store, model=model)
    assert (est["texts"], est["cached"], est["to_encode"], est["confirm"]) == (300, 0, 300, False)
    assert est["seconds"] == pytest.approx(300 / al.DEFAULT_TEXTS_PER_SECOND) and not est["measured"]
    monkeypatch.setattr(al, "CONFIRM_ABOVE", 100)
    assert al.embedding_estimate(pool, np.arange(pool.n), store, model=model)["confirm"]
    al.embed_rows(pool, np.arange(150), store=store, model=model)
    est = al.embedding_estimate(pool, np.arange(pool.n), store, model=model)
    assert (est["cached"], est["to_encode"], est["measured"]) == (150, 150, True)


def test_embedding_stops_between_batches_and_keeps_what_was_encoded(store, tmp_path):
    import threading

    rows = [{"id": f"s{i:03d}", "text": f"text {i}"} for i in range(300)]
    _import(store, tmp_path, rows)
    pool = al.build_pool(store, "ds", kind="all")
    model, seen = _counting_model()
    stop = threading.Event()

    def progress(done, total):
        if done >= 64:
            stop.set()  # e.g. the page's Cancel button

    with pytest.raises(al.EmbeddingCancelled) as err:
        al.embed_rows(pool, store=store, model=model, progress=progress, stop=stop, batch_size=32)
    assert err.value.done == 64 and err.value.total == 300 and len(seen) == 64
    assert al.embedding_estimate(pool, np.arange(pool.n), store, model=model)["cached"] == 64
