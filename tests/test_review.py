"""Label write-back: versions, conflicts, validation, undo, audit, and the queue's claim protocol."""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime

import polars as pl
import pytest
from thread_helpers import race, run_threads

from core.ingest import import_file
from core.review import (
    ReviewConflict,
    ReviewError,
    current_label,
    excluded_samples,
    exclusion_sources,
    include_again,
    review_item,
    sample_version,
    save_review,
    undo_review,
    undo_save,
)

LABELS = ["cancel", "refund", "other"]


@pytest.fixture
def ds(store, tmp_path):
    rows = []
    for i in range(40):
        votes = [("alice", "cancel"), ("bo", "cancel" if i % 4 else "refund"), ("chen", "refund")]
        for ann, lab in votes:
            rows.append({"id": f"s{i:03d}", "text": f"请取消订单 {i} please cancel", "annotator": ann, "label": lab})
    rows.append({"id": "tie", "text": "tie case", "annotator": "alice", "label": "cancel"})
    rows.append({"id": "tie", "text": "tie case", "annotator": "bo", "label": "refund"})
    path = tmp_path / "ann.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    import_file(store, path, "d", labels=LABELS)
    return store


def test_first_review_is_version_one_and_becomes_gold(ds):
    assert sample_version(ds, "d", "s001") == 0
    assert current_label(ds, "d", "s001") == ("cancel", "majority")
    v = save_review(ds, "d", "s001", "refund", "rita", "wrong intent", 0)
    assert v == 1 and sample_version(ds, "d", "s001") == 1
    assert current_label(ds, "d", "s001") == ("refund", "review")
    rev = ds.reviews("d", "s001").row(0, named=True)
    assert (rev["old_label"], rev["new_label"], rev["reviewer"], rev["base_version"]) == ("cancel", "refund", "rita", 0)
    audit = ds.audit_log(dataset="d", action="review.save")
    assert audit.height == 1
    assert audit.row(0, named=True)["old_value"] == "cancel" and audit.row(0, named=True)["new_value"] == "refund"


def test_tie_has_no_old_label(ds):
    assert current_label(ds, "d", "tie") == (None, None)
    save_review(ds, "d", "tie", "other", "rita", None, 0)
    assert ds.reviews("d", "tie")["old_label"].to_list() == [None]


def test_stale_base_version_raises_conflict_naming_the_other_change(ds):
    save_review(ds, "d", "s002", "refund", "rita", None, 0)
    before = ds.table_counts()
    with pytest.raises(ReviewConflict) as err:
        save_review(ds, "d", "s002", "other", "sam", None, 0)
    assert "rita" in str(err.value) and "refund" in str(err.value)
    assert err.value.current["reviewer"] == "rita"
    assert ds.table_counts() == before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(new_label="nope"), "not in the label set"),
        (dict(reviewer="  "), "reviewer"),
        (dict(sample_id="missing"), "unknown sample"),
    ],
)
def test_invalid_reviews_are_refused_and_change_nothing(ds, kwargs, message):
    args = dict(sample_id="s003", new_label="refund", reviewer="rita")
    args.update(kwargs)
    before = ds.table_counts()
    with pytest.raises(ReviewError, match=message):
        save_review(ds, "d", args["sample_id"], args["new_label"], args["reviewer"], None, 0)
    assert ds.table_counts() == before


def test_undo_appends_a_review_restoring_the_previous_label(ds):
    # s005: alice cancel, bo cancel, chen refund -> majority "cancel" before any review.
    save_review(ds, "d", "s005", "other", "rita", None, 0)
    v = undo_review(ds, "d", "s005", "sam", 1)
    assert v == 2
    hist = ds.reviews("d", "s005")
    assert hist["new_label"].to_list() == ["other", "cancel"]
    assert current_label(ds, "d", "s005") == ("cancel", "review")
    assert ds.audit_log(dataset="d", action="review.undo").height == 1


def test_saving_closes_the_samples_queue_entries(ds):
    ds.enqueue("d", ["s006", "s007"], "disagreement", actor="lead")
    save_review(ds, "d", "s006", "refund", "rita", None, 0)
    q = ds.queue("d")
    assert dict(zip(q["sample_id"], q["status"])) == {"s006": "done", "s007": "open"}


def test_eight_threads_same_sample_same_base_one_wins(ds):
    results = race(lambda i: save_review(ds, "d", "s008", LABELS[i % 3], f"r{i}", None, 0), 8, ReviewConflict)
    wins = [r for r in results if r == 1]
    conflicts = [r for r in results if isinstance(r, ReviewConflict)]
    assert len(wins) == 1 and len(conflicts) == 7
    assert ds.reviews("d", "s008").height == 1
    assert ds.audit_log(dataset="d", sample_id="s008", action="review.save").height == 1


