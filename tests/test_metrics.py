"""Tests for core.metrics: scikit-learn equality, gold-label rules, rounds, volume, plateau, imports."""

from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from core.metrics import (
    METRIC_NAMES,
    classification_metrics,
    gold_labels,
    labeled_volume,
    merge_imported_rounds,
    per_class_f1_matrix,
    plateau,
    round_metrics,
)

# scikit-learn's own 1x1 confusion-matrix hint, raised by the reference calls in these tests
pytestmark = pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")

HYP = settings(max_examples=50, deadline=None, derandomize=True)


def assert_matches_sklearn(res: dict, y_true, y_pred, labels=None) -> None:
    """Every metric in ``res`` equals scikit-learn's on the raw (unencoded) arrays."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    lab = list(labels) if labels is not None else sorted(set(yt.tolist()) | set(yp.tolist()))
    assert res["labels"] == lab
    assert res["n"] == len(yt)
    assert res["accuracy"] == pytest.approx(accuracy_score(yt, yp), rel=1e-12, abs=1e-12)
    for avg in ("macro", "micro", "weighted"):
        expected = f1_score(yt, yp, labels=lab, average=avg, zero_division=0)
        assert res[f"{avg}_f1"] == pytest.approx(expected, rel=1e-12, abs=1e-12), avg
    p, r, f, s = precision_recall_fscore_support(yt, yp, labels=lab, average=None, zero_division=0)
    pc = res["per_class"]
    assert pc.columns == ["label", "precision", "recall", "f1", "support"]
    assert pc["label"].to_list() == lab
    np.testing.assert_allclose(pc["precision"].to_numpy(), p, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pc["recall"].to_numpy(), r, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pc["f1"].to_numpy(), f, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(pc["support"].to_numpy(), s)
    np.testing.assert_array_equal(res["confusion"], confusion_matrix(yt, yp, labels=lab))


# ------------------------------------------------------------------ classification_metrics

label_alphabets = st.sampled_from(
    [["a", "b"], ["cat", "dog", "bird"], ["neg", "neu", "pos", "mixed", "spam"], [0, 1, 2, 3], [3, 10, 7]]
)


@st.composite
def label_pairs(draw):
    alphabet = draw(label_alphabets)
    n = draw(st.integers(min_value=1, max_value=60))
    y_true = draw(st.lists(st.sampled_from(alphabet), min_size=n, max_size=n))
    y_pred = draw(st.lists(st.sampled_from(alphabet), min_size=n, max_size=n))
    return alphabet, y_true, y_pred


@HYP
@given(label_pairs(), st.booleans(), st.randoms(use_true_random=False))
def test_equals_sklearn_on_random_cases(case, explicit_labels, rnd):
    """Default order (sorted union) or a shuffled explicit order that may list absent labels."""
    alphabet, y_true, y_pred = case
    labels = None
    if explicit_labels:
        labels = list(alphabet)
        rnd.shuffle(labels)
    assert_matches_sklearn(classification_metrics(y_true, y_pred, labels=labels), y_true, y_pred, labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n,k", [(1, 1), (50, 2), (5000, 12)])
def test_equals_sklearn_random_numpy(seed, n, k):
    rng = np.random.default_rng(seed)
    names = np.array([f"class_{i:02d}" for i in range(k)])
    y_true = names[rng.integers(0, k, n)]
    # correlated predictions: mostly right, some noise
    y_pred = np.where(rng.random(n) < 0.7, y_true, names[rng.integers(0, k, n)])
    assert_matches_sklearn(classification_metrics(y_true, y_pred), y_true, y_pred)


@pytest.mark.parametrize("kind", ["list", "numpy", "polars", "tuple"])
def test_input_containers_agree(kind):
    y_true, y_pred = ["x", "y", "y", "z"], ["x", "y", "z", "z"]
    conv = {"list": list, "numpy": np.array, "polars": pl.Series, "tuple": tuple}[kind]
    res = classification_metrics(conv(y_true), conv(y_pred))
    assert_matches_sklearn(res, y_true, y_pred)


def test_confusion_orientation_rows_true_columns_predicted():
    # two true "cat": one predicted dog, one cat; one true "dog" predicted dog.
    res = classification_metrics(["cat", "cat", "dog"], ["dog", "cat", "dog"], labels=["dog", "cat"])
    assert res["labels"] == ["dog", "cat"]
    #                      pred dog  pred cat
    expected = np.array([[1, 0],  # true dog
                         [1, 1]])  # true cat
    np.testing.assert_array_equal(res["confusion"], expected)
    pc = {r["label"]: r for r in res["per_class"].iter_rows(named=True)}
    assert pc["dog"]["precision"] == pytest.approx(0.5)
    assert pc["dog"]["recall"] == pytest.approx(1.0)
    assert pc["cat"]["precision"] == pytest.approx(1.0)
    assert pc["cat"]["recall"] == pytest.approx(0.5)
    assert pc["cat"]["support"] == 2 and pc["dog"]["support"] == 1


def test_default_label_order_is_sorted_union():
    res = classification_metrics(["b", "c"], ["a", "c"])
    assert res["labels"] == ["a", "b", "c"]
    assert res["per_class"]["label"].to_list() == ["a", "b", "c"]
    assert res["confusion"].shape == (3, 3)


def test_zero_division_gives_zero_and_absent_label_lowers_macro():
    res = classification_metrics(["a", "a"], ["a", "a"], labels=["a", "b"])
    row_b = res["per_class"].filter(pl.col("label") == "b").row(0, named=True)
    assert (row_b["precision"], row_b["recall"], row_b["f1"], row_b["support"]) == (0.0, 0.0, 0.0, 0)
    assert res["macro_f1"] == pytest.approx(0.5)
    assert res["accuracy"] == 1.0


def test_single_sample_single_label():
    res = classification_metrics(["a"], ["a"])
    assert res["accuracy"] == res["macro_f1"] == res["micro_f1"] == res["weighted_f1"] == 1.0
    np.testing.assert_array_equal(res["confusion"], [[1]])


def test_int_and_float_labels_are_compatible():
    res = classification_metrics([1, 2, 2], [1.0, 2.0, 1.0])
    assert res["labels"] == [1.0, 2.0]
    assert res["accuracy"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "y_true,y_pred,labels,match",
    [
        ([], [], None, "empty"),
        (["a"], ["a", "b"], None, "same length"),
        (["a", None], ["a", "b"], None, "y_true.*null"),
        (["a", "b"], ["a", None], None, "y_pred.*null"),
        ([1.0, float("nan")], [1.0, 1.0], None, "NaN"),
        (["a", "b"], [1, 2], None, "same type"),
        (["a", "c"], ["a", "b"], ["a", "b"], "y_true.*not listed"),
        (["a", "b"], ["a", "c"], ["a", "b"], "y_pred.*not listed"),
        (["a"], ["a"], ["a", "a"], "labels has duplicates"),
        (["a"], ["a"], [], "labels is empty"),
        (["a"], ["a"], [1], "same type"),
        ("ab", "ab", None, "flat sequence"),
    ],
)
def test_classification_metrics_errors(y_true, y_pred, labels, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(y_true, y_pred, labels=labels)


# ------------------------------------------------------------------ gold_labels


def ann(rows):
    return pl.DataFrame(rows, schema={"sample_id": pl.Int64, "annotator": pl.String, "label": pl.String}, orient="row")


def rev(rows):
    return pl.DataFrame(rows, schema={"sample_id": pl.Int64, "version": pl.Int64, "new_label": pl.String}, orient="row")


NO_REVIEWS = rev([])


def as_dict(gold: pl.DataFrame) -> dict:
    return {r["sample_id"]: (r["gold_label"], r["source"]) for r in gold.iter_rows(named=True)}


@pytest.mark.parametrize(
    "annotations,reviews,expected",
    [
        pytest.param(
            [(1, "u1", "A"), (1, "u2", "A"), (1, "u3", "B")], [(1, 1, "B")], {1: ("B", "review")},
            id="review-beats-majority",
        ),
        pytest.param(
            [(1, "u1", "A")], [(1, 2, "C"), (1, 7, "B"), (1, 3, "D")], {1: ("B", "review")},
            id="latest-review-wins-by-version-not-row-order",
        ),
        pytest.param(
            [(1, "u1", "A"), (1, "u2", "B")], [], {},
            id="two-way-tie-gives-none",
        ),
        pytest.param(
            [(1, "u1", "A"), (1, "u2", "A"), (1, "u3", "B"), (1, "u4", "B"), (1, "u5", "C")], [], {},
            id="tie-at-the-top-gives-none",
        ),
        pytest.param(
            [(1, "u1", "A"), (1, "u2", "A"), (1, "u3", "B"), (1, "u4", "C")], [], {1: ("A", "majority")},
            id="plurality-without-absolute-majority",
        ),
        pytest.param(
            [(1, "u1", "A")], [], {1: ("A", "majority")},
            id="single-annotator-is-a-majority-of-one",
        ),
        pytest.param(
            [(1, "u1", "A"), (1, "u2", "B")], [(1, 1, "B")], {1: ("B", "review")},
            id="review-resolves-a-tie",
        ),
        pytest.param(
            [], [(9, 1, "Z")], {9: ("Z", "review")},
            id="review-without-annotations",
        ),
        pytest.param(
            [(1, "u1", "A"), (1, "u1", "A"), (1, "u2", "B")], [], {},
            id="duplicate-row-of-one-annotator-counts-once",
        ),
        pytest.param(
            [(1, "u1", "A"), (1, "u2", None), (1, "u3", None)], [], {1: ("A", "majority")},
            id="null-labels-are-not-votes",
        ),
        pytest.param(
            [(1, "u1", "A"), (1, "u2", "A")], [(1, 5, None)], {1: ("A", "majority")},
            id="null-review-label-ignored",
        ),
        pytest.param(
            [(1, "u1", "A"), (2, "u1", "B"), (2, "u2", "C"), (3, "u2", "C"), (3, "u3", "C")],
            [(2, 1, "B"), (2, 1, "B")],
            {1: ("A", "majority"), 2: ("B", "review"), 3: ("C", "majority")},
            id="mixed-samples-and-agreeing-duplicate-review",
        ),
    ],
)
def test_gold_label_rules(annotations, reviews, expected):
    gold = gold_labels(ann(annotations), rev(reviews))
    assert gold.columns == ["sample_id", "gold_label", "source"]
    assert gold["gold_label"].null_count() == 0
    assert gold["sample_id"].to_list() == sorted(expected)
    assert as_dict(gold) == expected


def test_gold_labels_empty_untyped_reviews_and_integer_labels():
    annotations = pl.DataFrame({"sample_id": ["s1", "s1", "s2"], "annotator": ["a", "b", "a"], "label": [3, 3, 4]})
    reviews = pl.DataFrame({"sample_id": [], "version": [], "new_label": []})
    gold = gold_labels(annotations, reviews)
    assert as_dict(gold) == {"s1": (3, "majority"), "s2": (4, "majority")}


def reference_gold(annotations: list[tuple], reviews: list[tuple]) -> dict:
    """Per-sample Python implementation of the rules, for comparison."""
    out: dict = {}
    latest: dict = {}
    for sid, version, label in reviews:
        if label is not None and (sid not in latest or version > latest[sid][0]):
            latest[sid] = (version, label)
    votes: dict = {}
    for sid, annotator, label in annotations:
        if label is not None:
            votes.setdefault(sid, set()).add((annotator, label))
    for sid, pairs in votes.items():
        counts = Counter(label for _, label in pairs).most_common()
        if len(counts) == 1 or counts[0][1] > counts[1][1]:
            out[sid] = (counts[0][0], "majority")
    for sid, (_, label) in latest.items():
        out[sid] = (label, "review")
    return out


@HYP
@given(
    st.lists(st.tuples(st.integers(0, 8), st.sampled_from(["u1", "u2", "u3", "u4"]),
                       st.sampled_from(["A", "B", "C", None])), max_size=40),
    st.lists(st.tuples(st.integers(0, 8), st.integers(0, 30), st.sampled_from(["A", "B", "C"])), max_size=8,
             unique_by=lambda r: (r[0], r[1])),
)
def test_gold_labels_match_reference(annotations, reviews):
    assert as_dict(gold_labels(ann(annotations), rev(reviews))) == reference_gold(annotations, reviews)


@pytest.mark.parametrize(
    "annotations,reviews,match",
    [
        (pl.DataFrame({"sample_id": [1], "label": ["A"]}), NO_REVIEWS, "annotations is missing column.*annotator"),
        (ann([(1, "u", "A")]), pl.DataFrame({"sample_id": [1], "new_label": ["A"]}), "reviews is missing.*version"),
        (ann([(1, "u", "A")]), rev([(1, 1, "A"), (1, 1, "B")]), "latest version holds different"),
        (ann([(None, "u", "A")]), NO_REVIEWS, "annotations.sample_id.*null"),
        (ann([(1, "u", "A")]), rev([(1, None, "A")]), "reviews.version.*null"),
        (ann([(1, "u", "A")]), pl.DataFrame({"sample_id": [1], "version": [1], "new_label": [5]}), "same type"),
        ("not a frame", NO_REVIEWS, "annotations must be a polars DataFrame"),
    ],
)
def test_gold_labels_errors(annotations, reviews, match):
    with pytest.raises(ValueError, match=match):
        gold_labels(annotations, reviews)


# ------------------------------------------------------------------ round_metrics


def random_rounds(seed: int, n_samples: int = 300, n_rounds: int = 4):
    rng = np.random.default_rng(seed)
    names = np.array(["a", "b", "c", "d", "e"])
    gold = pl.DataFrame({"sample_id": np.arange(n_samples), "gold_label": names[rng.integers(0, 5, n_samples)]})
    gold = gold.filter(pl.Series(rng.random(n_samples) < 0.8))  # some samples without gold
    frames = []
    for r in range(1, n_rounds + 1):
        ids = rng.choice(n_samples, size=n_samples // 2, replace=False)
        k = 2 + r % 3  # later rounds predict a different label subset
        frames.append(pl.DataFrame({"sample_id": ids, "round": r, "predicted": names[rng.integers(0, k, ids.size)]}))
    return pl.concat(frames).sample(fraction=1.0, shuffle=True, seed=seed), gold


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("labels", [None, ["e", "d", "c", "b", "a"]])
def test_round_metrics_equal_classification_metrics_per_round(seed, labels):
    predictions, gold = random_rounds(seed)
    table, per_round = round_metrics(predictions, gold, labels=labels)
    assert table.columns == ["round", "n_eval", *METRIC_NAMES]
    assert table["round"].to_list() == sorted(per_round) == [1, 2, 3, 4]
    joined = predictions.join(gold, on="sample_id")
    for row in table.iter_rows(named=True):
        part = joined.filter(pl.col("round") == row["round"])
        expected = classification_metrics(part["gold_label"], part["predicted"], labels=labels)
        assert row["n_eval"] == part.height == per_round[row["round"]]["n"]
        for name in METRIC_NAMES:
            assert row[name] == pytest.approx(expected[name], rel=1e-12)
        assert_matches_sklearn(per_round[row["round"]], part["gold_label"].to_numpy(),
                               part["predicted"].to_numpy(), labels)


def test_round_metrics_skips_unevaluable_rows_and_rounds():
    predictions = pl.DataFrame(
        {"sample_id": [1, 2, 3, 1, 9], "round": [1, 1, 1, 2, 3], "predicted": ["A", None, "B", "A", "A"]}
    )
    gold = pl.DataFrame({"sample_id": [1, 2, 3], "gold_label": ["A", "B", None]})
    table, per_round = round_metrics(predictions, gold)
    # round 1: only sample 1 evaluable (2 has no prediction, 3 no gold); round 3: no gold at all
    assert table.select("round", "n_eval").rows() == [(1, 1), (2, 1)]
    assert set(per_round) == {1, 2}


def test_round_metrics_empty_result_has_schema():
    predictions = pl.DataFrame({"sample_id": [1], "round": [1], "predicted": ["A"]})
    gold = pl.DataFrame({"sample_id": [2], "gold_label": ["A"]})
    table, per_round = round_metrics(predictions, gold)
    assert table.height == 0 and per_round == {}
    assert table.schema["round"] == pl.Int64 and table.schema["macro_f1"] == pl.Float64


@pytest.mark.parametrize(
    "predictions,gold,match",
    [
        (pl.DataFrame({"sample_id": [1, 1], "round": [1, 1], "predicted": ["A", "B"]}),
         pl.DataFrame({"sample_id": [1], "gold_label": ["A"]}), "same \\(sample_id, round\\)"),
        (pl.DataFrame({"sample_id": [1], "round": [1], "predicted": ["A"]}),
         pl.DataFrame({"sample_id": [1, 1], "gold_label": ["A", "B"]}), "gold has more than one row"),
        (pl.DataFrame({"sample_id": [1], "round": [None], "predicted": ["A"]}, schema_overrides={"round": pl.Int64}),
         pl.DataFrame({"sample_id": [1], "gold_label": ["A"]}), "predictions.round.*null"),
        (pl.DataFrame({"sample_id": [1], "round": ["r1"], "predicted": ["A"]}),
         pl.DataFrame({"sample_id": [1], "gold_label": ["A"]}), "predictions.round must hold integer"),
        (pl.DataFrame({"sample_id": [1], "round": [1], "predicted": [1]}),
         pl.DataFrame({"sample_id": [1], "gold_label": ["A"]}), "same type"),
        (pl.DataFrame({"sample_id": [1], "round": [1]}),
         pl.DataFrame({"sample_id": [1], "gold_label": ["A"]}), "predictions is missing column.*predicted"),
    ],
)
def test_round_metrics_errors(predictions, gold, match):
    with pytest.raises(ValueError, match=match):
        round_metrics(predictions, gold)


def test_round_metrics_label_outside_fixed_labels():
    predictions = pl.DataFrame({"sample_id": [1], "round": [1], "predicted": ["Z"]})
    gold = pl.DataFrame({"sample_id": [1], "gold_label": ["A"]})
    with pytest.raises(ValueError, match="predictions.predicted has label"):
        round_metrics(predictions, gold, labels=["A", "B"])


# ------------------------------------------------------------------ per_class_f1_matrix


def test_per_class_f1_matrix_layout():
    predictions = pl.DataFrame(
        {"sample_id": [1, 2, 3, 1, 2, 3], "round": [10, 10, 10, 2, 2, 2], "predicted": ["a", "b", "b", "a", "a", "a"]}
    )
    gold = pl.DataFrame({"sample_id": [1, 2, 3], "gold_label": ["a", "b", "a"]})
    _, per_round = round_metrics(predictions, gold)
    matrix = per_class_f1_matrix(per_round)
    assert matrix.columns == ["label", "2", "10"]
    assert matrix["label"].to_list() == ["a", "b"]
    for r in (2, 10):
        pc = per_round[r]["per_class"]
        for lab, f1 in zip(pc["label"], pc["f1"]):
            assert matrix.filter(pl.col("label") == lab)[str(r)].item() == pytest.approx(f1)


def test_per_class_f1_matrix_absent_label_is_null_and_empty_input():
    per_round = {
        1: classification_metrics(["a", "b"], ["a", "b"]),
        2: classification_metrics(["a", "c"], ["a", "c"]),
    }
    matrix = per_class_f1_matrix(per_round)
    assert matrix.rows() == [("a", 1.0, 1.0), ("b", 1.0, None), ("c", None, 1.0)]
    assert per_class_f1_matrix({}).columns == ["label"]
    with pytest.raises(ValueError, match="per_round\\[1\\]"):
        per_class_f1_matrix({1: {"accuracy": 1.0}})


# ------------------------------------------------------------------ labeled_volume


def test_labeled_volume_hand_case():
    samples = pl.DataFrame(
        {"sample_id": [1, 2, 3, 4, 5, 6, 7], "round": [1, 1, 2, 2, 2, None, 4]},
        schema_overrides={"round": pl.Int64},
    )
    gold = pl.DataFrame({"sample_id": [1, 2, 3, 6, 7, 8], "gold_label": ["A", "B", None, "A", "A", "A"]})
    vol = labeled_volume(samples, gold)
    assert vol.columns == ["round", "new_labeled", "cumulative_labeled"]
    # round 2: only sample 3 has a gold row and its gold is null -> 0; sample 6 has no round
    assert vol.rows() == [(1, 2, 2), (2, 0, 2), (4, 1, 3)]


@pytest.mark.parametrize(
    "samples,match",
    [
        (pl.DataFrame({"sample_id": [1, 1], "round": [1, 2]}), "more than one row"),
        (pl.DataFrame({"sample_id": [1], "round": ["one"]}), "samples.round must hold integer"),
        (pl.DataFrame({"sample_id": [1]}), "samples is missing column.*round"),
    ],
)
def test_labeled_volume_errors(samples, match):
    gold = pl.DataFrame({"sample_id": [1], "gold_label": ["A"]})
    with pytest.raises(ValueError, match=match):
        labeled_volume(samples, gold)


# ------------------------------------------------------------------ plateau


@pytest.mark.parametrize(
    "values,threshold,patience,expected",
    [
        ([0.832, 0.891, 0.947], 0.005, 2, False),
        ([0.90, 0.903, 0.905], 0.005, 2, True),
        ([0.80, 0.90, 0.903, 0.905], 0.005, 2, True),  # only the end counts
        ([0.90, 0.903, 0.95], 0.005, 2, False),  # last gain is large
        ([0.90, 0.95, 0.951], 0.005, 2, False),  # only one small gain
        ([0.90, 0.905, 0.91], 0.005, 2, False),  # gains equal to threshold are not below
        ([0.5, 0.625, 0.75], 0.125, 2, False),  # exactly equal (representable) gains
        ([0.100, 0.105], 0.005, 1, False),  # equal in decimal; float gives 0.0049999999999999906
        ([0.90, 0.88, 0.87], 0.005, 2, True),  # drops count as below threshold
        ([0.90, 0.901], 0.005, 2, False),  # fewer than patience + 1 rounds
        ([0.90, 0.901], 0.005, 1, True),
        ([], 0.005, 2, False),
        ([0.5], 0.005, 1, False),
        ([0.90, 0.91, 0.92, 0.93], 0.02, 3, True),
        ({3: 0.905, 1: 0.90, 2: 0.903}, 0.005, 2, True),  # mapping taken in round order
        ({1: 0.90, 2: 0.95, 3: 0.903}, 0.005, 2, False),
        (pl.Series([0.90, 0.903, 0.905]), 0.005, 2, True),
        (np.array([0.90, 0.903, 0.905]), 0.005, 2, True),
    ],
)
def test_plateau(values, threshold, patience, expected):
    assert plateau(values, threshold=threshold, patience=patience) is expected


@pytest.mark.parametrize(
    "values,kwargs,match",
    [
        ([0.9, float("nan"), 0.91], {}, "NaN"),
        ([0.9, None, 0.91], {}, "NaN or missing"),
        ([83.2, 89.1], {}, "between 0 and 1"),
        ([0.9, 0.91], {"threshold": -0.1}, "threshold"),
        ([0.9, 0.91], {"threshold": float("nan")}, "threshold"),
        ([0.9, 0.91], {"patience": 0}, "patience"),
        ([0.9, 0.91], {"patience": 1.5}, "patience"),
        ("0.9", {}, "f1_by_round"),
        ([[0.9, 0.91]], {}, "one-dimensional"),
    ],
)
def test_plateau_errors(values, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plateau(values, **kwargs)


# ------------------------------------------------------------------ merge_imported_rounds


def computed_table() -> pl.DataFrame:
    return pl.DataFrame(
        {"round": [2, 3], "n_eval": [1000, 1200], "accuracy": [0.9, 0.95], "macro_f1": [0.891, 0.947],
         "micro_f1": [0.9, 0.95], "weighted_f1": [0.89, 0.946]}
    )


def imported_table(rows=None) -> pl.DataFrame:
    rows = rows or [
        (1, 50_000, "macro_f1", 0.832),
        (1, 50_000, "accuracy", 0.85),
        (3, 79_000, " Macro_F1 ", 0.94),
    ]
    return pl.DataFrame(rows, schema=["round", "n_labeled", "metric", "value"], orient="row")


def test_merge_imported_rounds():
    merged = merge_imported_rounds(computed_table(), imported_table())
    assert merged.columns == ["round", "n_eval", "n_labeled", *METRIC_NAMES, "source"]
    assert merged.select("round", "source").rows() == [
        (1, "imported"), (2, "computed"), (3, "computed"), (3, "imported")  # both rows kept for round 3
    ]
    r1 = merged.row(0, named=True)
    assert r1 == {"round": 1, "n_eval": None, "n_labeled": 50_000, "accuracy": 0.85, "macro_f1": 0.832,
                  "micro_f1": None, "weighted_f1": None, "source": "imported"}
    r3 = merged.filter((pl.col("round") == 3) & (pl.col("source") == "imported")).row(0, named=True)
    assert r3["macro_f1"] == 0.94 and r3["n_labeled"] == 79_000
    assert merged.filter(pl.col("source") == "computed")["n_labeled"].null_count() == 2


def test_merge_keeps_computed_n_labeled_and_accepts_empty_import():
    computed = computed_table().with_columns(n_labeled=pl.Series([68_000, 79_000]))
    empty = pl.DataFrame(schema={"round": pl.Int64, "n_labeled": pl.Int64, "metric": pl.String, "value": pl.Float64})
    merged = merge_imported_rounds(computed, empty)
    assert merged["n_labeled"].to_list() == [68_000, 79_000]
    assert merged["source"].to_list() == ["computed", "computed"]


def test_merge_accepts_csv_like_text_columns():
    imported = pl.DataFrame({"round": ["1"], "n_labeled": ["50000"], "metric": ["macro_f1"], "value": ["0.832"]})
    merged = merge_imported_rounds(computed_table(), imported)
    assert merged.row(0, named=True)["macro_f1"] == pytest.approx(0.832)


@pytest.mark.parametrize(
    "imported,match",
    [
        (pl.DataFrame({"round": [1], "metric": ["macro_f1"], "value": [0.8]}), "imported is missing column.*n_labeled"),
        (imported_table([(1, 10, "f1_macro", 0.8)]), "unknown metric name.*f1_macro"),
        (imported_table([(1, 10, "macro_f1", 0.8), (1, 10, "macro_f1", 0.81)]), "more than one value for round 1"),
        (imported_table([(1, 10, "macro_f1", 83.2)]), "between 0 and 1"),
        (imported_table([(1, 10, "macro_f1", None)]), "imported.value has missing"),
        (imported_table([(1, 10, "macro_f1", 0.8), (1, 11, "accuracy", 0.8)]), "n_labeled differs"),
        (imported_table([(1.5, 10, "macro_f1", 0.8)]), "imported.round must hold whole numbers"),
        (imported_table([(None, 10, "macro_f1", 0.8)]), "imported.round has 1 missing"),
        (imported_table([(1, -5, "macro_f1", 0.8)]), "n_labeled must not be negative"),
        (pl.DataFrame({"round": [1], "n_labeled": [1], "metric": ["macro_f1"], "value": ["high"]}),
         "imported.value must hold numbers"),
        (imported_table([(1, 10, None, 0.8)]), "imported.metric has 1 missing"),
    ],
)
def test_merge_imported_validation(imported, match):
    with pytest.raises(ValueError, match=match):
        merge_imported_rounds(computed_table(), imported)


def test_merge_validates_computed_columns():
    with pytest.raises(ValueError, match="computed is missing column.*macro_f1"):
        merge_imported_rounds(computed_table().drop("macro_f1"), imported_table())
