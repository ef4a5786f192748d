"""Gold labels with a chosen consensus method, gold (honeypot) questions in the store, and annotators scored on them."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from crowds import LABELS, configure_users, crowd_rows, long_frame
from factories import import_rows

from core import gold as G
from core.consensus import annotator_accuracy_on_gold, consensus
from core.gold import (
    consensus_gold,
    consensus_method,
    consensus_of,
    dataset_gold,
    gold_labels,
    gold_threshold,
    sample_gold,
    score_gold_questions,
    set_consensus_method,
    set_gold_threshold,
    share_interval,
)
from core.roles import PermissionDenied
from core.store import StoreError


def ann(rows):
    return pl.DataFrame(rows, schema={"sample_id": pl.Utf8, "annotator": pl.Utf8, "label": pl.Utf8}, orient="row")


def rev(rows):
    return pl.DataFrame(rows, schema={"sample_id": pl.Utf8, "version": pl.Int64, "new_label": pl.Utf8}, orient="row")


NO_REVIEWS = rev([])


def as_dict(frame: pl.DataFrame, *columns: str) -> dict:
    return {r[0]: r[1:] for r in frame.select("sample_id", *columns).iter_rows()}


@pytest.fixture
def crowd(store, tmp_path):
    """60 samples rated by 3 of 4 annotators (one weak), model probabilities for all of them (round 1)."""
    rows, truth = crowd_rows(probs=True)
    import_rows(store, tmp_path, rows, name="ds", labels=LABELS, pred_round=1)
    return store, truth


# ------------------------------------------------------------------------ the pure rule, by hand
def test_majority_confidence_is_the_winners_share_and_a_tie_has_no_gold_label():
    votes = ann([("a", "u1", "x"), ("a", "u2", "x"), ("a", "u3", "y"),   # 2 of 3
                 ("b", "u1", "x"),                                      # a majority of one
                 ("c", "u1", "x"), ("c", "u2", "y")])                   # a tie
    found = consensus_of(votes, "majority")
    assert as_dict(found.frame, "consensus_label", "confidence", "n_ratings", "source") == {
        "a": ("x", pytest.approx(2 / 3), 3, "majority"), "b": ("x", 1.0, 1, "majority"),
        "c": (None, 0.5, 2, "majority")}
    gold = consensus_gold(votes, NO_REVIEWS, "majority").labels
    assert gold.columns == ["sample_id", "gold_label", "source", "confidence"]
    assert as_dict(gold, "gold_label", "source") == {"a": ("x", "majority"), "b": ("x", "majority")}


def test_precedence_review_then_gold_question_then_consensus():
    votes = ann([("a", "u1", "x"), ("a", "u2", "x"), ("b", "u1", "x"), ("b", "u2", "x"), ("c", "u1", "x"),
                 ("c", "u2", "x")])
    reviews = rev([("a", 1, "y"), ("a", 2, "z")])
    questions = pl.DataFrame({"sample_id": ["a", "b"], "gold_label": ["q", "q"]})
    gold = consensus_gold(votes, reviews, "majority", gold_questions=questions).labels
    assert as_dict(gold, "gold_label", "source", "confidence") == {
        "a": ("z", "review", 1.0), "b": ("q", "gold_question", 1.0), "c": ("x", "majority", 1.0)}
    assert set(gold["source"]) <= set(G.GOLD_SOURCES)


@pytest.mark.parametrize("seed", range(5))
def test_majority_method_gives_exactly_the_plain_gold_labels(seed):
    rows, _ = crowd_rows(n=80, per_item=3, seed=seed)
    votes = long_frame(rows)
    reviewed = sorted({r["id"] for r in rows})[::7]
    reviews = rev([(s, 1, "other") for s in reviewed])
    plain = gold_labels(votes, reviews)
    chosen = consensus_gold(votes, reviews, "majority").labels
    assert chosen.select("sample_id", "gold_label", "source").equals(plain)
    assert chosen.filter(pl.col("source") == "review")["confidence"].to_list() == [1.0] * len(reviewed)


@pytest.mark.parametrize("seed", range(3))
def test_dawid_skene_gold_is_consensus_py_on_the_ratings_matrix(seed):
    from core.agreement import ratings_matrix

    rows, _ = crowd_rows(n=120, seed=seed)
    votes = long_frame(rows)
    found = consensus_of(votes, "dawid_skene", labels=LABELS)
    matrix, names, ids = ratings_matrix(votes)
    expected = consensus(matrix, "dawid_skene", annotators=names, labels=LABELS)
    assert found.frame["sample_id"].to_list() == ids
    assert found.frame["consensus_label"].to_list() == list(expected.labels)
    np.testing.assert_allclose(found.frame["confidence"].to_numpy(), expected.confidence, rtol=0, atol=1e-12)
    assert set(found.frame["source"]) == {"dawid_skene"} and found.note is None
    gold = consensus_gold(votes, NO_REVIEWS, "dawid_skene", labels=LABELS).labels
    assert gold.height == len(ids)  # Dawid-Skene labels every rated sample: no ties left out


def test_dawid_skene_beats_majority_on_a_crowd_with_a_weak_annotator():
    rows, truth = crowd_rows(n=600, skills={"a": 0.9, "b": 0.85, "c": 0.45, "d": 0.4}, seed=3)
    votes = long_frame(rows)

    def accuracy(method: str) -> float:
        gold = dict(consensus_gold(votes, NO_REVIEWS, method, labels=LABELS).labels
                    .select("sample_id", "gold_label").iter_rows())
        return sum(gold.get(s) == t for s, t in truth.items()) / len(truth)

    assert accuracy("dawid_skene") > accuracy("majority") + 0.05


def test_one_annotator_cannot_support_dawid_skene_so_majority_is_used_and_said():
    votes = ann([("a", "u1", "x"), ("b", "u1", "y")])
    found = consensus_of(votes, "dawid_skene")
    assert set(found.frame["source"]) == {"majority"}
    assert "cannot run" in found.note and "majority" in found.note


def test_crowdlab_without_probabilities_falls_back_to_dawid_skene_and_says_so():
    rows, _ = crowd_rows(n=40)
    found = consensus_of(long_frame(rows), "crowdlab", None, LABELS)
    assert set(found.frame["source"]) == {"dawid_skene"}
    assert "CROWDLAB needs" in found.note and found.crowdlab_fit is None


def test_crowdlab_labels_the_samples_with_probabilities_and_only_those():
    from core.agreement import ratings_matrix

    rows, truth = crowd_rows(n=80, seed=1)
    votes = long_frame(rows)
    ids = sorted(truth)
    with_probs = ids[::2]
    probs = pl.DataFrame({"sample_id": with_probs,
                          "probs": [[0.8 if lab == truth[s] else 0.1 for lab in LABELS] for s in with_probs]})
    found = consensus_of(votes, "crowdlab", probs, LABELS)
    sources = dict(found.frame.select("sample_id", "source").iter_rows())
    assert {s for s, v in sources.items() if v == "crowdlab"} == set(with_probs)
    assert "the other 40 have none" in found.note
    # the crowdlab rows are core.consensus's CROWDLAB on those samples
    matrix, names, all_ids = ratings_matrix(votes)
    keep = np.isin(all_ids, with_probs)
    p = np.array([[0.8 if lab == truth[s] else 0.1 for lab in LABELS] for s in np.asarray(all_ids)[keep]])
    expected = consensus(matrix[keep], "crowdlab", annotators=names, pred_probs=p, labels=LABELS)
    got = found.frame.filter(pl.col("source") == "crowdlab")
    assert got["consensus_label"].to_list() == list(expected.labels)
    np.testing.assert_allclose(got["confidence"].to_numpy(), expected.confidence, atol=1e-12)


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="method"):
        consensus_of(ann([("a", "u1", "x")]), "median")
    with pytest.raises(ValueError, match="annotations"):
        consensus_of(pl.DataFrame({"sample_id": ["a"]}), "majority")


# ------------------------------------------------------------------------ settings and the store
def test_consensus_method_and_gold_threshold_settings(store, tmp_path):
    import_rows(store, tmp_path, crowd_rows(n=10)[0], name="ds", labels=LABELS)
    assert consensus_method(store.get_dataset("ds").settings) == "majority"
    assert gold_threshold(store.get_dataset("ds").settings) == 0.6
    assert consensus_method({"consensus_method": "vote-of-the-loudest"}) == "majority"
    assert gold_threshold({"gold_threshold": 7}) == 0.6
    set_consensus_method(store, "ds", "dawid_skene", "local-lead")
    set_gold_threshold(store, "ds", 0.75, "local-lead")
    info = store.get_dataset("ds")
    assert consensus_method(info.settings) == "dawid_skene" and gold_threshold(info.settings) == 0.75
    audit = store.audit_log(dataset="ds", action="dataset.setting")
    assert set(audit["new_value"].to_list()) >= {'"dawid_skene"', "0.75"}
    with pytest.raises(ValueError, match="method"):
        set_consensus_method(store, "ds", "median", "local-lead")
    with pytest.raises(ValueError, match="between 0 and 1"):
        set_gold_threshold(store, "ds", 1.5, "local-lead")


def test_only_a_lead_may_change_the_method_or_mark_gold(store, tmp_path, monkeypatch):
    configure_users(monkeypatch, tmp_path, {"lee": "lead", "rita": "reviewer"})
    import_rows(store, tmp_path, crowd_rows(n=10)[0], name="ds", labels=LABELS, actor="lee")
    with pytest.raises(PermissionDenied):
        set_consensus_method(store, "ds", "dawid_skene", "rita")
    with pytest.raises(PermissionDenied):
        store.set_gold_question("ds", "s001", "refund", "rita")
    store.set_gold_question("ds", "s001", "refund", "lee")
    assert store.gold_questions("ds")["set_by"].to_list() == ["lee"]


def test_gold_questions_set_replace_list_clear_and_audit(store, tmp_path):
    import_rows(store, tmp_path, crowd_rows(n=10)[0], name="ds", labels=LABELS)
    store.set_gold_question("ds", "s001", "refund", "local-lead", source="review")
    store.set_gold_question("ds", "s001", "cancel", "local-lead", source="manual")  # replaces
    n = store.set_gold_questions("ds", pl.DataFrame({"sample_id": ["s002", "s003"], "gold_label": ["other", "refund"]}),
                                 "local-lead")
    assert n == 2 and store.gold_question_count("ds") == 3
    listed = store.gold_questions("ds")
    assert as_dict(listed, "gold_label", "source") == {
        "s001": ("cancel", "manual"), "s002": ("other", "import"), "s003": ("refund", "import")}
    audit = store.audit_log(dataset="ds", action="gold.set")
    assert audit.height == 3
    replaced = audit.filter(pl.col("sample_id") == "s001").sort("audit_id")
    assert replaced["old_value"].to_list() == [None, "refund"] and replaced["new_value"].to_list() == ["refund", "cancel"]
    assert store.clear_gold_question("ds", "s001", "local-lead") is True
    assert store.clear_gold_question("ds", "s001", "local-lead") is False
    assert store.audit_log(dataset="ds", action="gold.clear").height == 2
    assert store.gold_questions("ds")["sample_id"].to_list() == ["s002", "s003"]


@pytest.mark.parametrize("rows, error, match", [
    ({"sample_id": ["s001"], "gold_label": ["refnud"]}, ValueError, "not a label of"),
    ({"sample_id": ["nope"], "gold_label": ["refund"]}, StoreError, "unknown sample"),
    ({"sample_id": ["s001", "s001"], "gold_label": ["refund", "cancel"]}, ValueError, "more than once"),
    ({"sample_id": ["s001"], "gold_label": [None]}, ValueError, "without a gold_label"),
    ({"sample_id": ["s001"]}, ValueError, "missing column"),
])
def test_bad_gold_questions_write_nothing(store, tmp_path, rows, error, match):
    import_rows(store, tmp_path, crowd_rows(n=10)[0], name="ds", labels=LABELS)
    with pytest.raises(error, match=match):
        store.set_gold_questions("ds", pl.DataFrame(rows), "local-lead")
    with pytest.raises(ValueError, match="source"):
        store.set_gold_question("ds", "s001", "refund", "local-lead", source="guess")
    assert store.gold_question_count("ds") == 0


def test_set_gold_questions_joins_the_callers_transaction(store, tmp_path):
    """The importer's hook: its transaction commits the gold questions with its rows, or neither."""
    import_rows(store, tmp_path, crowd_rows(n=10)[0], name="ds", labels=LABELS)
    frame = pl.DataFrame({"sample_id": ["s004", "new-1"], "gold_label": ["other", "cancel"]})
    insert_sample = ("INSERT INTO samples (dataset, sample_id, text, content_hash) "
                     "VALUES ('ds', 'new-1', 'a sample of this import', 'h')")
    with pytest.raises(RuntimeError), store.transaction() as cur:
        cur.execute(insert_sample)
        store.set_gold_questions("ds", frame, "local-lead")
        raise RuntimeError("the import failed later")
    assert store.gold_question_count("ds") == 0 and not store.has_sample("ds", "new-1")
    with store.transaction() as cur:
        cur.execute(insert_sample)  # the import's own sample, not committed yet, is found
        assert store.set_gold_questions("ds", frame, "local-lead") == 2
    assert store.gold_question_count("ds") == 2