def test_eight_threads_distinct_samples_lose_nothing(store, tmp_path):
    n_threads, per_thread = 8, 250
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(json.dumps({"id": f"m{i}", "text": f"t{i}", "label": "cancel"})
                              for i in range(n_threads * per_thread)), encoding="utf-8")
    import_file(store, path, "many", labels=LABELS)
    errors = []

    def worker(t):
        try:
            for j in range(per_thread):
                save_review(store, "many", f"m{t * per_thread + j}", "refund", f"r{t}", "bulk", 0)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    run_threads(worker, n_threads)
    assert errors == []
    counts = store.table_counts()
    assert counts["reviews"] == n_threads * per_thread
    assert store.audit_log(dataset="many", action="review.save", limit=10_000).height == n_threads * per_thread


def test_claims_never_hand_out_one_entry_twice(ds):
    ids = [f"s{i:03d}" for i in range(10, 30)]
    ds.enqueue("d", ids, "label_issue", actor="lead", priority=list(range(20)))
    got, barrier = [], threading.Barrier(4)

    def claimer(i):
        barrier.wait()
        for _ in range(5):
            entry = ds.claim_queue_entry("d", f"r{i}-{_}", claim_ttl_seconds=600)
            got.append(entry["sample_id"])

    run_threads(claimer, 4)
    assert sorted(got) == sorted(ids)
    assert ds.claim_queue_entry("d", "late", claim_ttl_seconds=600) is None


def test_claim_returns_held_entry_and_expired_claims_are_reclaimed(ds):
    ds.enqueue("d", ["s031", "s032"], "manual", actor="lead", priority=[2, 1])
    first = ds.claim_queue_entry("d", "rita", claim_ttl_seconds=600)
    assert first["sample_id"] == "s031"
    assert ds.claim_queue_entry("d", "rita", claim_ttl_seconds=600)["entry_id"] == first["entry_id"]
    assert ds.claim_queue_entry("d", "sam", claim_ttl_seconds=600)["sample_id"] == "s032"
    # With a zero time-to-live every claim has expired: the top entry goes to the next reviewer.
    assert ds.claim_queue_entry("d", "tom", claim_ttl_seconds=0)["sample_id"] == "s031"


def test_skip_and_release(ds):
    ds.enqueue("d", ["s033"], "manual", actor="lead")
    entry = ds.claim_queue_entry("d", "rita", claim_ttl_seconds=600)
    ds.set_queue_status(entry["entry_id"], "open", actor="rita")
    assert ds.queue("d", status=["open"]).height == 1
    ds.set_queue_status(entry["entry_id"], "skipped", actor="rita")
    assert ds.queue("d", status=["open", "claimed"]).height == 0
    with pytest.raises(ValueError):
        ds.set_queue_status(entry["entry_id"], "bogus", actor="rita")


# ------------------------------------------------------------- a save that committed is never a conflict
def test_a_retried_save_that_committed_returns_its_version_and_writes_nothing(ds):
    """Issue 15, item 5: the desk saved, the store went busy before the next claim, the retry saved
    the same label on the same base again. That save committed: success, not "changed by rita"."""
    assert save_review(ds, "d", "s010", "refund", "rita", "first", 0) == 1
    before = ds.table_counts()
    assert save_review(ds, "d", "s010", "refund", "rita", "first", 0) == 1
    assert ds.table_counts() == before  # no second review, no second audit row
    # Someone else's save on top does not turn the committed save into a conflict either.
    save_review(ds, "d", "s010", "other", "sam", None, 1)
    assert save_review(ds, "d", "s010", "refund", "rita", "first", 0) == 1
    assert ds.reviews("d", "s010")["new_label"].to_list() == ["refund", "other"]


@pytest.mark.parametrize("reviewer, label, base, who", [
    ("rita", "other", 0, "you (rita)"),   # the same reviewer, another label (a second tab): a real conflict
    ("sam", "refund", 0, "rita"),         # the same label by someone else
])
def test_only_the_same_reviewer_label_and_base_count_as_the_committed_save(ds, reviewer, label, base, who):
    save_review(ds, "d", "s011", "refund", "rita", None, 0)
    with pytest.raises(ReviewConflict, match=re.escape(f"changed by {who}")):
        save_review(ds, "d", "s011", label, reviewer, None, base)
    assert ds.reviews("d", "s011").height == 1


def test_the_same_save_racing_itself_on_eight_threads_is_one_review_and_eight_successes(ds):
    results = race(lambda i: save_review(ds, "d", "s012", "other", "rita", None, 0), 8, ReviewConflict)
    assert results == [1] * 8
    assert ds.reviews("d", "s012").height == 1
    assert ds.audit_log(dataset="d", sample_id="s012", action="review.save").height == 1


