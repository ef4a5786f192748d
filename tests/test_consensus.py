"""Tests of core.consensus: simulated crowds with known truth, crowd-kit and cleanlab as references, hand values."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from cleanlab.multiannotator import get_label_quality_multiannotator
from crowdkit.aggregation import DawidSkene
from sklearn.metrics import cohen_kappa_score

from core import consensus as cs

# every numpy RuntimeWarning (division by zero, empty slices) fails the test; the reference
# libraries are called inside `quiet()` (crowd-kit 1.4.2 warns under pandas 3)
pytestmark = pytest.mark.filterwarnings("error")

NAN = float("nan")
SKILLS = (0.95, 0.90, 0.70, 0.55, 0.40)  # the crowd: true per-annotator accuracy
N_CLASSES = 6


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def simulate_crowd(
    n: int, seed: int, errors: str = "uniform", per_item: int = 3, skills=SKILLS, n_classes: int = N_CLASSES
) -> tuple[np.ndarray, np.ndarray]:
    """(ratings (n, r) float with NaN, true labels (n,)): each item rated by ``per_item`` random annotators.

    An annotator gives the true label with their skill's probability; otherwise a wrong label,
    uniform over the other classes (``uniform``) or always the next class (``confusable``).
    """
    rng = np.random.default_rng(seed)
    skills = np.asarray(skills)
    r = skills.size
    true = rng.integers(0, n_classes, n)
    raters = np.argsort(rng.random((n, r)), axis=1)[:, :per_item]
    rows = np.repeat(np.arange(n), per_item)
    cols = raters.reshape(-1)
    truth = true[rows]
    if errors == "uniform":
        wrong = (truth + rng.integers(1, n_classes, truth.size)) % n_classes
    else:
        wrong = (truth + 1) % n_classes
    given = np.where(rng.random(truth.size) < skills[cols], truth, wrong)
    ratings = np.full((n, r), NAN)
    ratings[rows, cols] = given
    return ratings, true


def long_form(ratings: np.ndarray) -> pd.DataFrame:
    rows, cols = np.nonzero(~np.isnan(ratings))
    return pd.DataFrame({"task": rows, "worker": cols, "label": ratings[rows, cols].astype(np.int64)})


def crowdkit_fit(ratings: np.ndarray, n_classes: int, **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """crowd-kit's DawidSkene on the matrix: labels (n,) with -1 for unrated rows, max posterior,
    quality per annotator (mean confusion diagonal over the classes that occur), iterations."""
    ds = quiet(DawidSkene(**kwargs).fit, long_form(ratings))
    n, r = ratings.shape
    occurring = np.unique(ratings[~np.isnan(ratings)]).astype(int)
    labels = np.full(n, -1)
    labels[ds.labels_.index.to_numpy(dtype=int)] = ds.labels_.to_numpy(dtype=int)
    confidence = np.full(n, NAN)
    confidence[ds.probas_.index.to_numpy(dtype=int)] = ds.probas_.max(axis=1).to_numpy()
    quality = np.full(r, NAN)
    for j in range(r):
        if j in ds.errors_.index.get_level_values("worker"):
            table = ds.errors_.loc[j].reindex(index=occurring, columns=occurring).fillna(0.0).to_numpy(dtype=float)
            quality[j] = np.mean(np.diagonal(table))
    return labels, confidence, quality, len(ds.loss_history_)


def as_codes(labels: np.ndarray) -> np.ndarray:
    return np.array([-1 if v is None else int(v) for v in labels])


@functools.cache
def crowd(seed: int, errors: str, per_item: int = 3) -> tuple[np.ndarray, np.ndarray]:
    return simulate_crowd(3000, seed, errors, per_item)


# ---------------------------------------------------------------------------------------------
# Dawid-Skene on the simulated crowds
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("errors", "target"), [("uniform", 0.905), ("confusable", 0.94)])
def test_dawid_skene_recovers_truth_and_ranks_annotators(errors, target):
    ratings, true = crowd(0, errors)
    result = cs.consensus(ratings, "dawid_skene")
    majority = cs.consensus(ratings, "majority")
    accuracy = np.mean(as_codes(result.labels) == true)
    assert accuracy >= target
    assert accuracy > np.mean(as_codes(majority.labels) == true) + 0.05
    quality = result.annotator_quality["quality"].to_numpy()
    assert list(np.argsort(-quality)) == [0, 1, 2, 3, 4]
    assert np.abs(quality - np.asarray(SKILLS)).max() < 0.04
    assert result.reason is None and result.method == "dawid_skene"
    assert result.annotator_quality["n_items"].sum() == 3 * 3000
    for classes, table in result.confusion.values():
        assert classes == [float(c) for c in range(N_CLASSES)]
        np.testing.assert_allclose(table.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    ("seed", "errors", "per_item"),
    [(0, "uniform", 3), (1, "confusable", 3), (2, "uniform", 5), (3, "confusable", 5)],
)
def test_dawid_skene_equals_crowdkit_on_simulated_crowds(seed, errors, per_item):
    ratings, _ = crowd(seed, errors, per_item)
    labels, confidence, quality, iterations = crowdkit_fit(ratings, N_CLASSES)
    result = cs.consensus(ratings, "dawid_skene")
    assert result.iterations == iterations
    assert np.mean(as_codes(result.labels) == labels) >= 0.999
    np.testing.assert_allclose(result.annotator_quality["quality"].to_numpy(), quality, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.confidence, confidence, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_dawid_skene_equals_crowdkit_on_random_crowds(seed):
    """Random class counts, annotators, skills and ratings per item; some rows and one annotator empty."""
    rng = np.random.default_rng(100 + seed)
    n_classes = int(rng.integers(2, 8))
    skills = rng.uniform(0.3, 0.95, int(rng.integers(3, 9)))
    ratings, _ = simulate_crowd(1000, 200 + seed, ("uniform", "confusable")[seed % 2], 2, skills, n_classes)
    ratings[rng.random(ratings.shape) < 0.2] = NAN  # uneven ratings per item, some items unrated
    ratings[:, -1] = NAN  # an annotator without ratings
    n_iter, tol = (5, -np.inf) if seed % 3 == 0 else (100, 1e-5)  # a fixed number of iterations, or converge
    labels, confidence, quality, iterations = crowdkit_fit(ratings, n_classes, n_iter=n_iter, tol=tol)
    result = cs.consensus(ratings, "dawid_skene", n_iter=n_iter, tol=tol)
    assert result.iterations == iterations
    assert np.mean(as_codes(result.labels) == labels) >= 0.999
    np.testing.assert_allclose(result.annotator_quality["quality"].to_numpy(), quality, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.confidence, confidence, rtol=0, atol=1e-6)
    unrated = np.isnan(ratings).all(axis=1)
    assert unrated.any() and all(v is None for v in result.labels[unrated])
    last = result.annotator_quality.row(-1, named=True)
    assert last["n_items"] == 0 and np.isnan(last["quality"]) and last["annotator"] not in result.confusion


def test_dawid_skene_ignores_unused_classes_in_labels():
    ratings, _ = crowd(0, "uniform")
    plain = cs.consensus(ratings, "dawid_skene")
    wider = cs.consensus(ratings, "dawid_skene", labels=[-1.0, *range(N_CLASSES), 99.0])
    assert wider.label_order[0] == -1.0 and len(wider.label_order) == N_CLASSES + 2
    assert list(wider.labels) == list(plain.labels)
    assert wider.annotator_quality.equals(plain.annotator_quality)
    assert wider.confusion["0"][0] == plain.label_order


# ---------------------------------------------------------------------------------------------
# CROWDLAB
# ---------------------------------------------------------------------------------------------
def model_probabilities(true: np.ndarray, seed: int, strength: float = 2.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.0, (true.size, N_CLASSES))
    logits[np.arange(true.size), true] += strength
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("errors", ["uniform", "confusable"])
def test_crowdlab_equals_cleanlab(errors):
    ratings, true = crowd(4, errors)
    probs = model_probabilities(true, 4)
    np.random.seed(0)  # cleanlab breaks its last ties with the global generator; consensus seeds it with 0
    reference = quiet(get_label_quality_multiannotator, pd.DataFrame(ratings), probs, verbose=False)
    result = cs.consensus(ratings, "crowdlab", pred_probs=probs, labels=[float(c) for c in range(N_CLASSES)])
    expected = reference["label_quality"]
    np.testing.assert_array_equal(as_codes(result.labels), expected["consensus_label"].to_numpy())
    np.testing.assert_allclose(result.confidence, expected["consensus_quality_score"].to_numpy(), atol=1e-12)
    quality = reference["annotator_stats"]["annotator_quality"].sort_index().to_numpy()
    np.testing.assert_allclose(result.annotator_quality["quality"].to_numpy(), quality, atol=1e-12)
    assert result.confusion == {} and result.reason is None
    assert np.mean(as_codes(result.labels) == true) > np.mean(as_codes(cs.consensus(ratings).labels) == true)


def test_crowdlab_maps_string_labels_and_skips_unrated_rows():
    labels = ["退款", "cancel", "物流"]
    ratings = np.array(
        [["退款", "退款", None], ["cancel", "cancel", "物流"], [None, None, None], ["物流", "退款", "物流"],
         ["cancel", None, "cancel"], ["退款", "cancel", "退款"]], dtype=object)
    probs = np.full((6, 3), NAN)
    probs[[0, 1, 3, 4, 5]] = [[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.1, 0.7], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]]
    result = cs.consensus(ratings, "crowdlab", annotators=["ann", "bo", "cai"], pred_probs=probs, labels=labels)
    assert result.label_order == labels
    assert list(result.labels) == ["退款", "cancel", None, "物流", "cancel", "退款"]
    assert np.isnan(result.confidence[2]) and (result.confidence[[0, 1, 3, 4, 5]] > 0.5).all()
    assert result.annotator_quality["annotator"].to_list() == ["ann", "bo", "cai"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": [0, 1]}, "pred_probs: CROWDLAB needs"),
        ({"pred_probs": np.full((4, 2), 0.5)}, "labels: CROWDLAB needs the class list"),
        ({"labels": [0, 1], "pred_probs": np.full((4, 3), 1 / 3)}, r"pred_probs: expected shape \(4, 2\)"),
        ({"labels": [0, 1], "pred_probs": [[0.5, 0.5], [NAN, NAN], [0.5, 0.5], [0.5, 0.5]]},
         "pred_probs: 1 rated row.* lack probabilities"),
        ({"labels": [0, 1], "pred_probs": [[0.5, 0.5], [0.9, 0.9], [0.5, 0.5], [0.5, 0.5]]},
         "pred_probs: 1 row.* not probabilities"),
        ({"labels": [0], "pred_probs": np.ones((4, 1))}, "labels: the ratings use 1 label"),
    ],
)
def test_crowdlab_argument_errors(kwargs, message):
    ratings = [[0, 1], [1, 1], [0, 0], [1, None]]
    with pytest.raises(ValueError, match=message):
        cs.consensus(ratings, "crowdlab", **kwargs)


def test_crowdlab_accepts_missing_probabilities_on_unrated_rows():
    ratings = [[0, 1], [1, 1], [None, None], [0, 0]]
    probs = [[0.6, 0.4], [0.2, 0.8], [NAN, NAN], [0.7, 0.3]]
    result = cs.consensus(ratings, "crowdlab", pred_probs=probs, labels=[0, 1])
    assert list(result.labels) == [0, 1, None, 0]


# ---------------------------------------------------------------------------------------------
# Majority vote
# ---------------------------------------------------------------------------------------------
MAJORITY_CASE = [
    ["a", "a", "b"],  # a, 2/3
    ["b", "a", None],  # tie a/b -> a (first in label order), 1/2
    ["c", None, None],  # c, 1/1
    [None, None, None],  # unrated
    ["b", "b", "b"],  # b, 1
]


def test_majority_vote_hand_computed():
    result = cs.consensus(MAJORITY_CASE, annotators=["x", "y", "z"])
    assert list(result.labels) == ["a", "a", "c", None, "b"]
    np.testing.assert_allclose(result.confidence, [2 / 3, 0.5, 1.0, NAN, 1.0])
    assert result.label_order == ["a", "b", "c"] and result.method == "majority" and result.reason is None
    # quality: samples with ≥ 2 ratings and no tie (rows 0 and 4): x 2/2, y 2/2, z 1/2
    assert result.annotator_quality.to_dict(as_series=False) == {
        "annotator": ["x", "y", "z"], "quality": [1.0, 1.0, 0.5], "n_items": [4, 3, 2]}
    assert result.confusion == {} and result.iterations is None


def test_majority_ties_follow_label_order():
    tied = [["b", "a"], ["a", "b"], ["c", "b"]]
    assert list(cs.consensus(tied).labels) == ["a", "a", "b"]
    assert list(cs.consensus(tied, labels=["c", "b", "a"]).labels) == ["b", "b", "c"]
    np.testing.assert_allclose(cs.consensus(tied).confidence, 0.5)


def test_majority_agrees_with_agreement_majority_vote():
    from core.agreement import majority_vote

    ratings, _ = crowd(5, "uniform")
    labels, _, support = majority_vote(ratings)
    result = cs.consensus(ratings)
    assert list(result.labels) == list(labels)
    np.testing.assert_allclose(result.confidence, support)


# ---------------------------------------------------------------------------------------------
# Labels and missing values as they come
# ---------------------------------------------------------------------------------------------
def test_chinese_and_english_labels_give_the_same_result_as_codes():
    names = np.array(["退款 refund", "取消订单", "shipping", "发票", "complaint", "其他 other"], dtype=object)
    ratings, _ = crowd(6, "confusable")
    text = np.full(ratings.shape, None, dtype=object)
    present = ~np.isnan(ratings)
    text[present] = names[ratings[present].astype(int)]
    for method in ("majority", "dawid_skene"):
        by_code = cs.consensus(ratings, method, labels=[float(c) for c in range(N_CLASSES)])
        by_text = cs.consensus(text, method, labels=list(names))
        assert list(by_text.labels) == [None if v is None else names[int(v)] for v in by_code.labels]
        np.testing.assert_allclose(by_text.confidence, by_code.confidence)
        assert by_text.annotator_quality.equals(by_code.annotator_quality)
    assert cs.consensus(text).label_order == sorted(names.tolist())


@pytest.mark.parametrize("container", ["none", "nan", "pd.NA", "pandas string", "pandas Int64", "polars"])
def test_missing_values_in_every_form(container):
    base = [[1, 2, None], [2, 2, 1], [None, None, None], [3, None, 3], [1, 1, 2]]
    if container == "none":
        ratings = base
    elif container == "nan":
        ratings = np.array([[NAN if v is None else v for v in row] for row in base])
    elif container == "pd.NA":
        ratings = np.array([[pd.NA if v is None else v for v in row] for row in base], dtype=object)
    elif container == "pandas string":
        ratings = pd.DataFrame(base, columns=["a", "b", "c"]).astype("Int64").astype("string")
    elif container == "pandas Int64":
        ratings = pd.DataFrame(base, columns=["a", "b", "c"]).astype("Int64")
    else:
        ratings = pl.DataFrame(base, schema=["a", "b", "c"], orient="row")
    as_text = container == "pandas string"
    for method in ("majority", "dawid_skene"):
        reference = cs.consensus(base, method)
        result = cs.consensus(ratings, method)
        assert [None if v is None else int(v) for v in result.labels] == list(reference.labels)
        np.testing.assert_allclose(result.confidence, reference.confidence)
        np.testing.assert_allclose(result.annotator_quality["quality"], reference.annotator_quality["quality"])
        assert result.annotator_quality["n_items"].to_list() == [4, 3, 3]
        assert (result.label_order == ["1", "2", "3"]) if as_text else (result.label_order == [1, 2, 3])
        assert np.isnan(result.confidence[2])
    if container in ("pandas string", "pandas Int64", "polars"):
        assert result.annotator_quality["annotator"].to_list() == ["a", "b", "c"]


def test_equal_numbers_are_one_label():
    result = cs.consensus(np.array([[1, 1.0, True], [0, 0.0, False]], dtype=object))
    assert len(result.label_order) == 2
    np.testing.assert_allclose(result.confidence, 1.0)


# ---------------------------------------------------------------------------------------------
# Degenerate input
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["majority", "dawid_skene", "crowdlab"])
@pytest.mark.parametrize(
    ("ratings", "phrase", "labels"),
    [
        (np.empty((0, 0)), "empty", []),
        ([[None, None], [None, None]], "no ratings", [None, None]),
        ([["a", None], ["b", None], ["a", None]], "only annotator '0'", ["a", "b", "a"]),
        ([["a", "a"], ["a", None], [None, "a"]], "same label ('a')", ["a", "a", "a"]),
        ([["a", None], [None, "b"], ["b", None]], "no sample was rated by two", ["a", "b", "b"]),
    ],
    ids=["empty", "no-ratings", "one-annotator", "one-class", "no-overlap"],
)
def test_degenerate_input_gives_a_reason_and_the_majority_labels(method, ratings, phrase, labels):
    kwargs = {}
    if method == "crowdlab":
        kwargs = {"labels": ["a", "b"], "pred_probs": np.full((len(labels), 2), 0.5)}
    result = cs.consensus(ratings, method, **kwargs)
    assert result.reason is not None and phrase in result.reason
    assert list(result.labels) == labels
    assert result.method == method and result.confusion == {}
    assert result.confidence.shape == (len(labels),)
    if method != "majority":
        assert result.annotator_quality["quality"].is_nan().all()


def test_one_class_majority_quality_is_agreement():
    result = cs.consensus([["a", "a"], ["a", None]])
    assert "same label" in result.reason
    assert result.annotator_quality["quality"].to_list() == [1.0, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "wawa"}, "method: expected one of majority, dawid_skene, crowdlab"),
        ({"n_iter": -1}, "n_iter: expected a whole number"),
        ({"n_iter": 2.5}, "n_iter: expected a whole number"),
        ({"tol": NAN}, "tol: expected a number"),
        ({"annotators": ["x"]}, "annotators: expected 2 names"),
        ({"annotators": ["x", "x"]}, "annotators: names must be unique"),
        ({"annotators": "xy"}, "annotators: expected a sequence"),
        ({"labels": ["a"]}, "labels: the ratings use 1 label"),
        ({"labels": ["a", "b", "a"]}, "labels: expected distinct"),
        ({"labels": "ab"}, "labels: expected a sequence"),
        ({"labels": ["a", None, "b"]}, "labels: a class label cannot be missing"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cs.consensus([["a", "b"], ["b", "b"]], **kwargs)


@pytest.mark.parametrize("ratings", ["ab", None, [1, 2, 3], [[1, 2], [3]], np.zeros((2, 2, 2)), [[{"a"}, "b"]]])
def test_bad_ratings_raise(ratings):
    with pytest.raises(ValueError, match="ratings"):
        cs.consensus(ratings)


def test_large_degenerate_and_one_column_input_runs_without_warnings():
    big = np.full((50_000, 4), NAN)
    big[:, 0] = np.arange(50_000) % 3
    for method in ("majority", "dawid_skene"):
        assert "only annotator" in cs.consensus(big, method).reason


# ---------------------------------------------------------------------------------------------
# Gold (honeypot) questions
# ---------------------------------------------------------------------------------------------
GOLD_RATINGS = [
    ["x", "x", "y"],
    ["x", "y", None],
    ["y", "y", "y"],
    ["y", None, "x"],
    ["x", "x", None],
    ["y", "x", "x"],  # not a gold question
]
GOLD = ["x", "y", "y", "y", "x", None]


def test_gold_scoring_hand_computed():
    table = cs.annotator_accuracy_on_gold(GOLD_RATINGS, GOLD, annotators=["a", "b", "c"], n_boot=200)
    rows = {row["annotator"]: row for row in table.iter_rows(named=True)}
    # a: x x y y x against gold x y y y x -> 4/5 agree; p_e = 3/5·2/5 + 2/5·3/5 = 0.48 -> 0.32/0.52 = 8/13
    assert rows["a"]["n_gold"] == 5 and rows["a"]["accuracy"] == pytest.approx(0.8)
    assert rows["a"]["kappa"] == pytest.approx(8 / 13)
    # b: x y y x against x y y x -> perfect
    assert rows["b"]["n_gold"] == 4 and rows["b"]["accuracy"] == 1.0 and rows["b"]["kappa"] == pytest.approx(1.0)
    # c: y y x against x y y -> 1/3; p_e = 2/3·2/3 + 1/3·1/3 = 5/9 -> (1/3 − 5/9)/(4/9) = −1/2
    assert rows["c"]["n_gold"] == 3 and rows["c"]["accuracy"] == pytest.approx(1 / 3)
    assert rows["c"]["kappa"] == pytest.approx(-0.5)
    for row in rows.values():
        assert row["kappa_low"] <= row["kappa"] + 1e-12 and row["kappa"] <= row["kappa_high"] + 1e-12
        assert row["reason"] is None
    assert table.columns == ["annotator", "n_gold", "accuracy", "kappa", "kappa_low", "kappa_high", "reason"]


def test_gold_kappa_matches_sklearn_and_interval_is_repeatable():
    ratings, true = crowd(7, "uniform")
    gold = np.full(true.size, NAN)
    chosen = np.random.default_rng(7).choice(true.size, 300, replace=False)
    gold[chosen] = true[chosen]
    table = cs.annotator_accuracy_on_gold(ratings, gold, n_boot=500, seed=3)
    for j, row in enumerate(table.iter_rows(named=True)):
        both = ~np.isnan(ratings[:, j]) & ~np.isnan(gold)
        assert row["n_gold"] == both.sum()
        assert row["kappa"] == pytest.approx(cohen_kappa_score(ratings[both, j], gold[both]), abs=1e-12)
        assert row["accuracy"] == pytest.approx(np.mean(ratings[both, j] == gold[both]))
        assert row["kappa_low"] < row["kappa"] < row["kappa_high"]
    kappa = table["kappa"].to_numpy()
    assert list(np.argsort(-kappa)) == [0, 1, 2, 3, 4]
    assert table.equals(cs.annotator_accuracy_on_gold(ratings, gold, n_boot=500, seed=3))
    assert not table.equals(cs.annotator_accuracy_on_gold(ratings, gold, n_boot=500, seed=4))


def test_gold_undefined_kappa_has_a_reason():
    ratings = [["x", None], ["x", "y"], [None, "x"]]
    table = cs.annotator_accuracy_on_gold(ratings, [None, "x", None], n_boot=50)
    first, second = table.iter_rows(named=True)
    assert first["n_gold"] == 1 and first["accuracy"] == 1.0 and np.isnan(first["kappa"])
    assert "only the label 'x'" in first["reason"] and np.isnan(first["kappa_low"])
    assert second["n_gold"] == 1 and second["accuracy"] == 0.0 and second["kappa"] == pytest.approx(0.0)
    none = cs.annotator_accuracy_on_gold(ratings, [None, None, None], n_boot=50)
    assert none["n_gold"].to_list() == [0, 0] and none["accuracy"].is_nan().all()
    assert none["reason"].to_list() == ["the annotator rated no gold question"] * 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gold": ["x"]}, "gold: expected 2 labels"),
        ({"gold": "xy"}, "gold: expected a sequence"),
        ({"gold": ["x", "y"], "n_boot": 0}, "n_boot: expected a whole number"),
        ({"gold": ["x", "y"], "seed": -1}, "seed: expected a non-negative"),
        ({"gold": ["x", "y"], "annotators": ["a"]}, "annotators: expected 2 names"),
    ],
)
def test_gold_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cs.annotator_accuracy_on_gold([["x", "y"], ["y", "y"]], **kwargs)
