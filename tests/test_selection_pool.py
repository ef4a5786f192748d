"""Job ``selection_pool`` (issue 18): the Active learning pool stored without texts and without queue state.

The stored pool + :func:`core.active_learning.with_candidates` (a fresh queue) + texts read on demand must give
what :func:`core.active_learning.build_pool` gives: frame, probabilities, candidates, picks and exports; the
job is stale after a review and current after a queue action (whose effect the page still shows); a
text-less pool reads the texts of the rows it needs only.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from apptest_helpers import run_page, texts
from factories import import_rows

from core import active_learning as al
from core.embeddings import EmbeddingModel
from core.jobs import JOBS, ordered
from core.jobs.runner import get_or_none, lookup, run_job

LABELS = ["refund", "shipping", "invoice"]
ZH = [("退款", "refund"), ("快递", "shipping"), ("发票", "invoice")]
EN = [("refund", "refund"), ("delivery", "shipping"), ("invoice", "invoice")]
N = 60
TEXTLESS = ("sample_id", "batch", "round", "gold_label", "reviewed", "has_pred", "predicted", "confidence")


def _sample(i: int) -> dict:
    zh = i % 2 == 0
    word, _ = (ZH if zh else EN)[i % 3]
    row = {"id": f"s{i:03d}", "batch": "b1" if i < N // 2 else "b2", "round": 1 + (i % 3 == 0)}
    if i % 4 == 1:  # an instruction record: its fields are joined
        row.update(instruction="把这条消息分类" if zh else "Classify the message",
                   input=f"{word} 问题 {i}" if zh else f"my {word} question {i}", output=f"label {i % 3}")
    else:
        row["text"] = f"请问我的{word}问题 {i} 怎么处理" if zh else f"How do I handle my {word} issue #{i}?"
    return row


def _rows() -> list[dict]:
    rng = np.random.default_rng(7)
    rows = []
    for i in range(N):
        base = _sample(i)
        label = (ZH if i % 2 == 0 else EN)[i % 3][1]
        p = rng.dirichlet(np.ones(3))
        first = {**base, "probs": dict(zip(LABELS, [round(float(v), 4) for v in p])), "pred_round": 1}
        if i % 5 == 0:  # two annotators agree: a gold label
            rows += [{**first, "annotator": "ann1", "label": label}, {**base, "annotator": "ann2", "label": label}]
        elif i % 5 == 1:  # a tie: still unlabeled
            rows += [{**first, "annotator": "ann1", "label": LABELS[0]},
                     {**base, "annotator": "ann2", "label": LABELS[1]}]
        elif i % 7 == 3:  # no prediction in round 1
            rows.append(base)
        else:
            rows.append(first)
    return rows


def _round2() -> list[dict]:
    """Round 2: probabilities for most samples, a bare prediction with a confidence for some, none for others."""
    rng = np.random.default_rng(11)
    rows = []
    for i in range(N):
        if i % 6 == 5:
            continue
        row = _sample(i)
        if i % 4 == 2:
            row.update(prediction=LABELS[i % 3], pred_confidence=0.6)
        else:
            row["probs"] = dict(zip(LABELS, [round(float(v), 4) for v in rng.dirichlet(np.ones(3))]))
        rows.append(row)
    return rows


@pytest.fixture
def data(store, tmp_path):
    """Chinese + English samples, ties, reviews, excluded samples, two prediction rounds, queue entries open,
    claimed and closed."""
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    import_rows(store, tmp_path / "r1", _rows(), labels=LABELS)
    import_rows(store, tmp_path / "r2", _round2(), labels=LABELS, pred_round=2)
    store.append_review("ds", "s002", 1, 0, "rev", None, "invoice", "checked")
    store.append_review("ds", "s005", 1, 0, "rev", None, "refund", "checked")  # had a gold label
    store.set_excluded("ds", ["s004", "s013"], True, actor="lead", reason="junk")
    store.enqueue("ds", ["s007", "s008", "s009", "s011"], "manual", actor="lead", priority=[4, 3, 2, 1])
    claimed = store.claim_queue_entry("ds", "rev", 3600)  # s007: claimed
    assert claimed["sample_id"] == "s007"
    done = store.queue("ds").filter(pl.col("sample_id") == "s011")["entry_id"][0]
    store.set_queue_status(int(done), "done", actor="rev")  # closed: not queued any more
    store.enqueue("ds", ["s002"], "manual", actor="lead")  # reviewed and queued
    return store


def _fake_model(dim=4) -> EmbeddingModel:
    def encode(batch, size):
        return np.array([[len(t), t.count("问"), sum(map(ord, t)) % 13, i % 2] for i, t in enumerate(batch)],
                        dtype=np.float32)

    return EmbeddingModel("fake:sel", "fake", dim, encode)


def _stored(store, **params):
    run_job(store, "ds", "selection_pool", params, actor="cli")
    found = get_or_none(store, "ds", "selection_pool", params)
    assert found is not None
    return found.value  # decoded from the store


CASES = [
    ({}, (True, True)),
    ({}, (False, True)),
    ({}, (True, False)),
    ({"kind": "all"}, (False, False)),
    ({"kind": "all", "pred_round": 1}, (True, True)),
    ({"kind": "batch", "batch": "b2"}, (True, True)),
    ({"kind": "round", "round": 2}, (True, False)),
]


@pytest.mark.parametrize(("params", "excl"), CASES)
def test_the_stored_pool_with_candidates_equals_build_pool(data, params, excl):
    store = data
    full = al.build_pool(store, "ds", **params, exclude_reviewed=excl[0], exclude_queued=excl[1])
    stored = _stored(store, **params)
    assert tuple(stored.frame.columns) == TEXTLESS and not stored.has_texts
    pool = al.with_candidates(stored, store.queue("ds"), *excl)
    assert pool.frame.equals(full.frame.drop(al.POOL_TEXT_COLUMNS))
    assert pool.frame.columns == [c for c in full.frame.columns if c not in al.POOL_TEXT_COLUMNS]
    np.testing.assert_array_equal(pool.probs, full.probs)
    for attr in ("dataset", "labels", "kind", "pred_round", "pred_rounds", "excluded_reviewed", "excluded_queued"):
        assert getattr(pool, attr) == getattr(full, attr), attr
    for strategy in (None, "margin", "k_center"):
        np.testing.assert_array_equal(pool.candidate_rows(strategy), full.candidate_rows(strategy))
    # the texts read on demand are the full pool's
    assert al.pool_texts(pool, None, store).equals(al.pool_texts(full))
    assert al.choice_texts(pool, store) == full.texts
    assert "candidate" not in stored.frame.columns  # the shared stored pool is not changed


def test_the_fixture_has_what_it_claims(data):
    store = data
    assert store.prediction_rounds("ds") == [1, 2]
    full = al.build_pool(store, "ds", kind="all")
    f = full.frame
    assert {"s004", "s013"}.isdisjoint(f["sample_id"].to_list())
    assert f.filter(pl.col("queued"))["sample_id"].to_list() == ["s002", "s007", "s008", "s009"]
    assert full.excluded_reviewed == 2 and full.excluded_queued == 3
    assert f["text_joined"].str.contains("问题").any() and f["text_joined"].str.contains("issue").any()
    assert (~f["has_pred"]).any() and f["instruction"].drop_nulls().len() > 0
    assert (al.build_pool(store, "ds", kind="all", pred_round=1).frame["has_pred"] != f["has_pred"]).any()


@pytest.mark.parametrize(("strategy", "kw"), [
    ("margin", {}), ("least_confidence", {}), ("entropy", {}),
    ("k_center", {}), ("k_means", {"seed": 3}),
    ("hybrid", {"method": "entropy", "pool_factor": 2}),
    ("adaptive_hybrid", {"round_index": 1, "n_rounds": 4}),
])
def test_picks_and_exports_equal_build_pools(data, strategy, kw):
    store = data
    full = al.build_pool(store, "ds")
    pool = al.with_candidates(_stored(store), store.queue("ds"))
    model = _fake_model()
    k = 5
    rows = al.embedding_rows(pool, strategy, k, **{x: v for x, v in kw.items() if x != "seed"})
    np.testing.assert_array_equal(rows, al.embedding_rows(full, strategy, k, **{x: v for x, v in kw.items()
                                                                                 if x != "seed"}))
    x_full = x_lean = None
    if strategy in al.NEEDS_EMBEDDINGS:
        x_full = al.embed_rows(full, rows, store=store, model=model)
        x_lean = al.embed_rows(pool, rows, store=store, model=model)
        np.testing.assert_array_equal(x_lean, x_full)
        assert al.embedding_estimate(pool, rows, store, model) == al.embedding_estimate(full, rows, store, model)
    want = al.select(full, strategy, k, x_full, **kw)
    got = al.select(pool, strategy, k, x_lean, store=store, **kw)
    assert got.equals(want)
    assert got["sample_text"].null_count() == 0
    assert al.picks_csv(got, strategy) == al.picks_csv(want, strategy)
    assert al.picks_jsonl(got, strategy) == al.picks_jsonl(want, strategy)
    # the map: its points and their texts
    space = x_full if x_full is not None else full.probs
    only = (np.isfinite(x_full).all(axis=1) if x_full is not None else full.frame["has_pred"].to_numpy())
    map_rows = al.map_rows(pool, got, 20, only=only)
    np.testing.assert_array_equal(map_rows, al.map_rows(full, want, 20, only=only))
    xy = al.project_2d(space[map_rows])
    assert al.map_frame(pool, got, xy, map_rows, store).equals(al.map_frame(full, want, xy, map_rows))
    assert al.pool_map(pool, got, full.probs, max_points=20, store=store).equals(
        al.pool_map(full, want, full.probs, max_points=20))


def test_a_text_less_pool_reads_only_the_texts_it_needs(data, monkeypatch):
    store = data
    pool = al.with_candidates(_stored(store), store.queue("ds"))  # the job reads no text at all
    seen: list[list[str]] = []
    real = store.samples_by_ids

    def counting(dataset, ids):
        seen.append(list(ids))
        return real(dataset, ids)

    def no_full_read(*args, **kwargs):
        raise AssertionError("store.samples read every sample's text")

    monkeypatch.setattr(store, "samples_by_ids", counting)
    monkeypatch.setattr(store, "samples", no_full_read)
    picks = al.select(pool, "margin", 3, store=store)
    assert len(seen) == 1 and sorted(seen[0]) == sorted(picks["sample_id"].to_list())
    rows = al.map_rows(pool, picks, 5, only=pool.frame["has_pred"].to_numpy())
    al.map_frame(pool, picks, np.zeros((rows.size, 2)), rows, store)
    assert len(seen[1]) == 5
    hybrid_rows = al.embedding_rows(pool, "hybrid", 2, pool_factor=2)
    al.embed_rows(pool, hybrid_rows, store=store, model=_fake_model())
    assert len(seen[2]) == 4
    # the model choice of a pool larger than the sample reads the sample only
    monkeypatch.setattr(al, "CHOICE_SAMPLE", 10)
    before = len(seen)
    al.choice_texts(pool, store)
    assert [len(s) for s in seen[before:]] == [10]
    assert max(len(s) for s in seen) < pool.n
    with pytest.raises(ValueError, match="holds no texts"):
        _ = pool.texts
    with pytest.raises(ValueError, match="pass the store"):
        al.select(pool, "margin", 3)
    with pytest.raises(ValueError, match="with_candidates"):
        _stored(store).candidate_rows()


def test_the_model_choice_from_a_sample_is_the_full_choice():
    from core.embeddings import resolve_model

    class FakeStore:
        def __init__(self, texts):
            self.texts = texts

        def samples_by_ids(self, dataset, ids):
            return pl.DataFrame({"sample_id": ids, "instruction": None, "input": None, "output": None,
                                 "text": [self.texts[int(s)] for s in ids]},
                                schema={"sample_id": pl.Utf8, **{f: pl.Utf8 for f in al.TEXT_FIELDS}})

    for share in (0.0, 0.02, 0.045, 0.05, 0.055, 0.1, 0.5, 1.0):
        n = 20_000
        cjk = set(np.random.default_rng(1).choice(n, int(share * n), replace=False).tolist())
        all_texts = [f"订单 {i} 退款" if i in cjk else f"order {i} refund" for i in range(n)]
        frame = pl.DataFrame({"sample_id": [f"{i:05d}" for i in range(n)], "candidate": [True] * n})
        pool = al.Pool("ds", LABELS, "all", frame, np.zeros((n, 3)), None)
        store = FakeStore(all_texts)
        sample = al.choice_texts(pool, store)
        assert resolve_model(sample).model_id == resolve_model(all_texts).model_id, share
        assert len(sample) in (al.CHOICE_SAMPLE, n)


def test_stale_after_a_review_current_after_a_queue_action(data):
    store = data
    _stored(store)
    assert lookup(store, "ds", "selection_pool").current
    store.enqueue("ds", ["s014"], "manual", actor="lead")
    assert lookup(store, "ds", "selection_pool").current  # the queue is not in the labels version
    pool = al.with_candidates(get_or_none(store, "ds", "selection_pool").value, store.queue("ds"))
    assert al.build_pool(store, "ds").frame.drop(al.POOL_TEXT_COLUMNS).equals(pool.frame)
    assert not pool.frame.filter(pl.col("sample_id") == "s014")["candidate"][0]
    store.append_review("ds", "s016", 1, 0, "rev", None, "refund", "checked")
    assert lookup(store, "ds", "selection_pool").stale
    assert "selection_pool" in [j.name for j in ordered()]  # run by `python -m core analyze`
    assert JOBS["selection_pool"].depends == "labels"


# ------------------------------------------------------------------ the page
@pytest.fixture
def page_env(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("QUALITY_JOBS_WAIT", "120")
    from core.store import open_store

    store = open_store(app_env)
    rows = []
    for i in range(24):
        word, label = ZH[i % 3]
        top = 0.40 + 0.02 * i
        rows.append({"id": f"s{i:02d}", "text": f"请问我的{word}问题 {i} 怎么处理", "batch": "b1", "round": 1,
                     "probs": {lab: (top if lab == label else (1 - top) / 2) for lab in LABELS}, "pred_round": 1})
    (tmp_path / "p").mkdir()
    import_rows(store, tmp_path / "p", rows, labels=LABELS)
    return store


def _page():
    import streamlit as st

    st.cache_data.clear()
    at = run_page("pages/selection.py")
    assert not at.exception, at.exception
    return at


def test_the_page_reads_the_stored_pool_and_shows_queue_changes(page_env, monkeypatch):
    store = page_env
    at = _page()
    assert "24** samples in the pool" in " ".join(texts(at.markdown))
    found = get_or_none(store, "ds", "selection_pool")
    assert found is not None and found.params == JOBS["selection_pool"].resolve()  # the default: analyze's
    assert any("Computed at" in t for t in texts(at.caption))
    # a queue action: no recompute, and the page shows it at once
    store.enqueue("ds", ["s00", "s01"], "manual", actor="lead")

    def no_build(*args, **kwargs):
        raise AssertionError("the page rebuilt the pool")

    monkeypatch.setattr(al, "build_pool", no_build)
    monkeypatch.setattr(al, "build_lean_pool", no_build)
    at = _page()
    assert "22** candidates (0 reviewed and 2 queued left out)" in " ".join(texts(at.markdown))
    assert get_or_none(store, "ds", "selection_pool").computed_at == found.computed_at
    at.number_input(key="sel_k").set_value(2).run()
    at.button(key="sel_run").click().run()
    assert not at.exception, at.exception
    assert list(at.dataframe[0].value["sample_id"]) == ["s02", "s03"]  # s00, s01 are queued
    assert "请问我的发票问题 2 怎么处理" in list(at.dataframe[0].value["sample_text"])


def test_analyze_precomputes_the_default_pool(page_env):
    from core.jobs.runner import analyze

    store = page_env
    outcomes = analyze(store, ["ds"], ["selection_pool"], actor="cli")
    assert [o.error for o in outcomes] == [None]
    assert json.dumps(get_or_none(store, "ds", "selection_pool").params, sort_keys=True) == json.dumps(
        {"batch": None, "kind": "unlabeled", "pred_round": None, "round": None})