def test_dataset_gold_follows_the_setting_and_gold_questions(crowd):
    store, truth = crowd
    plain = gold_labels(store.annotations("ds"), store.latest_reviews("ds"))
    found = dataset_gold(store, "ds")
    assert found.method == "majority" and found.labels.select("sample_id", "gold_label", "source").equals(plain)
    set_consensus_method(store, "ds", "dawid_skene", "local-lead")
    found = dataset_gold(store, "ds")
    assert found.method == "dawid_skene" and found.labels.height == len(truth)
    assert set(found.labels["source"]) == {"dawid_skene"}
    set_consensus_method(store, "ds", "crowdlab", "local-lead")
    store.set_gold_question("ds", "s005", "other", "local-lead")
    found = dataset_gold(store, "ds")
    assert found.prob_round == 1 and found.note is None
    assert found.labels.group_by("source").len().sort("source").rows() == [("crowdlab", 59), ("gold_question", 1)]
    assert dataset_gold(store, "ds", "majority").labels.height == plain.height  # an override, for comparisons


def test_dataset_gold_is_kept_until_the_data_changes(crowd):
    from core.review import save_review

    store, truth = crowd
    set_consensus_method(store, "ds", "dawid_skene", "local-lead")
    first = dataset_gold(store, "ds")
    assert dataset_gold(store, "ds") is first  # the same data version: not refitted
    sid = sorted(truth)[0]
    other = next(lab for lab in LABELS if lab != truth[sid])
    save_review(store, "ds", sid, other, "local-lead", None, base_version=0)
    after = dataset_gold(store, "ds")
    assert after is not first
    assert after.labels.filter(pl.col("sample_id") == sid).rows() == [(sid, other, "review", 1.0)]


