"""Tests for core.selection: hand-checked strategies, input errors, fast k-center == textbook, properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import selection as sel
from core.selection import (
    adaptive_hybrid,
    adaptive_pool_factor,
    covering_radius,
    diversity_weight,
    hybrid,
    k_center_greedy,
    kmeans_diverse,
    select_uncertain,
    uncertainty_scores,
)

PROP = settings(max_examples=50, deadline=None, derandomize=True)
TOL = 1e-9

PROBS = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.4, 0.4, 0.2],
        [1.0, 0.0, 0.0],
        [1 / 3, 1 / 3, 1 / 3],
    ]
)
LINE = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])  # 1-D points, mean 4.8


def textbook_k_center(x: np.ndarray, k: int, already_selected=()) -> np.ndarray:
    """Straightforward reference: argmax of the min-distance array, then one full update."""
    done = list(already_selected)
    mind = np.full(x.shape[0], np.inf, dtype=x.dtype)
    for c in done:
        np.minimum(mind, np.linalg.norm(x - x[c], axis=1), out=mind)
    mind[done] = -np.inf
    if done:
        c = int(np.argmax(mind))
    else:
        c = int(np.argmin(np.linalg.norm(x - x.mean(axis=0, dtype=np.float64), axis=1)))
    picks = [c]
    while len(picks) < k:
        np.minimum(mind, np.linalg.norm(x - x[c], axis=1), out=mind)
        mind[c] = -np.inf
        c = int(np.argmax(mind))
        picks.append(c)
    return np.asarray(picks)


def clustered(seed: int, n: int = 200, dim: int = 8, n_clusters: int = 6, spread: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, dim)) * 3
    sizes = rng.dirichlet(np.ones(n_clusters))
    label = rng.choice(n_clusters, size=n, p=sizes)
    return (centers[label] + spread * rng.standard_normal((n, dim))).astype(np.float32)


def random_probs(seed: int, n: int, c: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(c), size=n)


# --------------------------------------------------------------------------- uncertainty


@pytest.mark.parametrize(
    "method, expected",
    [
        ("least_confidence", [0.3, 0.6, 0.0, 2 / 3]),
        ("margin", [0.5, 1.0, 0.0, 1.0]),
        (
            "entropy",
            [
                -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)),
                -(0.8 * math.log(0.4) + 0.2 * math.log(0.2)),
                0.0,
                math.log(3),
            ],
        ),
    ],
)
def test_uncertainty_scores_hand_checked(method, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0 ln 0 must not warn
        got = uncertainty_scores(PROBS, method)
    assert got.shape == (4,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)


@pytest.mark.parametrize(
    "method, k, exclude, expected",
    [
        ("margin", 2, None, [1, 3]),  # rows 1 and 3 tie at 1.0: lower index first
        ("margin", 4, None, [1, 3, 0, 2]),
        ("least_confidence", 2, None, [3, 1]),
        ("entropy", 3, None, [3, 1, 0]),
        ("margin", 2, [1], [3, 0]),
        ("margin", 1, (3, 1, 1), [0]),  # duplicates in exclude are fine
    ],
)
def test_select_uncertain_order_and_ties(method, k, exclude, expected):
    got = select_uncertain(PROBS, k, method, exclude=exclude)
    assert got.dtype == np.int64
    assert got.tolist() == expected


def test_select_uncertain_all_equal_ties_go_to_lower_index():
    probs = np.tile([0.5, 0.5], (6, 1))
    assert select_uncertain(probs, 3, "entropy", exclude=[0, 2]).tolist() == [1, 3, 4]


# --------------------------------------------------------------------------- k-center


@pytest.mark.parametrize(
    "x, k, already, expected",
    [
        # first = row nearest the mean 4.8 -> 2; farthest from it 11 -> 4; then 0; then 1, 3 tie at 1 -> 1
        (LINE, 5, None, [2, 4, 0, 1, 3]),
        (LINE, 2, None, [2, 4]),
        # already {4}: distances 11, 10, 9, 1 -> 0; then 2 (2 from 0); then 1 and 3 tie -> 1
        (LINE, 4, [4], [0, 2, 1, 3]),
        (LINE, 1, [0, 4], [2]),
        # duplicates: a copy of a center is taken only when nothing else is left, lowest index first
        (np.array([[0.0], [0.0], [5.0], [0.0]]), 4, None, [0, 2, 1, 3]),
        (np.array([[1.0, 1.0]] * 3), 3, None, [0, 1, 2]),
    ],
)
def test_k_center_hand_checked(x, k, already, expected):
    got = k_center_greedy(x, k, already_selected=already)
    assert got.dtype == np.int64
    assert got.tolist() == expected


def _data(kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.standard_normal((300, 12)).astype(np.float32)
    if kind == "clustered":
        return clustered(seed, n=300, dim=12)
    if kind == "ties":  # small integer grid: many exact ties and duplicate rows
        return rng.integers(0, 3, size=(300, 4)).astype(np.float32)
    if kind == "float64":
        return rng.standard_normal((300, 5))
    if kind == "unit":  # normalized like sentence embeddings, with exact duplicates
        x = rng.standard_normal((150, 32)).astype(np.float32)
        x = np.concatenate([x, x[:150:3]])
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["random", "clustered", "ties", "float64", "unit"])
@pytest.mark.parametrize("active_size", [1, 7, 64, None])
@pytest.mark.parametrize("n_already", [0, 3])
def test_fast_k_center_equals_textbook(kind, active_size, n_already):
    x = _data(kind, seed=11)
    already = np.arange(0, 3 * n_already, 3)
    k = x.shape[0] - n_already if kind == "ties" else 60  # "ties": run until only duplicates are left
    ref = textbook_k_center(x, k, already)
    fast = sel._kcenter_fast(np.ascontiguousarray(x), k, already.astype(np.int64), active_size=active_size)
    np.testing.assert_array_equal(fast, ref)


def test_public_k_center_equals_textbook_on_larger_data():
    x = clustered(3, n=3000, dim=48, n_clusters=20, spread=0.3)
    np.testing.assert_array_equal(k_center_greedy(x, 150), textbook_k_center(x, 150))


@PROP
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 60),
    dim=st.integers(1, 5),
    levels=st.integers(1, 4),
    k_frac=st.floats(0, 1),
    active=st.integers(1, 20),
)
def test_fast_k_center_equals_textbook_property(seed, n, dim, levels, k_frac, active):
    x = np.random.default_rng(seed).integers(0, levels, size=(n, dim)).astype(np.float32)
    k = max(1, round(k_frac * n))
    fast = sel._kcenter_fast(x, k, np.empty(0, dtype=np.int64), active_size=active)
    np.testing.assert_array_equal(fast, textbook_k_center(x, k))


def test_covering_radius_hand_checked():
    assert covering_radius(LINE, [2, 4]) == pytest.approx(2.0, abs=1e-6)
    assert covering_radius(LINE, [0, 1, 2, 3, 4]) == pytest.approx(0.0, abs=1e-6)
    assert covering_radius(LINE, [3]) == pytest.approx(10.0, abs=1e-6)


# --------------------------------------------------------------------------- k-means


def test_kmeans_diverse_hand_checked():
    a = [[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]]  # size 5, centroid (0, 0) = row 0
    b = [[10, 10], [10.5, 10], [9.5, 10]]  # size 3, centroid (10, 10) = row 5
    c = [[-10, 10], [-10, 10]]  # size 2, identical rows: lower index 8
    x = np.array(a + b + c, dtype=float)
    got = kmeans_diverse(x, 3, seed=0)
    assert got.tolist() == [0, 5, 8]  # largest cluster first


def test_kmeans_diverse_exclude_and_duplicates_stay_distinct():
    x = np.array([[0.0, 0.0]] * 5 + [[3.0, 3.0]])  # only 2 distinct points for k = 4
    got = kmeans_diverse(x, 4, seed=1, exclude=[5])  # sklearn finds 1 distinct cluster for 4 centroids
    assert len(set(got.tolist())) == 4
    assert set(got.tolist()) <= {0, 1, 2, 3, 4}


# --------------------------------------------------------------------------- hybrids


def test_hybrid_hand_checked():
    # margins 0.9, 0.8, 0.7, 0.1, 0.05, 0.0 -> pool (1.5 * 2 = 3) is rows 0, 1, 2
    top = [0.55, 0.6, 0.65, 0.95, 0.975, 1.0]
    probs = np.array([[p, 1 - p] for p in top])
    emb = np.array([[0.0, 0], [0.1, 0], [5.0, 0], [100.0, 0], [101.0, 0], [102.0, 0]])
    # pool mean (1.7, 0): nearest row 1; farthest from it row 2
    assert hybrid(probs, emb, 2, method="margin", pool_factor=1.5).tolist() == [1, 2]
    # a pool of everything: k-center alone
    assert hybrid(probs, emb, 2, pool_factor=3).tolist() == k_center_greedy(emb, 2).tolist()
    # exclude row 2: pool rows 0, 1, 3 -> mean (33.4, 0): nearest row 1, then row 3
    assert hybrid(probs, emb, 2, pool_factor=1.5, exclude=[2]).tolist() == [1, 3]


@pytest.mark.parametrize(
    "round_index, n_rounds, weight, factor",
    [(0, 5, 1.0, 20.0), (4, 5, 0.0, 1.0), (2, 5, 0.5, math.sqrt(20)), (0, 1, 1.0, 20.0), (1, 3, 0.5, math.sqrt(20))],
)
def test_adaptive_schedule(round_index, n_rounds, weight, factor):
    assert diversity_weight(round_index, n_rounds) == pytest.approx(weight, abs=TOL)
    assert adaptive_pool_factor(round_index, n_rounds) == pytest.approx(factor, rel=TOL)


def test_adaptive_hybrid_last_round_is_pure_uncertainty_first_is_diverse():
    probs = random_probs(5, 300)
    emb = clustered(5, n=300)
    last = adaptive_hybrid(probs, emb, 10, round_index=9, n_rounds=10)
    assert sorted(last.tolist()) == sorted(select_uncertain(probs, 10, "margin").tolist())
    first = adaptive_hybrid(probs, emb, 10, round_index=0, n_rounds=10)
    assert first.tolist() == hybrid(probs, emb, 10, pool_factor=20).tolist()


# --------------------------------------------------------------------------- errors

GOOD_P = PROBS
GOOD_X = LINE[:4]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: uncertainty_scores(GOOD_P, "variance"), "method"),
        (lambda: uncertainty_scores([[0.5, 0.6]], "margin"), "sum to 1"),
        (lambda: uncertainty_scores([[-0.1, 1.1]], "margin"), r"\[0, 1\]"),
        (lambda: uncertainty_scores([[np.nan, 1.0]], "margin"), "NaN"),
        (lambda: uncertainty_scores([0.5, 0.5], "margin"), "2-D"),
        (lambda: uncertainty_scores([[1.0], [1.0]], "margin"), "2 classes"),
        (lambda: select_uncertain(GOOD_P, 5, "margin"), "k: expected at most 4"),
        (lambda: select_uncertain(GOOD_P, 4, "margin", exclude=[0]), "k: expected at most 3"),
        (lambda: select_uncertain(GOOD_P, 0, "margin"), "k: expected an integer >= 1"),
        (lambda: select_uncertain(GOOD_P, 1.5, "margin"), "k: expected an integer"),
        (lambda: select_uncertain(GOOD_P, 1, "margin", exclude=[4]), "exclude"),
        (lambda: select_uncertain(GOOD_P, 1, "margin", exclude=[0.5]), "exclude"),
        (lambda: k_center_greedy(GOOD_X, 5), "k: expected at most 4"),
        (lambda: k_center_greedy(GOOD_X, 4, already_selected=[1]), "k: expected at most 3"),
        (lambda: k_center_greedy(GOOD_X, 1, already_selected=[-1]), "already_selected"),
        (lambda: k_center_greedy(np.array([[0.0], [np.nan]]), 1), "embeddings.*row 1"),
        (lambda: k_center_greedy(np.array([[0.0], [np.inf]]), 1), "finite"),
        (lambda: k_center_greedy(np.zeros(4), 1), "embeddings.*2-D"),
        (lambda: k_center_greedy(np.zeros((0, 3)), 1), "embeddings"),
        (lambda: kmeans_diverse(GOOD_X, 5), "k: expected at most 4"),
        (lambda: kmeans_diverse(GOOD_X, 4, exclude=[0]), "k: expected at most 3"),
        (lambda: kmeans_diverse(GOOD_X, 2, seed="x"), "seed"),
        (lambda: hybrid(GOOD_P, LINE, 1), "same number of rows"),
        (lambda: hybrid(GOOD_P, GOOD_X, 1, pool_factor=0.5), "pool_factor"),
        (lambda: hybrid(GOOD_P, GOOD_X, 5), "k: expected at most 4"),
        (lambda: hybrid(GOOD_P, GOOD_X, 1, method="nope"), "method"),
        (lambda: diversity_weight(5, 5), "round_index"),
        (lambda: diversity_weight(0, 0), "n_rounds"),
        (lambda: adaptive_hybrid(GOOD_P, GOOD_X, 1, round_index=-1, n_rounds=3), "round_index"),
        (lambda: covering_radius(GOOD_X, []), "picks"),
        (lambda: covering_radius(GOOD_X, [9]), "picks"),
    ],
)
def test_invalid_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --------------------------------------------------------------------------- properties


def _check_picks(picks: np.ndarray, n: int, k: int, forbidden=()) -> None:
    assert picks.shape == (k,)
    assert picks.dtype == np.int64
    assert len(set(picks.tolist())) == k
    assert picks.min() >= 0 and picks.max() < n
    assert not set(picks.tolist()) & set(int(i) for i in forbidden)


pool_case = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.integers(0, 2**31 - 1),
        st.lists(st.integers(0, n - 1), max_size=n - 1, unique=True),
        st.integers(1, n),
    )
)


@PROP
@given(case=pool_case, method=st.sampled_from(sel.METHODS))
def test_select_uncertain_properties(case, method):
    n, seed, exclude, k = case
    k = min(k, n - len(exclude))
    probs = random_probs(seed, n)
    picks = select_uncertain(probs, k, method, exclude=exclude)
    _check_picks(picks, n, k, exclude)
    scores = uncertainty_scores(probs, method)
    rest = np.setdiff1d(np.setdiff1d(np.arange(n), exclude), picks)
    if rest.size:  # nothing left out is more uncertain than anything picked
        assert scores[rest].max() <= scores[picks].min() + 1e-12


@PROP
@given(case=pool_case)
def test_k_center_properties(case):
    n, seed, already, k = case
    k = min(k, n - len(already))
    x = np.random.default_rng(seed).integers(0, 3, size=(n, 2)).astype(np.float64)
    _check_picks(k_center_greedy(x, k, already_selected=already), n, k, already)


@PROP
@given(case=pool_case, pool_factor=st.floats(1, 5), method=st.sampled_from(sel.METHODS))
def test_hybrid_properties(case, pool_factor, method):
    n, seed, exclude, k = case
    k = min(k, n - len(exclude))
    probs = random_probs(seed, n)
    emb = np.random.default_rng(seed + 1).standard_normal((n, 3))
    picks = hybrid(probs, emb, k, method=method, pool_factor=pool_factor, exclude=exclude)
    _check_picks(picks, n, k, exclude)
    size = min(n - len(exclude), math.ceil(pool_factor * k - 1e-9))
    pool = select_uncertain(probs, size, method, exclude=exclude)
    assert set(picks.tolist()) <= set(pool.tolist())


@PROP
@given(case=pool_case)
def test_kmeans_diverse_properties(case):
    n, seed, exclude, k = case
    k = min(k, n - len(exclude))
    x = np.random.default_rng(seed).integers(0, 3, size=(n, 2)).astype(np.float64)  # many duplicates
    _check_picks(kmeans_diverse(x, k, seed=seed % 7, exclude=exclude), n, k, exclude)


@PROP
@given(seed=st.integers(0, 10**6), k=st.integers(6, 20))
def test_k_center_covers_no_worse_than_random_on_clustered_data(seed, k):
    x = clustered(seed, n=200, dim=8, n_clusters=6, spread=0.1)
    random_pick = np.random.default_rng(seed + 1).choice(x.shape[0], size=k, replace=False)
    assert covering_radius(x, k_center_greedy(x, k)) <= covering_radius(x, random_pick) + 1e-9
