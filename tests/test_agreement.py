"""Tests of core.agreement: published worked examples, hand-computed values, and the reference libraries."""

from __future__ import annotations

import functools
import math
import warnings
from collections import Counter
from itertools import combinations

import krippendorff
import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from core import agreement as ag

# every numpy RuntimeWarning (division by zero, empty slices) fails the test
pytestmark = pytest.mark.filterwarnings("error")

PROPERTY = settings(max_examples=50, deadline=None, derandomize=True)
NAN = float("nan")

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers × 12
# units with missing values (observers in rows, as published and in the krippendorff package).
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]
# Wikipedia "Krippendorff's alpha" example: 3 coders × 15 units (values from the package docs).
WIKIPEDIA_ALPHA = [
    [NAN, NAN, NAN, NAN, NAN, 3, 4, 1, 2, 1, 1, 3, 3, NAN, 3],
    [1, NAN, 2, 1, 3, 3, 4, 3, NAN, NAN, NAN, NAN, NAN, NAN, NAN],
    [NAN, NAN, 2, 1, 3, 4, 4, NAN, 2, 1, 1, 3, 3, NAN, 4],
]
# Fleiss (1971) example as on Wikipedia "Fleiss' kappa": 10 subjects × 5 categories, 14 raters.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def units_by_annotators(observers_by_units) -> np.ndarray:
    return np.asarray(observers_by_units, dtype=float).T


def table_to_ratings(table) -> np.ndarray:
    """Expand a subjects × categories count table to a subjects × raters label matrix."""
    return np.array([np.repeat(np.arange(len(row)), row) for row in table], dtype=float)


def to_float(rows) -> np.ndarray:
    return np.array([[NAN if v is None else v for v in row] for row in rows], dtype=float)


def naive_percent_agreement(rows) -> float:
    shares = []
    for row in rows:
        present = [v for v in row if v is not None]
        if len(present) >= 2:
            pairs = list(combinations(present, 2))
            shares.append(sum(a == b for a, b in pairs) / len(pairs))
    return float(np.mean(shares)) if shares else NAN


@st.composite
def rating_rows(draw, max_labels: int = 5, missing: bool = True, min_raters: int = 2, max_raters: int = 5):
    """Lists of rows (samples) of int labels 0..k-1 or None."""
    n = draw(st.integers(1, 25))
    r = draw(st.integers(min_raters, max_raters))
    k = draw(st.integers(1, max_labels))
    cell = st.one_of(st.none(), st.integers(0, k - 1)) if missing else st.integers(0, k - 1)
    return draw(st.lists(st.lists(cell, min_size=r, max_size=r), min_size=n, max_size=n))


def agreeing_matrix(n: int, raters: int, categories: int, seed: int, p_true: float = 0.7, missing: float = 0.1):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, categories, size=(n, 1))
    noise = rng.integers(0, categories, size=(n, raters))
    matrix = np.where(rng.random((n, raters)) < p_true, truth, noise).astype(float)
    matrix[rng.random((n, raters)) < missing] = NAN
    return matrix


# ---------------------------------------------------------------------------------------------
# Published worked examples
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)]
)
def test_krippendorff_2011_example(level, published):
    ratings = units_by_annotators(KRIPPENDORFF_2011)
    value = ag.krippendorff_alpha(ratings, level)
    assert value == pytest.approx(published, abs=5e-4)  # published to 3 decimals
    reference = krippendorff.alpha(reliability_data=KRIPPENDORFF_2011, level_of_measurement=level)
    assert value == pytest.approx(reference, abs=1e-12)


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.691358), ("interval", 0.810845)])
def test_wikipedia_alpha_example(level, published):
    assert ag.krippendorff_alpha(units_by_annotators(WIKIPEDIA_ALPHA), level) == pytest.approx(published, abs=5e-7)


def test_krippendorff_2011_example_with_string_labels():
    # nominal with Chinese labels; ordinal with strings whose sorted order is the scale's order
    nominal = {1: "很低", 2: "低", 3: "中", 4: "高", 5: "很高"}
    ordinal = {1: "1-very low", 2: "2-low", 3: "3-mid", 4: "4-high", 5: "5-very high"}
    ratings = units_by_annotators(KRIPPENDORFF_2011)
    for mapping, level, published in ((nominal, "nominal", 0.743), (ordinal, "ordinal", 0.815)):
        labels = [[None if math.isnan(v) else mapping[int(v)] for v in row] for row in ratings]
        assert ag.krippendorff_alpha(labels, level) == pytest.approx(published, abs=5e-4)
        assert ag.krippendorff_alpha(labels, level) == pytest.approx(ag.krippendorff_alpha(ratings, level), abs=1e-12)


def test_fleiss_1971_example():
    assert ag.fleiss_kappa_from_counts(FLEISS_TABLE) == pytest.approx(0.210, abs=5e-4)
    assert ag.fleiss_kappa_from_counts(FLEISS_TABLE) == pytest.approx(sm_fleiss_kappa(FLEISS_TABLE), abs=1e-12)
    assert ag.fleiss_kappa(table_to_ratings(FLEISS_TABLE)) == pytest.approx(0.20993070442195522, abs=1e-12)


