"""core.queue (rules, claims, progress, page helpers) and core.review.save_reviews_bulk."""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest
from factories import write_jsonl as _write
from thread_helpers import race

from core.ingest import import_file
from core.queue import (
    CLAIM_TTL,
    bulk_claimed,
    bulk_entries,
    bulk_frame,
    changed_rows,
    claim_entries,
    claim_next,
    claim_ttl_seconds,
    close_entry,
    confidence_threshold,
    day_bounds,
    disagreement_candidates,
    held_claims,
    low_confidence_candidates,
    preview_text,
    progress_counts,
    queue_active_learning,
    queue_disagreement,
    queue_label_issues,
    queue_listing,
    queue_low_confidence,
    queue_manual,
    queue_progress,
    release_claims,
    release_entry,
    reopen_entry,
    set_confidence_threshold,
    skip_entry,
    top_probabilities,
    votes_text,
)
from core.review import ReviewConflict, ReviewError, save_review, save_reviews_bulk

LABELS = ["cancel", "refund", "other"]


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


# ------------------------------------------------------------------------------ claims for bulk review
def test_claim_entries_is_atomic_disjoint_and_idempotent(ds):
    ids = [f"s{i}" for i in range(10)]
    queue_manual(ds, "d", ids, "lead")
    from thread_helpers import run_threads

    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def reviewer(i):
        barrier.wait()
        got[f"r{i}"] = claim_entries(ds, "d", f"r{i}", 3)["sample_id"].to_list()

    run_threads(reviewer, 4)
    claimed = [s for held in got.values() for s in held]
    assert len(claimed) == len(set(claimed)) == 10  # 3 + 3 + 3 + 1 or any split: never one entry twice
    assert all(len(held) <= 3 for held in got.values())
    # Asking again for the same number claims nothing more: a retry after a claim that committed is harmless.
    for name, held in got.items():
        assert sorted(claim_entries(ds, "d", name, 3)["sample_id"]) == sorted(held)
    q = ds.queue("d")
    assert q.filter(pl.col("status") == "claimed").height == 10
    assert dict(zip(q["sample_id"], q["claimed_by"])) == {s: n for n, held in got.items() for s in held}


def test_claim_entries_by_reason_priority_and_expired_claims(ds):
    queue_manual(ds, "d", ["s1", "s2"], "lead", priority=5)
    queue_label_issues(ds, "d", ["s3", "s4", "s5"], [0.1, 0.9, 0.5], "lead")
    held = claim_entries(ds, "d", "rita", 2, reasons=["label_issue"])
    assert held["sample_id"].to_list() == ["s4", "s5"] and set(held["reason"]) == {"label_issue"}
    assert claim_entries(ds, "d", "rita", 3, reasons=["label_issue"])["sample_id"].to_list() == ["s4", "s5", "s3"]
    assert claim_entries(ds, "d", "sam", 5, reasons=["label_issue"]).height == 0  # all held by rita
    # Expired claims are anyone's: sam takes them with a zero time-to-live.
    assert sorted(claim_entries(ds, "d", "sam", 5, reasons=["label_issue"], ttl_seconds=0)["sample_id"]) == \
        ["s3", "s4", "s5"]
    with pytest.raises(ValueError, match="n must be"):
        claim_entries(ds, "d", "sam", -1)
    with pytest.raises(ValueError, match="unknown queue reason"):
        claim_entries(ds, "d", "sam", 1, reasons=["bogus"])


def test_release_claims_releases_only_the_reviewers_own(ds):
    queue_manual(ds, "d", ["s1", "s2", "s3"], "lead")
    rita = claim_entries(ds, "d", "rita", 2)["entry_id"].to_list()
    sam = claim_entries(ds, "d", "sam", 1)["entry_id"].to_list()
    assert release_claims(ds, "d", rita + sam, "rita") == 2
    q = ds.queue("d")
    assert dict(zip(q["entry_id"], q["status"])) == {rita[0]: "open", rita[1]: "open", sam[0]: "claimed"}
    assert release_claims(ds, "d", rita, "rita") == 0
    audit = ds.audit_log(dataset="d", action="queue.open").row(0, named=True)
    assert audit["actor"] == "rita" and json.loads(audit["detail"])["entry_ids"] == sorted(rita)


