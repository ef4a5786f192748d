"""Routing by consensus: low-consensus samples to review, samples that need one more annotation, method changes."""

from __future__ import annotations

import csv
import io

import polars as pl
import pytest
from crowds import LABELS, configure_users, crowd_rows
from factories import import_rows

from core import vocab
from core.gold import dataset_gold, set_consensus_method
from core.queue import (
    low_consensus_candidates,
    more_annotation_candidates,
    needs_more_annotations,
    needs_more_annotations_csv,
    queue_consensus_changes,
    queue_low_consensus,
)
from core.review import save_review
from core.roles import PermissionDenied


def consensus_frame(rows):
    return pl.DataFrame(rows, schema={"sample_id": pl.Utf8, "consensus_label": pl.Utf8, "confidence": pl.Float64,
                                      "n_ratings": pl.Int64, "source": pl.Utf8}, orient="row")


def state_frame(rows):
    return pl.DataFrame(rows, schema={"sample_id": pl.Utf8, "excluded": pl.Boolean, "version": pl.Int64}, orient="row")


FRAME = consensus_frame([
    ("a", "x", 0.50, 2, "majority"),
    ("b", "x", 0.69, 3, "dawid_skene"),
    ("c", "x", 0.70, 3, "dawid_skene"),       # at the threshold: not below it
    ("d", "x", 0.95, 1, "dawid_skene"),
    ("e", None, 0.40, 2, "majority"),         # a tie: no label, still uncertain
    ("f", "x", float("nan"), 0, "majority"),  # no confidence: not a candidate
    ("g", "x", 0.10, 1, "dawid_skene"),       # reviewed
    ("h", "x", 0.20, 1, "dawid_skene"),       # excluded
    ("i", "x", 0.30, 1, "dawid_skene"),       # a gold question
])
STATE = state_frame([(s, s == "h", 1 if s == "g" else 0) for s in "abcdefghi"])
QUESTIONS = pl.DataFrame({"sample_id": ["i"], "gold_label": ["x"]})


# ------------------------------------------------------------------------ pure rules
def test_low_consensus_candidates_by_hand():
    cand = low_consensus_candidates(FRAME, STATE, 0.7, QUESTIONS)
    assert cand["sample_id"].to_list() == ["e", "a", "b"]  # least confident first
    assert cand["priority"].to_list() == pytest.approx([0.6, 0.5, 0.31])
    assert low_consensus_candidates(FRAME, STATE, 0.0, QUESTIONS).height == 0
    assert set(low_consensus_candidates(FRAME, STATE, 1.0)["sample_id"]) == {"a", "b", "c", "d", "e", "i"}


@pytest.mark.parametrize("min_ratings, expected", [(1, []), (3, ["e", "a"]), (4, ["e", "a", "b"])])
def test_more_annotation_candidates_by_hand(min_ratings, expected):
    cand = more_annotation_candidates(FRAME, STATE, min_ratings, 0.7, QUESTIONS)
    assert cand["sample_id"].to_list() == expected


@pytest.mark.parametrize("kwargs, match", [
    ({"min_ratings": 0, "threshold": 0.7}, "min_ratings"),
    ({"min_ratings": 2.5, "threshold": 0.7}, "min_ratings"),
    ({"min_ratings": True, "threshold": 0.7}, "min_ratings"),
    ({"min_ratings": 2, "threshold": 1.2}, "between 0 and 1"),
    ({"min_ratings": 2, "threshold": float("nan")}, "between 0 and 1"),
])
def test_routing_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        more_annotation_candidates(FRAME, STATE, **kwargs)


def test_the_reason_has_a_name():
    assert vocab.reason_name("low_consensus") == "Low consensus confidence"
    assert "low_consensus" in vocab.QUEUE_REASONS


# ------------------------------------------------------------------------ with a store
@pytest.fixture
def crowd(store, tmp_path):
    rows, truth = crowd_rows(n=60, seed=0)
    import_rows(store, tmp_path, rows, name="ds", labels=LABELS)
    return store, truth


def test_queue_low_consensus_sends_uncertain_unreviewed_samples_once(crowd):
    store, _ = crowd
    set_consensus_method(store, "ds", "dawid_skene", "local-lead")
    found = dataset_gold(store, "ds").consensus.frame
    uncertain = found.filter(pl.col("confidence") < 0.99).sort("confidence")  # EM is sure of most of them
    reviewed = uncertain["sample_id"][0]
    save_review(store, "ds", reviewed, "refund", "local-lead", None, base_version=0)
    added = queue_low_consensus(store, "ds", "local-lead", threshold=0.99)
    queued = store.queue("ds", reason="low_consensus")
    assert added == uncertain.height - 1 == queued.height > 0
    assert reviewed not in queued["sample_id"].to_list()
    assert queued["priority"].max() == pytest.approx(1 - uncertain["confidence"][1])
    assert queue_low_consensus(store, "ds", "local-lead", threshold=0.99) == 0  # already open
    audit = store.audit_log(dataset="ds", action="queue.add")
    assert audit["new_value"].to_list() == ["low_consensus", "low_consensus"]