def test_sample_gold_is_dataset_gold_of_those_samples(crowd):
    store, truth = crowd
    ids = sorted(truth)[5:25]
    for method in ("majority", "dawid_skene"):
        set_consensus_method(store, "ds", method, "local-lead")
        expected = dataset_gold(store, "ds").labels.filter(pl.col("sample_id").is_in(ids))
        assert sample_gold(store, "ds", ids).equals(expected), method


def test_iterations_label_errors_and_the_bulk_queue_use_the_dataset_method(crowd):
    from core.analyses.iterations import iterations_view
    from core.checks.label_errors import _gold
    from core.queue import bulk_entries, queue_manual

    store, truth = crowd
    before = iterations_view(store, "ds")
    assert before["gold_method"] == "majority" and before["gold_note"] is None
    set_consensus_method(store, "ds", "dawid_skene", "local-lead")
    after = iterations_view(store, "ds")
    assert after["gold_method"] == "dawid_skene" and after["gold_sources"] == {"dawid_skene": len(truth)}
    assert after["n_gold"] == len(truth) > before["n_gold"]  # the majority ties get a label
    samples = store.samples("ds")
    assert set(_gold(store, "ds", samples)["source"]) == {"dawid_skene"}
    queue_manual(store, "ds", sorted(truth)[:5], "local-lead")
    table = bulk_entries(store, "ds", "manual")
    assert set(table["source"]) == {"dawid_skene"} and table["current_label"].null_count() == 0