def test_cohen_2x2_example():
    # Wikipedia "Cohen's kappa": 20 both yes, 5 A yes/B no, 10 A no/B yes, 15 both no → 0.40
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert ag.cohen_kappa(a, b) == pytest.approx(0.40, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Hand-computed values
# ---------------------------------------------------------------------------------------------
HAND_ROWS = [["A", "A", "B"], ["A", "A", None], ["A", None, None], ["B", "C", None]]


def test_percent_agreement_by_hand():
    # 1/3 of pairs agree, then 1, then 0; the single-rated sample is skipped
    assert ag.percent_agreement(HAND_ROWS) == pytest.approx(4 / 9, abs=1e-12)


def test_fleiss_with_missing_ratings_by_hand():
    # counts (A, B): [2,1], [2,0], [1,0], [0,2]: P_o = (1/3 + 1 + 1)/3 = 7/9;
    # π = mean of row shares over the 4 rated rows = (2/3, 1/3); P_e = 5/9; κ = (2/9)/(4/9)
    rows = [["A", "A", "B"], ["A", "A", None], ["A", None, None], ["B", "B", None]]
    assert ag.fleiss_kappa(rows) == pytest.approx(0.5, abs=1e-12)
    assert ag.fleiss_kappa_from_counts([[2, 1], [2, 0], [1, 0], [0, 2]]) == pytest.approx(0.5, abs=1e-12)


def test_cohen_kappa_drops_items_missing_a_rating():
    a = ["x", "x", "y", None, "y", np.nan]
    b = ["x", "y", "y", "x", None, "y"]
    assert ag.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(["x", "x", "y"], ["x", "y", "y"]), abs=1e-12)


@pytest.mark.parametrize(
    ("row", "disputed"),
    [
        (["A", "B"], True),
        (["A", "A", "B"], False),
        (["A", "A", "B", "B"], True),
        (["A", "B", "C"], True),
        (["A", "A", "B", "C"], True),  # 2 of 4 is no strict majority
        (["A", "A", "A", "B", "C"], False),
        (["A", "A"], False),
        (["A", None], False),
        ([None, None], False),
    ],
)
def test_disputed_samples(row, disputed):
    assert ag.disputed_samples([row]).tolist() == [disputed]


def test_majority_vote_by_hand():
    labels, is_tie, support = ag.majority_vote([["b", "a", "b"], ["b", "a", None], [None, None, None], ["c", "c", "c"]])
    assert labels.tolist() == ["b", "a", None, "c"]  # tie → first label in sorted order
    assert is_tie.tolist() == [False, True, False, False]
    np.testing.assert_allclose(support, [2 / 3, 0.5, NAN, 1.0], atol=1e-12)


# annotators A, B, C; the leave-one-out majority of the others decides the reference label
REPORT_ROWS = [
    ["x", "x", "x"],
    ["x", "x", "y"],
    ["y", "y", "y"],
    ["x", "y", "z"],
    ["y", "y", "x"],
    ["x", None, "x"],
]


def test_annotator_report_by_hand():
    report = ag.annotator_report(REPORT_ROWS, ["A", "B", "C"])
    assert report.columns == [
        "annotator", "n_items", "n_compared", "agreement_with_majority", "kappa_vs_majority", "flag",
    ]
    assert report["annotator"].to_list() == ["A", "B", "C"]
    assert report["n_items"].to_list() == [6, 5, 6]
    assert report["n_compared"].to_list() == [3, 2, 5]
    np.testing.assert_allclose(report["agreement_with_majority"].to_numpy(), [1.0, 1.0, 0.6], atol=1e-12)
    # C against the others' majority: own x y y x x, reference x x y y x → κ = (15/25 − 13/25)/(12/25)
    own, reference = ["x", "y", "y", "x", "x"], ["x", "x", "y", "y", "x"]
    assert cohen_kappa_score(own, reference) == pytest.approx(1 / 6, abs=1e-12)
    np.testing.assert_allclose(report["kappa_vs_majority"].to_numpy(), [1.0, 1.0, 1 / 6], atol=1e-12)
    assert report["flag"].to_list() == [False, False, True]


def test_annotator_report_flag_is_null_when_kappa_is_undefined():
    report = ag.annotator_report([["a", "a"], ["a", "a"], ["b", None]], ["p", "q"])
    assert np.isnan(report["kappa_vs_majority"].to_numpy()).all()
    assert report["flag"].to_list() == [None, None]
    assert report["agreement_with_majority"].to_list() == [1.0, 1.0]


def test_per_label_agreement_two_raters_is_positive_specific_agreement():
    # a = both "pos", b/c = one each: positive specific agreement 2a / (2a + b + c)
    rows = [["pos", "pos"]] * 6 + [["pos", "neg"]] * 2 + [["neg", "pos"]] * 3 + [["neg", "neg"]] * 9
    table = ag.per_label_agreement(rows)
    assert table["label"].to_list() == ["neg", "pos"]
    assert table["n_ratings"].to_list() == [2 * 9 + 5, 2 * 6 + 5]
    np.testing.assert_allclose(table["agreement"].to_numpy(), [18 / 23, 12 / 17], atol=1e-12)


def test_per_label_agreement_by_hand():
    # label A: pairs (A, other) = 2·2 + 1·1 + 1·2 = 7 (sample 1: 2 A's × 2 others; sample 3: 1 × 2),
    # of which A–A: 2 (sample 1) + 2 (sample 2) = 4 ... computed as Σ n(n−1) / Σ n(m−1)
    rows = [["A", "A", "B"], ["A", "A", None], ["A", "C", "C"], ["B", None, None]]
    table = ag.per_label_agreement(rows)
    assert table["label"].to_list() == ["A", "B", "C"]
    assert table["n_ratings"].to_list() == [5, 1, 2]  # the lone B on sample 4 is not compared
    np.testing.assert_allclose(table["agreement"].to_numpy(), [(2 + 2) / (4 + 2 + 2), 0.0, 2 / 4], atol=1e-12)