def test_held_claims_cover_every_dataset_and_respect_each_ttl(ds, tmp_path):
    import_file(ds, _write(tmp_path / "e.jsonl", [{"id": "e1", "text": "x", "annotator": "a", "label": "cancel"}]),
                "e", labels=LABELS)
    queue_manual(ds, "d", ["s1"], "lead")
    queue_manual(ds, "e", ["e1"], "lead")
    claim_next(ds, "d", "rita")
    claim_next(ds, "e", "rita")
    held = held_claims(ds, "rita")
    assert sorted(zip(held["dataset"], held["sample_id"])) == [("d", "s1"), ("e", "e1")]
    assert held_claims(ds, "rita", "e")["sample_id"].to_list() == ["e1"]
    later = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(minutes=20)  # past the 15-minute default
    ds.set_dataset_setting("e", "claim_ttl_minutes", 60, "lead")
    assert held_claims(ds, "rita", now=later)["dataset"].to_list() == ["e"]
    assert held_claims(ds, "nobody").height == 0


def test_reopen_entry_claims_a_resolved_entry_again(ds):
    queue_manual(ds, "d", ["s1", "s2"], "lead")
    entry = claim_next(ds, "d", "rita")
    skip_entry(ds, entry["entry_id"], "rita")
    back = reopen_entry(ds, entry["entry_id"], "rita")
    assert (back["status"], back["claimed_by"], back["resolved_at"]) == ("claimed", "rita", None)
    assert reopen_entry(ds, entry["entry_id"], "rita")["entry_id"] == entry["entry_id"]  # held: as it is
    from core.store import StoreError

    with pytest.raises(StoreError, match="claimed by rita"):
        reopen_entry(ds, entry["entry_id"], "sam")


def test_bulk_claimed_shows_votes_prediction_and_confidence(ds):
    queue_disagreement(ds, "d", "lead")  # s2 (A/B/C tie), s3 (A/B tie), s1 (2:1)
    save_review(ds, "d", "s3", "other", "rita", None, 0)  # closes s3's entry
    claim_entries(ds, "d", "sam", 10, reasons=["disagreement"])
    t = bulk_claimed(ds, "d", "sam", "disagreement")
    assert t.columns == ["entry_id", "sample_id", "reason", "priority", "preview", "votes", "predicted",
                         "confidence", "current_label", "source", "base_version", "label"]
    assert t["sample_id"].to_list() == ["s2", "s1"]
    s1 = t.row(1, named=True)
    assert s1["votes"] == "cancel ×2 (alice, bo) · refund (chen)"
    assert (s1["predicted"], s1["confidence"]) == ("cancel", pytest.approx(0.46))  # round 2, the latest
    assert (s1["current_label"], s1["source"], s1["base_version"], s1["label"]) == ("cancel", "majority", 0, "cancel")
    assert t.row(0, named=True)["current_label"] is None  # a three-way tie has no current label
    assert t["preview"][0].startswith("请取消订单 2")
    assert bulk_claimed(ds, "d", "rita").height == 0  # rita holds nothing: nothing to edit