# ------------------------------------------------------------------------ scoring on gold questions
def test_gold_scores_by_hand():
    votes = ann([
        ("g1", "a", "x"), ("g2", "a", "x"), ("g3", "a", "y"), ("g4", "a", "x"),   # 3 of 4 right
        ("g1", "b", "y"), ("g2", "b", "x"),                                       # 1 of 2 right
        ("n1", "c", "x"),                                                         # no gold item
    ])
    questions = pl.DataFrame({"sample_id": ["g1", "g2", "g3", "g4"], "gold_label": ["x", "x", "y", "y"]})
    scores = {r["annotator"]: r for r in score_gold_questions(votes, questions, threshold=0.6).iter_rows(named=True)}
    a, b, c = scores["a"], scores["b"], scores["c"]
    assert (a["n_gold"], a["accuracy"], a["flagged"]) == (4, 0.75, False)
    # kappa of a: p_o = 3/4; a says x 3/4, y 1/4; gold x 1/2, y 1/2 -> p_e = 1/2 -> (3/4 - 1/2) / (1/2) = 0.5
    assert a["kappa"] == pytest.approx(0.5)
    assert a["accuracy_low"] <= a["accuracy"] <= a["accuracy_high"] and a["kappa_low"] <= a["kappa_high"]
    # b: p_o = 1/2; b says y, x; gold x, x -> p_e = 1/2 * 1 = 1/2 -> kappa 0
    assert (b["n_gold"], b["accuracy"], b["flagged"], b["kappa"]) == (2, 0.5, True, pytest.approx(0.0))
    assert c["n_gold"] == 0 and c["flagged"] is None and math.isnan(c["accuracy"]) and "no gold" in c["reason"]