def test_label_distribution_by_hand():
    table = ag.label_distribution(HAND_ROWS, ["r1", "r2", "r3"])
    assert table.columns == ["annotator", "label", "count", "share"]
    assert table.height == 3 * 3  # every annotator × every label, zeros included
    r1 = table.filter(pl.col("annotator") == "r1")
    assert r1["label"].to_list() == ["A", "B", "C"]
    assert r1["count"].to_list() == [3, 1, 0]
    np.testing.assert_allclose(r1["share"].to_numpy(), [0.75, 0.25, 0.0])
    r3 = table.filter(pl.col("annotator") == "r3")
    assert r3["count"].to_list() == [0, 1, 0]


def test_label_distribution_annotator_without_ratings_has_nan_share():
    table = ag.label_distribution([["a", None], ["b", None]], ["p", "q"])
    assert table.filter(pl.col("annotator") == "q")["count"].to_list() == [0, 0]
    assert np.isnan(table.filter(pl.col("annotator") == "q")["share"].to_numpy()).all()


# ---------------------------------------------------------------------------------------------
# Against the reference libraries on random matrices
# ---------------------------------------------------------------------------------------------
@PROPERTY
@given(rows=rating_rows(), level=st.sampled_from(ag.LEVELS))
def test_alpha_matches_krippendorff_package(rows, level):
    ratings = to_float(rows)
    value = ag.krippendorff_alpha(ratings, level)
    reason = ag.explain_nan(ag.krippendorff_alpha, ratings, level)
    if reason is not None:
        assert math.isnan(value) and isinstance(reason, str) and reason
        return
    reference = krippendorff.alpha(reliability_data=ratings.T, level_of_measurement=level)
    assert value == pytest.approx(float(reference), abs=1e-9)


@PROPERTY
@given(rows=rating_rows(missing=False))
def test_fleiss_matches_statsmodels_on_complete_matrices(rows):
    ratings = np.array(rows, dtype=float)
    value = ag.fleiss_kappa(ratings)
    if ag.explain_nan(ag.fleiss_kappa, ratings) is not None:
        assert math.isnan(value)
        return
    table, _ = aggregate_raters(ratings.astype(int))
    assert value == pytest.approx(sm_fleiss_kappa(table), abs=1e-9)
    assert ag.fleiss_kappa_from_counts(table) == pytest.approx(value, abs=1e-12)


@PROPERTY
@given(rows=rating_rows())
def test_fleiss_from_matrix_equals_from_counts(rows):
    counts = np.array([[row.count(k) for k in range(5)] for row in rows])
    value, from_counts = ag.fleiss_kappa(rows), ag.fleiss_kappa_from_counts(counts)
    assert (math.isnan(value) and math.isnan(from_counts)) or value == pytest.approx(from_counts, abs=1e-12)


@PROPERTY
@given(
    pairs=st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 4)), st.one_of(st.none(), st.integers(0, 4))),
                   min_size=1, max_size=40),
    weights=st.sampled_from(ag.WEIGHTS),
)
def test_cohen_kappa_matches_sklearn(pairs, weights):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    value = ag.cohen_kappa(a, b, weights)
    kept = [(x, y) for x, y in pairs if x is not None and y is not None]
    if len({v for pair in kept for v in pair}) < 2:
        assert math.isnan(value) and ag.explain_nan(ag.cohen_kappa, a, b, weights)
        return
    reference = cohen_kappa_score([x for x, _ in kept], [y for _, y in kept], weights=weights)
    assert value == pytest.approx(reference, abs=1e-9)


@PROPERTY
@given(rows=rating_rows())
def test_percent_agreement_matches_pairs_loop(rows):
    value, expected = ag.percent_agreement(rows), naive_percent_agreement(rows)
    assert (math.isnan(value) and math.isnan(expected)) or value == pytest.approx(expected, abs=1e-12)
    assert math.isnan(value) or 0.0 <= value <= 1.0


@PROPERTY
@given(rows=rating_rows())
def test_majority_vote_and_disputes_match_counter(rows):
    labels, is_tie, support = ag.majority_vote(rows)
    disputed = ag.disputed_samples(rows)
    for row, label, tie, share, dispute in zip(rows, labels, is_tie, support, disputed):
        counts = Counter(v for v in row if v is not None)
        if not counts:
            assert label is None and not tie and math.isnan(share) and not dispute
            continue
        top = max(counts.values())
        winners = sorted(k for k, c in counts.items() if c == top)
        m = sum(counts.values())
        assert label == winners[0] and tie == (len(winners) > 1)
        assert share == pytest.approx(top / m, abs=1e-12)
        assert dispute == (m >= 2 and 2 * top <= m)


@PROPERTY
@given(rows=rating_rows(max_raters=3))
def test_pairwise_kappa_and_confusion_match_sklearn(rows):
    ratings = to_float(rows)
    names = [f"标注员{j}" for j in range(ratings.shape[1])]
    table = ag.pairwise_cohen_kappa(ratings, names)
    assert table.height == len(names) * (len(names) - 1) // 2
    for record in table.iter_rows(named=True):
        i, j = names.index(record["annotator_a"]), names.index(record["annotator_b"])
        both = ~np.isnan(ratings[:, i]) & ~np.isnan(ratings[:, j])
        assert record["n_items"] == int(both.sum())
        kappa = ag.cohen_kappa(ratings[:, i], ratings[:, j])
        assert (math.isnan(record["kappa"]) and math.isnan(kappa)) or record["kappa"] == pytest.approx(kappa, abs=1e-12)
        labels, matrix = ag.pair_confusion(ratings, i, j)
        if both.any():
            with warnings.catch_warnings():  # sklearn warns on a single label even when labels= is given
                warnings.simplefilter("ignore", UserWarning)
                expected = confusion_matrix(ratings[both, i], ratings[both, j], labels=labels)
            np.testing.assert_array_equal(matrix, expected)
        else:
            assert matrix.sum() == 0