def test_queue_low_consensus_default_threshold_is_the_guidelines(crowd):
    store, _ = crowd
    found = dataset_gold(store, "ds").consensus.frame  # majority: ties have confidence 0.5
    expected = found.filter(pl.col("confidence") < vocab.REVIEW_CONFIDENCE).height
    assert queue_low_consensus(store, "ds", "local-lead") == expected > 0
    detail = store.queue("ds", reason="low_consensus")["detail"][0]
    assert '"method": "majority"' in detail and '"threshold": 0.7' in detail


def test_a_reviewer_cannot_queue_by_consensus(crowd, tmp_path, monkeypatch):
    store, _ = crowd
    configure_users(monkeypatch, tmp_path, {"rita": "reviewer"})
    with pytest.raises(PermissionDenied):
        queue_low_consensus(store, "ds", "rita")
    with pytest.raises(ValueError, match="actor"):
        queue_low_consensus(store, "ds", " ")


def test_needs_more_annotations_lists_who_rated_and_exports_csv(crowd):
    store, _ = crowd
    set_consensus_method(store, "ds", "dawid_skene", "local-lead")
    more = needs_more_annotations(store, "ds", min_ratings=4, threshold=0.99)
    assert more.columns == ["sample_id", "batch", "round", "n_ratings", "rated_by", "consensus_label", "confidence",
                            "method"]
    assert more.height > 0 and (more["n_ratings"] < 4).all() and (more["confidence"] < 0.99).all()
    votes = store.annotations("ds")
    first = more.row(0, named=True)
    raters = sorted(votes.filter(pl.col("sample_id") == first["sample_id"])["annotator"].to_list())
    assert first["rated_by"] == ";".join(raters) and first["method"] == "dawid_skene"
    assert more["confidence"].is_sorted()
    table = list(csv.DictReader(io.StringIO(needs_more_annotations_csv(more).decode("utf-8"))))
    assert len(table) == more.height and table[0]["sample_id"] == first["sample_id"]
    assert "text" not in table[0]  # ids only: no personal data leaves in this file
    assert needs_more_annotations(store, "ds", min_ratings=1).height == 0


def test_queue_consensus_changes_skips_reviewed_and_checks_the_reason(crowd):
    store, truth = crowd
    ids = sorted(truth)[:4]
    save_review(store, "ds", ids[0], "refund", "local-lead", None, base_version=0)
    changed = pl.DataFrame({"sample_id": ids, "priority": [0.9, 0.8, 0.7, 0.6]})
    assert queue_consensus_changes(store, "ds", changed, "local-lead", reason="disagreement") == 3
    assert store.queue("ds", reason="disagreement")["sample_id"].to_list() == ids[1:]
    assert queue_consensus_changes(store, "ds", changed.select("sample_id"), "local-lead") == 3
    with pytest.raises(ValueError, match="reason"):
        queue_consensus_changes(store, "ds", changed, "local-lead", reason="manual")


def test_annotation_pool_answers_every_setting_like_needs_more_annotations(tmp_path):
    """The Annotators page filters the pool the annotators job stores: the same rows, in the same order, as a
    fresh :func:`needs_more_annotations` at every setting (issue 18: no consensus fit in the page run)."""
    import random

    from core.queue import annotation_pool, more_from_pool, needs_more_annotations
    from core.store import open_store

    store = open_store(tmp_path / "pool.duckdb")
    rng = random.Random(5)
    rows = []
    for i in range(60):
        for ann in ("ann", "bo", "chen")[: 1 + i % 3]:
            rows.append({"id": f"p{i:03d}", "text": f"退款 request {i}", "annotator": ann, "batch": f"b{i % 2}",
                         "label": rng.choice(["a", "b", "c"])})
    import_rows(store, tmp_path, rows, name="pool", labels=["a", "b", "c"])
    pool = annotation_pool(store, "pool")
    assert pool.height > 0 and pool["confidence"].max() < 1.0
    for min_ratings in (1, 2, 3, 4, 50):
        for threshold in (0.0, 0.34, 0.5, 0.7, 0.99, 1.0):
            expected = needs_more_annotations(store, "pool", min_ratings=min_ratings, threshold=threshold)
            assert more_from_pool(pool, min_ratings, threshold).equals(expected), (min_ratings, threshold)
    with pytest.raises(ValueError, match="between 0 and 1"):
        more_from_pool(pool, 3, 1.5)
