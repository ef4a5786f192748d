"""core.queue (rules, claims, progress, page helpers) and core.review.save_reviews_bulk."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from core.ingest import import_file
from core.queue import (
    CLAIM_TTL,
    bulk_entries,
    bulk_frame,
    changed_rows,
    claim_next,
    claim_ttl_seconds,
    close_entry,
    confidence_threshold,
    day_bounds,
    disagreement_candidates,
    low_confidence_candidates,
    preview_text,
    progress_counts,
    queue_active_learning,
    queue_disagreement,
    queue_label_issues,
    queue_low_confidence,
    queue_manual,
    queue_progress,
    release_entry,
    set_confidence_threshold,
    skip_entry,
    top_probabilities,
)
from core.review import ReviewConflict, ReviewError, save_review, save_reviews_bulk
from thread_helpers import race

LABELS = ["cancel", "refund", "other"]


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def ds(store, tmp_path):
    """Dataset "d": s0..s9 with 3 annotators and predictions in rounds 1 and 2.

    Votes: s0 unanimous; s1 A/A/B (majority, not unanimous); s2 A/B/C (tie); s3 A/B (tie, two votes);
    others unanimous. Round-2 confidence of s{i} is 0.4 + 0.06 * i (s0..s4 are below 0.7, s5 is
    exactly 0.7); round 1 has confidence 0.4 everywhere.
    """
    votes = {
        "s1": ["cancel", "cancel", "refund"],
        "s2": ["cancel", "refund", "other"],
        "s3": ["cancel", "refund"],
    }
    rows = []
    for i in range(10):
        sid = f"s{i}"
        for ann, lab in zip(["alice", "bo", "chen"], votes.get(sid, ["cancel"] * 3)):
            rows.append({"id": sid, "text": f"请取消订单 {i} please cancel", "annotator": ann, "label": lab})
    import_file(store, _write(tmp_path / "ann.jsonl", rows), "d", labels=LABELS)
    preds = []
    for rnd in (1, 2):
        for i in range(10):
            c = round(0.4 + 0.06 * i, 4) if rnd == 2 else 0.2
            rest = round((1 - c) / 2, 4)
            preds.append({"id": f"s{i}", "pred_round": rnd,
                          "probs": {"cancel": c, "refund": rest, "other": round(1 - c - rest, 4)}})
    import_file(store, _write(tmp_path / "pred.jsonl", preds), "d")
    return store


# ------------------------------------------------------------------------------ pure functions
def test_claim_ttl_default_env_and_setting():
    assert CLAIM_TTL == 900
    assert claim_ttl_seconds({}, {}) == 900
    assert claim_ttl_seconds({}, {"QUALITY_CLAIM_TTL_MINUTES": "30"}) == 1800
    assert claim_ttl_seconds({"claim_ttl_minutes": 5}, {"QUALITY_CLAIM_TTL_MINUTES": "30"}) == 300
    assert claim_ttl_seconds({"claim_ttl_minutes": "x"}, {"QUALITY_CLAIM_TTL_MINUTES": "-1"}) == 900


def test_confidence_threshold_setting_and_default():
    assert confidence_threshold({}) == 0.7
    assert confidence_threshold({"confidence_threshold": 0.55}) == 0.55
    assert confidence_threshold({"confidence_threshold": 3}) == 0.7


def test_low_confidence_candidates_skip_excluded_reviewed_and_missing():
    preds = pl.DataFrame({"sample_id": ["a", "b", "c", "d", "e"], "confidence": [0.2, 0.5, None, 0.69, 0.7]})
    state = pl.DataFrame({"sample_id": ["a", "b", "c", "d", "e"], "excluded": [False, True, False, False, False],
                          "version": [0, 0, 0, 1, 0]})
    out = low_confidence_candidates(preds, state, 0.7)
    assert out["sample_id"].to_list() == ["a"]
    assert out["priority"].to_list() == pytest.approx([0.8])
    with pytest.raises(ValueError, match="between 0 and 1"):
        low_confidence_candidates(preds, state, 1.5)


def test_disagreement_candidates_ties_first():
    ann = pl.DataFrame({
        "sample_id": ["u", "u", "m", "m", "m", "t", "t", "t", "one", "two", "two"],
        "annotator": ["a", "b", "a", "b", "c", "a", "b", "c", "a", "a", "b"],
        "label": ["x", "x", "x", "x", "y", "x", "y", "z", "x", "x", "y"],
    })
    out = disagreement_candidates(ann)
    assert out["sample_id"].to_list() == ["t", "two", "m"]  # A/B/C, A/B, then A/A/B
    assert out["disputed"].to_list() == [True, True, False]
    assert out["priority"].to_list() == pytest.approx([1 + 2 / 3, 1.5, 1 / 3])
    assert disagreement_candidates(ann, disputed_only=True)["sample_id"].to_list() == ["t", "two"]
    state = pl.DataFrame({"sample_id": ["t", "m"], "excluded": [False, True], "version": [2, 0]})
    assert disagreement_candidates(ann, state)["sample_id"].to_list() == ["two"]
    assert disagreement_candidates(ann.head(0)).height == 0


def test_day_bounds_cover_local_days_inclusively():
    since, until = day_bounds(date(2024, 3, 1), date(2024, 3, 2))
    local_start = datetime(2024, 3, 1).astimezone(timezone.utc).replace(tzinfo=None)
    assert since == local_start
    assert until == local_start + timedelta(days=2) - timedelta(microseconds=1)
    with pytest.raises(ValueError, match="before"):
        day_bounds(date(2024, 3, 2), date(2024, 3, 1))


def test_progress_counts_treat_expired_claims_as_open():
    now = datetime(2024, 5, 1, 12, 0)
    q = pl.DataFrame({
        "reason": ["manual", "manual", "disagreement", "disagreement", "manual", "manual"],
        "status": ["open", "claimed", "claimed", "done", "done", "skipped"],
        "claimed_at": [None, now - timedelta(minutes=1), now - timedelta(hours=1), None, None, None],
        "resolved_at": [None, None, None, now - timedelta(hours=1), now - timedelta(days=2), now],
    }, schema_overrides={"claimed_at": pl.Datetime("us"), "resolved_at": pl.Datetime("us")})
    p = progress_counts(q, datetime(2024, 5, 1), datetime(2024, 5, 1, 23, 59), now, ttl_seconds=900)
    assert p["done_today"] == 1 and p["done"] == 2
    assert p["open"] == 2 and p["claimed"] == 1
    assert p["skipped"] == 1 and p["skipped_today"] == 1
    assert p["open_by_reason"] == {"disagreement": 1, "manual": 1}


def test_top_probabilities_and_preview():
    assert top_probabilities([0.1, 0.6, 0.3], ["a", "b", "c"]) == [("b", 0.6), ("c", 0.3), ("a", 0.1)]
    assert top_probabilities([0.5, 0.5, 0.0, 0.0], ["a", "b", "c", "d"], k=2) == [("a", 0.5), ("b", 0.5)]
    assert top_probabilities([0.9, 0.1], ["a", "b", "c"]) == [("a", 0.9), ("b", 0.1)]  # label added later
    assert top_probabilities(None, ["a"]) == []
    assert preview_text({"text": "  多行\n文本  ", "instruction": None}) == "多行 文本"
    assert preview_text({"instruction": "x" * 300}, width=10) == "x" * 9 + "…"


def test_bulk_frame_and_changed_rows():
    entries = pl.DataFrame({"entry_id": [1, 2, 3], "sample_id": ["a", "b", "c"], "priority": [0.9, 0.5, 0.1]})
    state = pl.DataFrame({"sample_id": ["a", "b", "c"], "version": [0, 2, 0], "text": ["ta", "tb", "tc"]})
    gold = pl.DataFrame({"sample_id": ["a", "b"], "gold_label": ["x", "y"], "source": ["majority", "review"]})
    t = bulk_frame(entries, state, gold)
    assert t.columns == ["entry_id", "sample_id", "priority", "preview", "current_label", "source",
                         "base_version", "label"]
    assert t["label"].to_list() == ["x", "y", None] and t["base_version"].to_list() == [0, 2, 0]
    edited = t.with_columns(pl.Series("label", ["x", "z", "x"]))
    assert changed_rows(edited) == [{"sample_id": "b", "new_label": "z", "base_version": 2},
                                    {"sample_id": "c", "new_label": "x", "base_version": 0}]


# ------------------------------------------------------------------------------ rules on a store
def test_queue_low_confidence_uses_setting_latest_round_and_priority(ds):
    assert queue_low_confidence(ds, "d", "lead") == 5  # round 2: s0..s4 below 0.7 (s5 = 0.7 is not)
    q = ds.queue("d")
    assert q["sample_id"].to_list() == ["s0", "s1", "s2", "s3", "s4"]  # least confident first
    assert q["priority"].to_list() == pytest.approx([0.6, 0.54, 0.48, 0.42, 0.36])
    assert set(q["reason"]) == {"low_confidence"}
    assert queue_low_confidence(ds, "d", "lead") == 0  # already open: skipped
    set_confidence_threshold(ds, "d", 0.75, "lead")
    assert ds.get_dataset("d").settings["confidence_threshold"] == 0.75
    assert queue_low_confidence(ds, "d", "lead") == 1  # s5 (0.70) joins
    assert queue_low_confidence(ds, "d", "lead", threshold=0.45, round=1) == 4  # round 1: 0.4 everywhere
    audit = ds.audit_log(dataset="d", action="queue.add")
    assert json.loads(audit.row(0, named=True)["detail"])["added"] == 4


def test_queue_low_confidence_skips_reviewed_and_excluded(ds):
    save_review(ds, "d", "s0", "refund", "rita", None, 0)
    ds.set_excluded("d", ["s1"], True, "lead")
    assert queue_low_confidence(ds, "d", "lead") == 3
    assert "s0" not in ds.queue("d")["sample_id"].to_list()


@pytest.mark.parametrize("bad", [-0.1, 1.1, float("nan"), "abc"])
def test_threshold_is_validated(ds, bad):
    with pytest.raises(ValueError):
        set_confidence_threshold(ds, "d", bad, "lead")
    with pytest.raises(ValueError):
        queue_low_confidence(ds, "d", "lead", threshold=bad)
    assert ds.table_counts()["review_queue"] == 0


def test_queue_disagreement_on_store(ds):
    assert queue_disagreement(ds, "d", "lead", disputed_only=True) == 2
    assert queue_disagreement(ds, "d", "lead") == 1  # s1 joins; s2, s3 are already open
    q = ds.queue("d", reason="disagreement")
    assert q["sample_id"].to_list() == ["s2", "s3", "s1"]


def test_scored_wrappers_validate_and_dedupe(ds):
    assert queue_label_issues(ds, "d", ["s4", "s5", "s4"], [0.2, 0.9, 0.6], "lead") == 2
    q = ds.queue("d", reason="label_issue")
    assert dict(zip(q["sample_id"], q["priority"])) == {"s5": 0.9, "s4": 0.6}
    assert queue_active_learning(ds, "d", ["s7"], [1.5], "lead") == 1
    with pytest.raises(ValueError, match="2 sample ids but 1 scores"):
        queue_active_learning(ds, "d", ["s1", "s2"], [0.1], "lead")
    with pytest.raises(ValueError, match="finite"):
        queue_label_issues(ds, "d", ["s1"], [float("inf")], "lead")
    with pytest.raises(ValueError, match="actor"):
        queue_label_issues(ds, "d", ["s1"], [0.3], " ")
    assert queue_manual(ds, "d", ["s8", "s8"], "lead", note="  looks odd ") == 1
    entry = ds.queue("d", reason="manual").row(0, named=True)
    assert json.loads(entry["detail"]) == {"note": "looks odd"}
    assert queue_manual(ds, "d", [], "lead") == 0


def test_claim_next_skip_release_close_and_progress(ds):
    queue_manual(ds, "d", ["s1"], "lead", priority=2)
    queue_label_issues(ds, "d", ["s2", "s3"], [0.5, 0.4], "lead")
    with pytest.raises(ValueError, match="unknown queue reason"):
        claim_next(ds, "d", "rita", ["nope"])
    assert claim_next(ds, "d", "rita", ["label_issue"])["sample_id"] == "s2"
    assert claim_next(ds, "d", "rita", ["label_issue"])["sample_id"] == "s2"  # held claim comes back
    assert claim_next(ds, "d", "sam")["sample_id"] == "s1"
    p = queue_progress(ds, "d")
    assert (p["open"], p["claimed"], p["done_today"]) == (1, 2, 0)
    entry = claim_next(ds, "d", "rita", ["label_issue"])
    skip_entry(ds, entry["entry_id"], "rita")
    assert claim_next(ds, "d", "rita", ["label_issue"])["sample_id"] == "s3"
    save_review(ds, "d", "s3", "refund", "rita", None, 0)  # closes the entry
    sam = claim_next(ds, "d", "sam")
    release_entry(ds, sam["entry_id"], "sam")
    assert close_entry(ds, "d", sam["entry_id"], "sam") is True
    assert close_entry(ds, "d", sam["entry_id"], "sam") is False  # already done: no second write
    assert claim_next(ds, "d", "tom") is None
    p = queue_progress(ds, "d")
    assert (p["open"], p["claimed"], p["done_today"], p["skipped"]) == (0, 0, 2, 1)
    # A zero time-to-live lets anyone take a claimed entry.
    queue_manual(ds, "d", ["s9"], "lead")
    assert claim_next(ds, "d", "rita")["sample_id"] == "s9"
    assert claim_next(ds, "d", "sam", ttl_seconds=0)["sample_id"] == "s9"


def test_bulk_entries_show_current_label_and_version(ds):
    queue_disagreement(ds, "d", "lead")
    save_review(ds, "d", "s3", "other", "rita", None, 0)  # closes s3's entry
    queue_manual(ds, "d", ["s3"], "lead")
    t = bulk_entries(ds, "d", "disagreement")
    assert t["sample_id"].to_list() == ["s2", "s1"]
    assert t["current_label"].to_list() == [None, "cancel"] and t["source"].to_list() == [None, "majority"]
    assert t["preview"][0].startswith("请取消订单 2")
    m = bulk_entries(ds, "d", "manual")
    assert (m["current_label"][0], m["source"][0], m["base_version"][0]) == ("other", "review", 1)


# ------------------------------------------------------------------------------ bulk save
def test_bulk_save_writes_every_row_in_one_transaction(ds):
    queue_disagreement(ds, "d", "lead")
    save_review(ds, "d", "s5", "refund", "rita", None, 0)
    rows = [{"sample_id": "s1", "new_label": "refund", "base_version": 0},
            {"sample_id": "s2", "new_label": "other", "base_version": 0},
            {"sample_id": "s5", "new_label": "cancel", "base_version": 1}]
    assert save_reviews_bulk(ds, "d", rows, "sam", "batch fix") == 3
    rev = ds.reviews("d").filter(pl.col("reviewer") == "sam")
    assert rev.select("sample_id", "version", "base_version", "old_label", "new_label", "reason").rows() == [
        ("s1", 1, 0, "cancel", "refund", "batch fix"),
        ("s2", 1, 0, None, "other", "batch fix"),
        ("s5", 2, 1, "refund", "cancel", "batch fix"),
    ]
    audit = ds.audit_log(dataset="d", action="review.save", actor="sam")
    assert audit.height == 3 and json.loads(audit["detail"][0])["bulk"] is True
    assert set(ds.queue("d", status=["done"])["sample_id"]) >= {"s1", "s2"}
    assert ds.queue("d", status=["open"])["sample_id"].to_list() == ["s3"]


def test_bulk_conflict_aborts_the_whole_batch(ds):
    save_review(ds, "d", "s2", "refund", "rita", None, 0)
    before = ds.table_counts()
    rows = [{"sample_id": "s1", "new_label": "refund", "base_version": 0},
            {"sample_id": "s2", "new_label": "other", "base_version": 0}]
    with pytest.raises(ReviewConflict) as err:
        save_reviews_bulk(ds, "d", rows, "sam", None)
    assert "'s2'" in str(err.value) and "rita" in str(err.value) and "nothing was saved" in str(err.value)
    assert set(err.value.current) == {"s2"} and err.value.current["s2"]["reviewer"] == "rita"
    assert ds.table_counts() == before


@pytest.mark.parametrize("rows, reviewer, message", [
    ([{"sample_id": "s1", "new_label": "nope", "base_version": 0}], "sam", "not in the label set"),
    ([{"sample_id": "zz", "new_label": "refund", "base_version": 0}], "sam", "unknown sample"),
    ([{"sample_id": "s1", "new_label": "refund", "base_version": 0}] * 2, "sam", "more than once"),
    ([{"sample_id": "s1", "new_label": "refund", "base_version": -1}], "sam", "base_version"),
    ([{"sample_id": "s1", "new_label": "refund", "base_version": 0}], " ", "reviewer"),
])
def test_bulk_refusals_change_nothing(ds, rows, reviewer, message):
    before = ds.table_counts()
    rows = rows + [{"sample_id": "s4", "new_label": "refund", "base_version": 0}]
    with pytest.raises(ReviewError, match=message):
        save_reviews_bulk(ds, "d", rows, reviewer, None)
    assert ds.table_counts() == before


def test_concurrent_bulk_saves_of_the_same_samples_one_wins(ds):
    rows = [{"sample_id": f"s{i}", "new_label": "other", "base_version": 0} for i in range(10)]
    results = race(lambda i: save_reviews_bulk(ds, "d", rows, f"r{i}", None), 4, ReviewConflict)
    assert sorted(r for r in results if isinstance(r, int)) == [10]
    assert sum(isinstance(r, ReviewConflict) for r in results) == 3
    assert ds.table_counts()["reviews"] == 10
    assert ds.audit_log(dataset="d", action="review.save").height == 10