# ---------------------------------------------------------------------------------------------
# Invariances
# ---------------------------------------------------------------------------------------------
@PROPERTY
@given(rows=rating_rows(), seed=st.integers(0, 2**16))
def test_metrics_ignore_label_names_and_column_order(rows, seed):
    rng = np.random.default_rng(seed)
    names = [f"{k:02d}级-level" for k in range(5)]  # sorted order = numeric order
    relabeled = [[None if v is None else names[v] for v in row] for row in rows]
    shuffled = [[row[j] for j in rng.permutation(len(row))] for row in rows]
    for metric in (ag.percent_agreement, ag.fleiss_kappa, ag.krippendorff_alpha,
                   functools.partial(ag.krippendorff_alpha, level="ordinal")):
        base = metric(rows)
        for variant in (relabeled, shuffled, list(reversed(rows))):
            other = metric(variant)
            assert (math.isnan(base) and math.isnan(other)) or other == pytest.approx(base, abs=1e-12)


def complete_and_missing_forms():
    rows = [["猫", "cat", None], ["cat", "cat", "dog"], [None, "dog", "dog"], ["猫", "猫", "cat"]]
    frame = pl.DataFrame({"a": [r[0] for r in rows], "b": [r[1] for r in rows], "c": [r[2] for r in rows]})
    obj = np.array(rows, dtype=object)
    nan_obj = obj.copy()
    nan_obj[obj == None] = NAN  # noqa: E711 — elementwise
    return rows, {"list": rows, "object array": obj, "NaN as missing": nan_obj, "polars": frame}


@pytest.mark.parametrize("form", ["list", "object array", "NaN as missing", "polars"])
@pytest.mark.parametrize(
    "metric",
    [ag.percent_agreement, ag.fleiss_kappa, ag.krippendorff_alpha, ag.majority_vote, ag.disputed_samples,
     ag.per_label_agreement],
)
def test_input_forms_agree(form, metric):
    rows, forms = complete_and_missing_forms()
    expected, got = metric(rows), metric(forms[form])
    if isinstance(expected, tuple):
        for e, g in zip(expected, got):
            np.testing.assert_array_equal(np.asarray(e, dtype=object), np.asarray(g, dtype=object))
    elif isinstance(expected, pl.DataFrame):
        assert got.equals(expected)
    elif isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(got, expected)
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def test_polars_column_names_are_default_annotators():
    frame = pl.DataFrame({"alice": ["a", "b", "a"], "bob": ["a", "b", "b"]})
    assert ag.pairwise_cohen_kappa(frame)[["annotator_a", "annotator_b"]].row(0) == ("alice", "bob")
    assert ag.annotator_report(frame)["annotator"].to_list() == ["alice", "bob"]


# ---------------------------------------------------------------------------------------------
# Degenerate input: NaN with a reason, never a warning
# ---------------------------------------------------------------------------------------------
DEGENERATE = {
    "empty list": [],
    "no samples": np.empty((0, 3)),
    "no annotators": np.empty((4, 0)),
    "all missing": [[None, None], [NAN, None]],
    "one rating per sample": [[1, None], [None, 2], [3, None]],
    "single annotator": [[1.0], [2.0]],
}


@pytest.mark.parametrize("case", list(DEGENERATE))
@pytest.mark.parametrize(
    "metric",
    [ag.percent_agreement, ag.fleiss_kappa, ag.krippendorff_alpha,
     functools.partial(ag.krippendorff_alpha, level="interval")],
)
def test_degenerate_input_gives_nan_and_reason(case, metric):
    ratings = DEGENERATE[case]
    assert math.isnan(metric(ratings))
    reason = ag.explain_nan(metric, ratings)
    assert isinstance(reason, str) and len(reason) > 10
    assert ag.bootstrap_ci(metric, ratings, n_boot=20) == pytest.approx((NAN, NAN), nan_ok=True)


def test_single_label_everywhere():
    ratings = [["好", "好"], ["好", "好", ], ["好", None]]
    assert ag.percent_agreement(ratings) == 1.0 and ag.explain_nan(ag.percent_agreement, ratings) is None
    for metric in (ag.fleiss_kappa, ag.krippendorff_alpha):
        assert math.isnan(metric(ratings))
        assert "好" in ag.explain_nan(metric, ratings)
    assert math.isnan(ag.cohen_kappa(["a", "a"], ["a", "a"]))
    assert "'a'" in ag.explain_nan("cohen_kappa", ["a", "a"], ["a", "a"])
    assert math.isnan(ag.fleiss_kappa_from_counts([[3, 0], [2, 0]]))


def test_alpha_single_label_among_pairable_ratings_only():
    # "b" occurs only on a sample with one rating, so the paired ratings use one label
    ratings = [["a", "a"], ["a", "a"], ["b", None]]
    assert math.isnan(ag.krippendorff_alpha(ratings))
    assert "'a'" in ag.explain_nan(ag.krippendorff_alpha, ratings)