def test_gold_scores_agree_with_consensus_py():
    from core.agreement import ratings_matrix

    rows, truth = crowd_rows(n=150, seed=4)
    votes = long_frame(rows)
    questions = pl.DataFrame({"sample_id": sorted(truth)[::3], "gold_label": [truth[s] for s in sorted(truth)[::3]]})
    ours = score_gold_questions(votes, questions, n_boot=200, seed=0)
    matrix, names, ids = ratings_matrix(votes)
    gold = [truth[s] if s in set(questions["sample_id"]) else None for s in ids]
    theirs = annotator_accuracy_on_gold(matrix, gold, names, n_boot=200, seed=0).sort("annotator")
    for column in ("annotator", "n_gold", "accuracy", "kappa", "kappa_low", "kappa_high"):
        assert ours[column].to_list() == theirs[column].to_list(), column
    assert ours.filter(pl.col("annotator") == "weak")["flagged"].to_list() == [True]
    assert ours.filter(pl.col("annotator") != "weak")["flagged"].to_list() == [False] * 3


def test_annotator_gold_scores_flag_below_the_datasets_threshold(crowd):
    store, truth = crowd
    ids = sorted(truth)[::2]
    store.set_gold_questions("ds", pl.DataFrame({"sample_id": ids, "gold_label": [truth[s] for s in ids]}),
                             "local-lead")
    flagged = G.annotator_gold_scores(store, "ds").filter(pl.col("flagged"))["annotator"].to_list()
    assert flagged == ["weak"]
    set_gold_threshold(store, "ds", 0.0, "local-lead")
    assert not G.annotator_gold_scores(store, "ds")["flagged"].any()


@pytest.mark.parametrize("hits, n", [(0, 1), (3, 4), (45, 50), (50, 50), (700, 1000)])
def test_share_interval_is_the_item_bootstrap(hits, n):
    low, high = share_interval(hits, n, n_boot=200, seed=0)
    assert 0.0 <= low <= hits / n <= high <= 1.0
    assert share_interval(hits, n, n_boot=200, seed=0) == (low, high)  # the same seed, the same interval
    # the binomial shortcut has the distribution of resampling the items: compare wide percentiles
    items = np.r_[np.ones(hits), np.zeros(n - hits)]
    rng = np.random.default_rng(1)
    brute = items[rng.integers(0, n, size=(20_000, n))].mean(axis=1)
    fast_low, fast_high = share_interval(hits, n, n_boot=20_000, seed=2)
    spread = max(3 / n, 0.01)
    assert abs(fast_low - np.quantile(brute, 0.025)) <= spread and abs(fast_high - np.quantile(brute, 0.975)) <= spread


def test_share_interval_without_items_is_undefined():
    assert all(math.isnan(v) for v in share_interval(0, 0))


def test_demo_weaker_annotator_is_found_and_gold_questions_land(tmp_path):
    """The demo's planted weak annotator is flagged (Dawid-Skene quality and gold accuracy), the careful ones are
    not, and the demo's gold_label column lands as gold questions through the importer."""
    from core.analyses.annotators import annotators_view
    from core.demo import DEMO_DATASET
    from core.seed import load_demo
    from core.store import open_store

    store = open_store(tmp_path / "demo.duckdb")
    load_demo(store)
    gold = store.gold_questions(DEMO_DATASET)
    assert 50 <= gold.height <= 60 and set(gold["source"]) == {"import"}
    table = {r["annotator"]: r for r in annotators_view(store, DEMO_DATASET, n_boot=20).table.iter_rows(named=True)}
    assert table["chen"]["flagged"] and table["chen"]["dawid_skene"] < 0.6
    assert table["chen"]["n_gold"] >= 45 and table["chen"]["gold_accuracy"] < 0.7
    for careful in ("alice", "bo"):
        assert not table[careful]["flagged"] and table[careful]["dawid_skene"] > 0.9
        assert table[careful]["gold_accuracy"] > 0.85
    store.close()