def test_undo_is_of_the_version_seen_and_idempotent(ds):
    save_review(ds, "d", "s013", "other", "rita", None, 0)  # cancel -> other
    assert undo_review(ds, "d", "s013", "rita", 1) == 2
    assert undo_review(ds, "d", "s013", "rita", 1) == 2  # a retry: the undo committed already
    assert ds.reviews("d", "s013")["new_label"].to_list() == ["other", "cancel"]
    with pytest.raises(ReviewError, match="no review version 0"):
        undo_review(ds, "d", "s014", "rita", 0)


def test_undo_save_restores_and_claims_the_entry_again(ds):
    from core.queue import claim_next, held_claims, skip_entry

    ds.enqueue("d", ["s015", "tie"], "manual", "lead", priority=[2, 1])
    entry = claim_next(ds, "d", "rita")
    v = save_review(ds, "d", "s015", "refund", "rita", None, 0)
    nxt = claim_next(ds, "d", "rita")
    assert nxt["sample_id"] == "tie"
    out = undo_save(ds, "d", "s015", "rita", v, entry["entry_id"])
    assert out["version"] == 2 and out["entry"]["status"] == "claimed" and out["entry"]["claimed_by"] == "rita"
    assert current_label(ds, "d", "s015") == ("cancel", "review")
    assert set(held_claims(ds, "rita")["sample_id"]) == {"s015", "tie"}  # both shown by the desk, one by one
    # A tie had no label before: undo only gives the entry back for a new label.
    v_tie = save_review(ds, "d", "tie", "other", "rita", None, 0)
    out = undo_save(ds, "d", "tie", "rita", v_tie, nxt["entry_id"])
    assert out["version"] is None and out["entry"]["status"] == "claimed"
    assert ds.reviews("d", "tie").height == 1
    # Changed by someone else since: a conflict, and nothing is claimed again.
    save_review(ds, "d", "tie", "cancel", "sam", None, 1)
    skip_entry(ds, nxt["entry_id"], "rita")
    with pytest.raises(ReviewConflict, match="sam"):
        undo_save(ds, "d", "tie", "rita", v_tie, nxt["entry_id"])
    assert ds.queue("d").filter(pl.col("sample_id") == "tie")["status"].to_list() == ["skipped"]
    assert ds.audit_log(dataset="d", action="queue.reopen").height == 2


def test_review_item_reads_version_and_current_label(ds):
    ds.enqueue("d", ["s016"], "label_issue", "lead", priority=0.5)
    save_review(ds, "d", "s016", "other", "rita", None, 0)
    ds.enqueue("d", ["s016"], "label_issue", "lead", priority=0.5)
    from core.queue import claim_next

    item = review_item(ds, "d", claim_next(ds, "d", "sam"))
    assert {k: item[k] for k in ("dataset", "sample_id", "reason", "priority", "base_version", "gold",
                                 "gold_source")} == {"dataset": "d", "sample_id": "s016", "reason": "label_issue",
                                                     "priority": 0.5, "base_version": 1, "gold": "other",
                                                     "gold_source": "review"}


# ------------------------------------------------------------------------------ exclusions undone
def test_excluded_samples_list_and_include_again(ds):
    assert excluded_samples(ds, "d").height == 0
    ds.set_excluded("d", ["s020", "s021"], True, "lead", reason="data quality: duplicates")
    ex = excluded_samples(ds, "d")
    assert ex["sample_id"].to_list() == ["s020", "s021"]
    assert ex["preview"][0].startswith("请取消订单 20")
    assert set(ex["excluded_by"]) == {"lead"} and set(ex["reason"]) == {"data quality: duplicates"}
    assert include_again(ds, "d", ["s020"], "lead", "not a duplicate") == 1
    assert excluded_samples(ds, "d")["sample_id"].to_list() == ["s021"]
    audit = ds.audit_log(dataset="d", action="sample.include").row(0, named=True)
    assert audit["actor"] == "lead" and json.loads(audit["detail"])["reason"] == "not a duplicate"
    assert include_again(ds, "d", ["s020"], "lead") == 0  # already included


def test_exclusion_sources_takes_the_latest_exclusion_of_each_sample():
    audit = pl.DataFrame({
        "logged_at": [datetime(2025, 5, 2), datetime(2025, 5, 1), datetime(2025, 4, 1)],
        "actor": ["lee", "kim", "kim"],
        "action": ["sample.exclude", "sample.exclude", "sample.include"],
        "detail": [json.dumps({"sample_ids": ["a"], "reason": "pii"}),
                   json.dumps({"sample_ids": ["a", "b"], "reason": "dup"}), None],
    })
    assert exclusion_sources(audit, ["a", "b", "c"]) == {
        "a": {"excluded_by": "lee", "excluded_at": datetime(2025, 5, 2), "reason": "pii"},
        "b": {"excluded_by": "kim", "excluded_at": datetime(2025, 5, 1), "reason": "dup"},
    }