@pytest.mark.parametrize(
    ("a", "b", "fragment"),
    [([], [], "no items"), (["x", None], [None, "y"], "both"), (["x", "x"], ["x", "x"], "only the label")],
)
def test_cohen_kappa_degenerate(a, b, fragment):
    assert math.isnan(ag.cohen_kappa(a, b))
    assert fragment in ag.explain_nan(ag.cohen_kappa, a, b)


def test_degenerate_views_do_not_crash():
    for ratings in DEGENERATE.values():
        ag.majority_vote(ratings)
        ag.disputed_samples(ratings)
        ag.per_label_agreement(ratings)
        ag.label_distribution(ratings)
        ag.annotator_report(ratings)
        ag.pairwise_cohen_kappa(ratings)
    labels, is_tie, support = ag.majority_vote([[None, None]])
    assert labels.tolist() == [None] and not is_tie[0] and math.isnan(support[0])


def test_explain_nan_is_none_when_defined():
    ratings = units_by_annotators(KRIPPENDORFF_2011)
    assert ag.explain_nan(ag.krippendorff_alpha, ratings, "ordinal") is None
    assert ag.explain_nan("fleiss_kappa", ratings) is None
    assert ag.explain_nan(functools.partial(ag.krippendorff_alpha, level="ratio"), ratings) is None
    assert ag.explain_nan(ag.fleiss_kappa_from_counts, FLEISS_TABLE) is None


# ---------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("metric", "n_boot"),
    [(ag.percent_agreement, 300), (ag.fleiss_kappa, 300), (ag.krippendorff_alpha, 300),
     (functools.partial(ag.krippendorff_alpha, level="ordinal"), 300),
     (lambda r: ag.cohen_kappa(r[:, 0], r[:, 1]), 40)],  # any callable: resampled rows
)
def test_bootstrap_is_deterministic_and_contains_estimate(metric, n_boot):
    ratings = agreeing_matrix(400, 4, 4, seed=1)
    low, high = ag.bootstrap_ci(metric, ratings, n_boot=n_boot, seed=7)
    assert (low, high) == ag.bootstrap_ci(metric, ratings, n_boot=n_boot, seed=7)
    assert (low, high) != ag.bootstrap_ci(metric, ratings, n_boot=n_boot, seed=8)
    assert low < metric(ratings) < high
    assert high - low < 0.2


@pytest.mark.parametrize("alpha_level", ["nominal", "ordinal"])
@pytest.mark.parametrize("labels", ["numbers", "strings"])
def test_agreement_summary_equals_the_individual_functions(alpha_level, labels):
    ratings = agreeing_matrix(200, 4, 5, seed=6)
    if labels == "strings":
        ratings = [[None if math.isnan(v) else f"{int(v)}-类" for v in row] for row in ratings]
    summary = ag.agreement_summary(ratings, n_boot=150, level=0.9, seed=11, alpha_level=alpha_level)
    assert summary.columns == ["metric", "value", "low", "high", "reason"]
    alpha = functools.partial(ag.krippendorff_alpha, level=alpha_level)
    for row, metric in zip(summary.iter_rows(named=True), (ag.percent_agreement, ag.fleiss_kappa, alpha)):
        assert row["value"] == metric(ratings)
        assert (row["low"], row["high"]) == ag.bootstrap_ci(metric, ratings, n_boot=150, level=0.9, seed=11)
        assert row["reason"] is None


def test_agreement_summary_of_degenerate_input_gives_reasons():
    summary = ag.agreement_summary([["是", "是"], ["是", None]], n_boot=10)
    assert summary["metric"].to_list() == ["percent_agreement", "fleiss_kappa", "krippendorff_alpha"]
    assert summary["value"][0] == 1.0 and summary["reason"][0] is None
    assert np.isnan(summary["value"].to_numpy()[1:]).all()
    assert all("是" in reason for reason in summary["reason"].to_list()[1:])
    empty = ag.agreement_summary([], n_boot=10)
    assert empty["reason"].null_count() == 0 and np.isnan(empty["low"].to_numpy()).all()


def test_bootstrap_levels_nest():
    ratings = agreeing_matrix(300, 3, 5, seed=2)
    narrow = ag.bootstrap_ci(ag.fleiss_kappa, ratings, n_boot=200, level=0.5, seed=3)
    wide = ag.bootstrap_ci(ag.fleiss_kappa, ratings, n_boot=200, level=0.99, seed=3)
    assert wide[0] <= narrow[0] <= narrow[1] <= wide[1]


@pytest.mark.parametrize(
    ("name", "fast"),
    [("percent_agreement", ag.percent_agreement), ("fleiss_kappa", ag.fleiss_kappa),
     ("krippendorff_alpha", ag.krippendorff_alpha),
     ("ordinal alpha", functools.partial(ag.krippendorff_alpha, level="ordinal"))],
)
def test_bootstrap_count_path_agrees_with_row_resampling(name, fast):
    # the count-pattern path and plain row resampling draw different random numbers but
    # estimate the same quantiles: they agree within Monte Carlo error (~0.005 here)
    ratings = agreeing_matrix(300, 4, 4, seed=4)
    by_counts = ag.bootstrap_ci(fast, ratings, n_boot=400, seed=5)
    by_rows = ag.bootstrap_ci(lambda r: fast(r), ratings, n_boot=400, seed=5)
    assert by_counts == pytest.approx(by_rows, abs=0.02)