def test_two_reviewers_in_bulk_review_cannot_overwrite_each_other(ds):
    queue_manual(ds, "d", [f"s{i}" for i in range(6)], "lead")
    rita = bulk_claimed(ds, "d", "rita") if claim_entries(ds, "d", "rita", 3).height else None
    sam = bulk_claimed(ds, "d", "sam") if claim_entries(ds, "d", "sam", 3).height else None
    assert not set(rita["sample_id"]) & set(sam["sample_id"])
    # sam tries to save a row that rita holds (a stale table, a forged request): refused whole.
    theirs = rita.row(0, named=True)
    rows = [{"sample_id": theirs["sample_id"], "new_label": "other", "base_version": 0},
            {"sample_id": sam["sample_id"][0], "new_label": "other", "base_version": 0}]
    before = ds.table_counts()
    with pytest.raises(ReviewConflict, match=r"not claimed by you.*claimed by rita") as err:
        save_reviews_bulk(ds, "d", rows, "sam", None, require_claim=True)
    assert err.value.current == {theirs["sample_id"]: {"claimed_by": "rita"}}
    assert ds.table_counts() == before
    mine = [{"sample_id": s, "new_label": "refund", "base_version": 0} for s in rita["sample_id"]]
    assert save_reviews_bulk(ds, "d", mine, "rita", "bulk", require_claim=True) == 3
    # The retry of a batch that committed: no conflict, nothing written twice (the claims are done now).
    after = ds.table_counts()
    assert save_reviews_bulk(ds, "d", mine, "rita", "bulk", require_claim=True) == 3
    assert ds.table_counts() == after


def test_bulk_retry_saves_only_the_rows_not_yet_saved(ds):
    save_reviews_bulk(ds, "d", [{"sample_id": "s1", "new_label": "other", "base_version": 0}], "rita", None)
    rows = [{"sample_id": "s1", "new_label": "other", "base_version": 0},
            {"sample_id": "s2", "new_label": "refund", "base_version": 0}]
    assert save_reviews_bulk(ds, "d", rows, "rita", None) == 2
    rev = ds.reviews("d")
    assert rev.select("sample_id", "version", "new_label").rows() == [("s1", 1, "other"), ("s2", 1, "refund")]
    rows[0]["new_label"] = "cancel"  # not the save that committed: a real conflict
    with pytest.raises(ReviewConflict, match="'s1'"):
        save_reviews_bulk(ds, "d", rows, "rita", None)


def test_votes_text_and_queue_listing(ds):
    assert votes_text([{"annotator": "b", "label": "x"}, {"annotator": "a", "label": "x"},
                       {"annotator": "c", "label": "y"}]) == "x ×2 (a, b) · y (c)"
    assert votes_text(None) == "" and votes_text([{"annotator": "a", "label": None}]) == ""
    queue_label_issues(ds, "d", ["s4"], [0.9], "lead")
    queue_manual(ds, "d", ["s7"], "lead", priority=2)
    listing = queue_listing(ds, "d")
    assert listing.columns == ["entry_id", "sample_id", "preview", "reason", "priority", "status", "claimed_by",
                               "created_at"]
    assert listing["sample_id"].to_list() == ["s7", "s4"]
    assert listing["reason"].to_list() == ["Manual", "Suspected label error"]
    assert listing["preview"][1].startswith("请取消订单 4")


@pytest.mark.parametrize("call", ["claim_entries", "release_claims", "reopen_entry"])
def test_bulk_claim_writes_are_refused_to_read_only_roles(ds, call, tmp_path, monkeypatch):
    from core.roles import PermissionDenied

    users = tmp_path / "users.toml"
    from core.auth import hash_password

    users.write_text(f'[users.viewer]\nrole = "stakeholder"\npassword_hash = "{hash_password("pw-viewer-1")}"\n',
                     encoding="utf-8")
    monkeypatch.setenv("QUALITY_USERS_FILE", str(users))
    queue_manual(ds, "d", ["s1"], "system:test")
    entry = int(ds.queue("d")["entry_id"][0])
    calls = {"claim_entries": lambda: claim_entries(ds, "d", "viewer", 3, ttl_seconds=600),
             "release_claims": lambda: release_claims(ds, "d", [entry], "viewer"),
             "reopen_entry": lambda: reopen_entry(ds, entry, "viewer")}
    with pytest.raises(PermissionDenied, match="viewer"):
        calls[call]()
    assert ds.queue("d")["status"].to_list() == ["open"]