@PROPERTY
@given(rows=rating_rows(), seed=st.integers(0, 2**16), level=st.sampled_from(ag.LEVELS))
def test_bootstrap_kernels_equal_metric_on_resampled_rows(rows, seed, level):
    # a resample is a count per row; the kernels must give exactly the metric of the repeated rows
    ratings = to_float(rows)
    coded = ag._encode(ratings)
    counts = ag._unit_counts(coded.codes, coded.n_categories)
    patterns, inverse, multiplicity = ag._count_patterns(counts)
    np.testing.assert_array_equal(patterns[inverse], counts)
    assert multiplicity.sum() == len(rows)
    repeats = np.random.default_rng(seed).multinomial(len(rows), np.full(len(rows), 1 / len(rows)))
    weights = np.bincount(inverse, weights=repeats, minlength=len(patterns))[None, :]
    values = None if level in ("nominal", "ordinal") else np.asarray(coded.categories, dtype=float)
    resampled = np.repeat(ratings, repeats, axis=0)
    for kind, metric in (("percent_agreement", ag.percent_agreement), ("fleiss_kappa", ag.fleiss_kappa),
                         ("krippendorff_alpha", functools.partial(ag.krippendorff_alpha, level=level))):
        got = ag._kernel_values(kind, level, patterns.astype(float), weights, values)[0]
        expected = metric(resampled)
        assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-9)


def test_bootstrap_pattern_frequencies_resample_every_sample():
    rng = np.random.default_rng(0)
    for n_patterns, n in ((3, 100), (80, 100)):  # multinomial path, then index path
        inverse = rng.integers(0, n_patterns, n)
        inverse[:n_patterns] = np.arange(n_patterns)
        multiplicity = np.bincount(inverse)
        batches = list(ag._pattern_frequencies(np.random.default_rng(1), inverse, multiplicity, 50))
        frequencies = np.concatenate(batches)
        assert frequencies.shape == (50, n_patterns)
        np.testing.assert_array_equal(frequencies.sum(axis=1), n)
        # each pattern is drawn in proportion to its multiplicity
        np.testing.assert_allclose(frequencies.mean(axis=0), multiplicity, rtol=0.35, atol=1.5)


# ---------------------------------------------------------------------------------------------
# ratings_matrix
# ---------------------------------------------------------------------------------------------
def test_ratings_matrix_pivots_and_sorts():
    annotations = pl.DataFrame(
        {
            "sample_id": ["s2", "s1", "s1", "s3", "s2", "s1"],
            "annotator": ["bob", "bob", "alice", "alice", "alice", "carol"],
            "label": ["正面", "负面", "正面", None, "neutral", "负面"],
            "round": [1, 1, 1, 1, 1, 1],
        }
    )
    matrix, annotators, sample_ids = ag.ratings_matrix(annotations)
    assert annotators == ["alice", "bob", "carol"] and sample_ids == ["s1", "s2", "s3"]
    assert matrix.dtype == object
    assert matrix.tolist() == [["正面", "负面", "负面"], ["neutral", "正面", None], [None, None, None]]


def test_ratings_matrix_empty_frame():
    empty = pl.DataFrame(schema={"sample_id": pl.Utf8, "annotator": pl.Utf8, "label": pl.Utf8})
    matrix, annotators, sample_ids = ag.ratings_matrix(empty)
    assert matrix.shape == (0, 0) and annotators == [] and sample_ids == []
    assert math.isnan(ag.krippendorff_alpha(matrix))


# ---------------------------------------------------------------------------------------------
# Errors a user can cause
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: ag.krippendorff_alpha([[1, 2]], level="nominalish"), "level"),
        (lambda: ag.krippendorff_alpha([["a", "b"], ["a", "a"]], level="interval"), "numeric"),
        (lambda: ag.krippendorff_alpha([[1, -2], [1, 1]], level="ratio"), "non-negative"),
        (lambda: ag.krippendorff_alpha([["a", 1], ["a", "a"]], level="ordinal"), "ordered"),
        (lambda: ag.krippendorff_alpha([1, 2, 3]), "2-D"),
        (lambda: ag.krippendorff_alpha([[1, 2], [3]]), "2-D"),
        (lambda: ag.krippendorff_alpha("ab"), "ratings"),
        (lambda: ag.percent_agreement(np.zeros((2, 2, 2))), "2-D"),
        (lambda: ag.fleiss_kappa([[[1]], [[2]]]), "ratings"),
        (lambda: ag.cohen_kappa([1, 2], [1]), "same length"),
        (lambda: ag.cohen_kappa([1, 2], [1, 2], weights="cubic"), "weights"),
        (lambda: ag.cohen_kappa([1, "a"], [1, 2], weights="linear"), "ordered"),
        (lambda: ag.cohen_kappa([[1, 2]], [1]), "a"),
        (lambda: ag.fleiss_kappa_from_counts([[1, -1]]), "counts"),
        (lambda: ag.fleiss_kappa_from_counts([[1.5, 1]]), "counts"),
        (lambda: ag.fleiss_kappa_from_counts([1, 2]), "counts"),
        (lambda: ag.fleiss_kappa_from_counts([["a", "b"]]), "counts"),
        (lambda: ag.pairwise_cohen_kappa([[1, 2]], ["only one"]), "annotators"),
        (lambda: ag.pairwise_cohen_kappa([[1, 2]], ["x", "x"]), "annotators"),
        (lambda: ag.annotator_report([[1, 2]], "ab"), "annotators"),
        (lambda: ag.pair_confusion([[1, 2]], 0, 2), "j"),
        (lambda: ag.pair_confusion([[1, 2]], -1, 1), "i"),
        (lambda: ag.pair_confusion([[1, 2]], 0, 1, labels=[1, 1]), "labels"),
        (lambda: ag.ratings_matrix([{"sample_id": 1}]), "annotations"),
        (lambda: ag.ratings_matrix(pl.DataFrame({"sample_id": ["s"], "label": ["x"]})), "annotator"),
        (lambda: ag.ratings_matrix(pl.DataFrame({"sample_id": ["s", "s"], "annotator": ["a", "a"],
                                                 "label": ["x", "y"]})), "more than once"),
        (lambda: ag.ratings_matrix(pl.DataFrame({"sample_id": [None], "annotator": ["a"],
                                                 "label": ["x"]})), "sample_id"),
        (lambda: ag.explain_nan(ag.majority_vote, [[1]]), "metric"),
        (lambda: ag.explain_nan("kappa", [[1]]), "metric"),
    ],
)
def test_user_errors_raise_value_error(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"level": 0.0}, "level"), ({"level": 1.0}, "level"), ({"level": 1.5}, "level"),
        ({"level": "0.95"}, "level"), ({"level": True}, "level"),
        ({"n_boot": 0}, "n_boot"), ({"n_boot": 2.5}, "n_boot"), ({"n_boot": True}, "n_boot"),
        ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"),
        ({"metric": "fleiss_kappa"}, "metric"),
        ({"metric": None}, "metric"),
        ({"metric": functools.partial(ag.krippendorff_alpha, level="cardinal")}, "level"),
    ],
)
def test_bootstrap_validates_arguments(kwargs, fragment):
    arguments = {"metric": ag.fleiss_kappa, "ratings": [[1, 1], [1, 2]], **kwargs}
    with pytest.raises(ValueError, match=fragment):
        ag.bootstrap_ci(**arguments)


def test_pair_confusion_with_chosen_labels():
    rows = [["a", "b"], ["a", "a"], ["c", "a"], [None, "b"], ["b", "b"]]
    labels, matrix = ag.pair_confusion(rows, 0, 1, labels=["b", "a", "zzz"])
    assert labels == ["b", "a", "zzz"]
    # the "c" rating is not among the chosen labels and is left out
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [1, 1, 0], [0, 0, 0]])


def test_no_warnings_on_large_degenerate_and_mixed_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mixed = [[1, "1", None], [True, 1.0, "x"], [NAN, None, 2]]
        assert 0.0 <= ag.percent_agreement(mixed) <= 1.0  # 1, 1.0 and True are one label; "1" another
        ag.krippendorff_alpha(mixed)
        ag.fleiss_kappa(mixed)
        ag.bootstrap_ci(ag.krippendorff_alpha, mixed, n_boot=30)


# ---------------------------------------------------------------------------------------------
# pandas nullable inputs: pd.NA, pd.NaT, None and NaN are all missing ratings
# ---------------------------------------------------------------------------------------------
NULLABLE_ROWS = [
    ["x", "x", "y"], ["y", None, "y"], [None, "x", "x"], ["x", "y", None], ["y", "y", "y"], [None, None, "x"],
]
NULLABLE_NAMES = ["alice", "bob", "cy"]
NULLABLE_CODES = {"x": 1, "y": 2}
NULLABLE_BOOLS = {"x": True, "y": False}


def nullable_forms() -> dict[str, tuple[list, object]]:
    """Each form: (the same ratings as plain lists with None, the pandas/pd.NA form)."""
    columns = list(zip(*NULLABLE_ROWS))

    def frame(dtype, mapping=None):
        return pd.DataFrame({
            name: pd.Series([None if v is None else (mapping[v] if mapping else v) for v in column], dtype=dtype)
            for name, column in zip(NULLABLE_NAMES, columns)
        })

    def plain(mapping):
        return [[None if v is None else mapping[v] for v in row] for row in NULLABLE_ROWS]

    as_is = {"x": "x", "y": "y"}
    with_na = [[pd.NA if v is None else v for v in row] for row in NULLABLE_ROWS]
    with_nat = [[(pd.NaT if k % 2 else pd.NA) if v is None else v for k, v in enumerate(row)] for row in NULLABLE_ROWS]
    return {
        "string": (plain(as_is), frame("string")),
        "Int64": (plain(NULLABLE_CODES), frame("Int64", NULLABLE_CODES)),
        "Float64": (plain({"x": 1.5, "y": 2.5}), frame("Float64", {"x": 1.5, "y": 2.5})),
        "boolean": (plain(NULLABLE_BOOLS), frame("boolean", NULLABLE_BOOLS)),
        "object frame with pd.NA": (plain(as_is), pd.DataFrame(with_na, columns=NULLABLE_NAMES, dtype=object)),
        "list with pd.NA and pd.NaT": (plain(as_is), with_nat),
        "object array with pd.NA": (plain(as_is), np.array(with_na, dtype=object)),
    }


def assert_same_result(expected, got):
    if isinstance(expected, tuple):
        for e, g in zip(expected, got):
            assert_same_result(e, g)
    elif isinstance(expected, pl.DataFrame):
        assert got.equals(expected), (expected, got)
    elif isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(np.asarray(got, dtype=object), np.asarray(expected, dtype=object))
    elif isinstance(expected, list):
        assert got == expected
    elif expected is None or isinstance(expected, str):
        assert got == expected
    else:
        assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("form", list(nullable_forms()))
@pytest.mark.parametrize(
    "call",
    [
        ag.percent_agreement,
        ag.fleiss_kappa,
        ag.krippendorff_alpha,
        functools.partial(ag.krippendorff_alpha, level="ordinal"),
        ag.majority_vote,
        ag.disputed_samples,
        ag.per_label_agreement,
        functools.partial(ag.annotator_report, annotators=NULLABLE_NAMES),
        functools.partial(ag.label_distribution, annotators=NULLABLE_NAMES),
        functools.partial(ag.pairwise_cohen_kappa, annotators=NULLABLE_NAMES),
        lambda m: ag.pair_confusion(m, 0, 2),
        lambda m: ag.agreement_summary(m, n_boot=50),
        lambda m: ag.bootstrap_ci(ag.fleiss_kappa, m, n_boot=50),
        lambda m: ag.bootstrap_ci(lambda r: ag.cohen_kappa(r[:, 0], r[:, 2]), m, n_boot=20),
        lambda m: ag.percent_agreement_by_group(m, ["b1", "b1", "b2", "b2", "b1", "b2"]),
        lambda m: ag.explain_nan(ag.krippendorff_alpha, m),
        lambda m: ag.explain_nan(ag.fleiss_kappa, np.asarray(m, dtype=object)[:, :1]),
    ],
)
def test_pandas_nullable_ratings_equal_plain_lists(form, call):
    plain, nullable = nullable_forms()[form]
    assert_same_result(call(plain), call(nullable))


def test_pandas_column_names_are_default_annotators():
    _, frame = nullable_forms()["string"]
    assert ag.annotator_report(frame)["annotator"].to_list() == NULLABLE_NAMES
    assert ag.pairwise_cohen_kappa(frame)[["annotator_a", "annotator_b"]].row(0) == ("alice", "bob")


@pytest.mark.parametrize("dtype, mapping", [("string", None), ("Int64", NULLABLE_CODES), ("boolean", NULLABLE_BOOLS)])
def test_cohen_kappa_with_pandas_nullable_series(dtype, mapping):
    a = [row[0] for row in NULLABLE_ROWS] + ["x", "y"]
    b = [row[2] for row in NULLABLE_ROWS] + ["y", "y"]

    def series(values):
        return pd.Series([None if v is None else (mapping[v] if mapping else v) for v in values], dtype=dtype)

    def plain(values):
        return [None if v is None else (mapping[v] if mapping else v) for v in values]

    expected = ag.cohen_kappa(plain(a), plain(b))
    assert not math.isnan(expected)
    assert ag.cohen_kappa(series(a), series(b)) == pytest.approx(expected, abs=1e-12)
    assert ag.cohen_kappa(series(a).array, plain(b)) == pytest.approx(expected, abs=1e-12)
    assert ag.explain_nan(ag.cohen_kappa, series(a), series(b)) is None
    # only items rated by both count: pd.NA on either side drops the item
    reason = ag.explain_nan(ag.cohen_kappa, series([None, "x"]), series(["x", None]))
    assert reason == "no item was rated by both annotators"


def test_fleiss_kappa_from_counts_missing_cells_are_zero():
    expected = ag.fleiss_kappa_from_counts(FLEISS_TABLE)
    nullable = pd.DataFrame(
        {f"c{k}": pd.Series([row[k] or None for row in FLEISS_TABLE], dtype="Int64") for k in range(5)}
    )
    assert nullable.isna().to_numpy().any()
    assert ag.fleiss_kappa_from_counts(nullable) == pytest.approx(expected, abs=1e-12)
    as_nan = np.array([[v or NAN for v in row] for row in FLEISS_TABLE], dtype=float)
    assert ag.fleiss_kappa_from_counts(as_nan) == pytest.approx(expected, abs=1e-12)
    with_na = [[v or pd.NA for v in row] for row in FLEISS_TABLE]
    assert ag.fleiss_kappa_from_counts(with_na) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="counts"):
        ag.fleiss_kappa_from_counts([[pd.NA, "2"]])


def test_percent_agreement_by_group_pandas_na_key_is_the_null_group():
    rows = [["a", "a"], ["a", "b"], ["b", "b"], ["a", "a"]]
    expected = ag.percent_agreement_by_group(rows, ["g1", None, "g1", None])
    assert expected["group"].to_list() == ["g1", None]
    for keys in (pd.Series(["g1", pd.NA, "g1", None], dtype="string"), ["g1", pd.NA, "g1", NAN]):
        assert ag.percent_agreement_by_group(rows, keys).equals(expected)


def test_ratings_matrix_from_pandas_with_pd_na_labels():
    long = {
        "sample_id": ["s2", "s1", "s1", "s3", "s2", "s1"],
        "annotator": ["bob", "bob", "alice", "alice", "alice", "carol"],
        "label": ["正面", "负面", "正面", None, "neutral", "负面"],
    }
    expected = ag.ratings_matrix(pl.DataFrame(long))
    frame = pd.DataFrame({key: pd.Series(values, dtype="string") for key, values in long.items()})
    assert frame["label"].isna().sum() == 1
    matrix, annotators, sample_ids = ag.ratings_matrix(frame)
    assert matrix.tolist() == expected[0].tolist() and matrix[2, 0] is None
    assert (annotators, sample_ids) == expected[1:]
    with pytest.raises(ValueError, match="annotator"):
        ag.ratings_matrix(frame.drop(columns="annotator"))


def test_kappa_matrix_from_pandas_with_pd_na_kappa():
    pairwise = pd.DataFrame({
        "annotator_a": ["a", "a", "b"], "annotator_b": ["b", "c", "c"],
        "kappa": pd.Series([0.5, None, 0.25], dtype="Float64"),
    })
    grid = ag.kappa_matrix(pairwise, ["a", "b", "c"])
    np.testing.assert_array_equal(grid, [[1.0, 0.5, NAN], [0.5, 1.0, 0.25], [NAN, 0.25, 1.0]])
