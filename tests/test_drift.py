"""Tests for core/drift.py: PSI convention, KS, drift_report, text features, embedding drift."""

import bisect
import itertools
import math
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core import drift
from core.drift import (
    KS_ALPHA,
    PSI_MODERATE,
    PSI_SIGNIFICANT,
    drift_report,
    embedding_drift,
    ks_test,
    psi,
    psi_categorical,
    psi_status,
    text_features,
)

HYP = settings(max_examples=50, deadline=None, derandomize=True)
FLOOR = 1e-4


def term(c, r):
    """One PSI term with both shares already floored."""
    return (c - r) * math.log(c / r)


def psi_reference(ref, cur, bins=10):
    """Independent pure-Python PSI: numpy quantile edges, bisect_right binning, math.log."""
    edges = np.unique(np.quantile(np.asarray(ref, dtype=float), np.linspace(0, 1, bins + 1)))
    interior = [float(e) for e in edges[1:-1]]
    k = len(interior) + 1
    rc, cc = [0] * k, [0] * k
    for v in ref:
        rc[bisect.bisect_right(interior, v)] += 1
    for v in cur:
        cc[bisect.bisect_right(interior, v)] += 1
    return sum(term(max(b / len(cur), FLOOR), max(a / len(ref), FLOOR)) for a, b in zip(rc, cc))


def psi_categorical_reference(ref, cur):
    cats = set(ref) | set(cur)
    return sum(
        term(max(cur.count(k) / len(cur), FLOOR), max(ref.count(k) / len(ref), FLOOR)) for k in cats
    )


# ---------------------------------------------------------------------------
# constants and psi_status
# ---------------------------------------------------------------------------

def test_band_constants():
    assert (PSI_MODERATE, PSI_SIGNIFICANT, KS_ALPHA) == (0.1, 0.25, 0.05)


@pytest.mark.parametrize(
    "value, expected",
    [(0.0, "stable"), (0.0999999, "stable"), (0.1, "moderate"), (0.2, "moderate"),
     (0.2499999, "moderate"), (0.25, "significant"), (3.0, "significant"),
     (math.inf, "significant"), (np.float32(0.3), "significant"), (0, "stable")],
)
def test_psi_status(value, expected):
    assert psi_status(value) == expected


@pytest.mark.parametrize("value", [math.nan, -0.01, "0.3", None, True])
def test_psi_status_rejects(value):
    with pytest.raises(ValueError, match="value"):
        psi_status(value)


# ---------------------------------------------------------------------------
# psi: exact convention, hand-computed
# ---------------------------------------------------------------------------

def test_psi_hand_two_bins():
    # edges quantile([1,2,3,4], [0,.5,1]) = [1, 2.5, 4]; interior [2.5]; r = [.5,.5], c = [.75,.25]
    assert psi([1, 2, 3, 4], [1, 1, 1, 4], bins=2) == pytest.approx(0.25 * math.log(3), rel=1e-12)


def test_psi_duplicate_edges_side_right_and_floor():
    # n = 5, bins = 4: positions 4p are exact -> quantiles [0,0,0,1,2] -> unique [0,1,2] -> interior [1]
    # bins: v<1 | v>=1 (side="right": a value equal to an edge goes up)
    # ref counts [3,2] -> r = [.6, .4]; cur [1,1,2,2] -> [0,4] -> c = [0 -> 1e-4, 1]
    got = psi([0, 0, 0, 1, 2], [1, 1, 2, 2], bins=4)
    assert got == pytest.approx(term(FLOOR, 0.6) + term(1.0, 0.4), rel=1e-12)
    # side="left" would put the 1s in bin 0: c = [.5, .5]
    assert abs(got - (term(0.5, 0.6) + term(0.5, 0.4))) > 1.0
    # renormalizing the floored shares (sum 1.0001) would give another number
    assert abs(got - (term(FLOOR / 1.0001, 0.6) + term(1 / 1.0001, 0.4))) > 1e-5


def test_psi_several_duplicate_edges():
    # n = 9, bins = 8: quantiles are the sorted values [0,0,0,1,2,2,3,3,4] -> interior [1,2,3]
    # bins: <1 | [1,2) | [2,3) | >=3; ref counts [3,1,2,3]; cur [-1,1,2,2,3,3,3,5] -> [1,1,2,4]
    ref = [3, 0, 2, 0, 4, 1, 3, 0, 2]
    cur = [1, 2, 2, 3, 3, 3, 5, -1]
    expected = term(1 / 8, 1 / 3) + term(1 / 8, 1 / 9) + term(2 / 8, 2 / 9) + term(4 / 8, 1 / 3)
    assert psi(ref, cur, bins=8) == pytest.approx(expected, rel=1e-12)


def test_psi_follows_numpy_float_quantiles():
    # n = 6, bins = 5: position 5 * 0.6 = 3.0000000000000004 in floats, so the edge is 1 + 4e-16,
    # not 1: the 1s fall below it. Convention = numpy's floats, not exact arithmetic.
    edges = np.unique(np.quantile([0, 0, 0, 1, 2, 3], np.linspace(0, 1, 6)))
    assert edges[1] > 1.0 and edges[1] == pytest.approx(1.0, abs=1e-15)
    # interior [1+, 2]: ref counts [4,0,2] -> r = [2/3, 1e-4, 1/3]; cur [1,1,2,2] -> c = [.5, 1e-4, .5]
    assert psi([0, 0, 0, 1, 2, 3], [1, 1, 2, 2], bins=5) == pytest.approx(math.log(2) / 6, rel=1e-12)


def test_psi_all_edges_equal_gives_one_bin():
    # quantiles of [1,1,1,1,2] at 0,.25,.5,.75,1 = [1,1,1,1,2] -> unique [1,2] -> no interior edge
    assert psi([1, 1, 1, 1, 2], [50, 60, 70], bins=4) == 0.0
    assert psi([7.0] * 5, [1.0, 2.0], bins=10) == 0.0


def test_psi_outer_bins_are_open():
    # edges of ref [0..9] for bins=2: [0, 4.5, 9], interior [4.5]; values beyond the ref range
    # fall into the outer bins: cur [-100, 100] -> c = [.5, .5] = r -> 0
    ref = list(range(10))
    assert psi(ref, [-100.0, 100.0], bins=2) == pytest.approx(0.0, abs=1e-15)


def test_psi_rounded_lengths_duplicate_quantiles():
    # rounded text lengths: many ties, several quantiles coincide
    ref = [10, 10, 10, 10, 12, 12, 15, 20, 20, 20]
    cur = [10, 11, 12, 12, 12, 20, 25, 30]
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))
    # by hand: h = 9p -> quantiles 10,10,10,10,11.2,12,13.2,16.5,20,20,20
    # unique [10, 11.2, 12, 13.2, 16.5, 20] -> interior [11.2, 12, 13.2, 16.5] (20 is the outer edge)
    np.testing.assert_allclose(edges, [10, 11.2, 12, 13.2, 16.5, 20], rtol=1e-12)
    # bins: <11.2 | [11.2,12) | [12,13.2) | [13.2,16.5) | >=16.5
    r = [4 / 10, FLOOR, 2 / 10, 1 / 10, 3 / 10]
    c = [2 / 8, FLOOR, 3 / 8, FLOOR, 3 / 8]
    expected = sum(term(ci, ri) for ci, ri in zip(c, r))
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-12)
    assert psi(ref, cur) == pytest.approx(psi_reference(ref, cur), rel=1e-12)


def test_psi_identical_is_zero_and_default_bins():
    x = np.arange(100.0)
    assert psi(x, x) == 0.0
    assert psi(x, x + 1000) == pytest.approx(term(1.0, 0.1) + 9 * term(FLOOR, 0.1), rel=1e-12)


@pytest.mark.parametrize(
    "ref, cur, bins, match",
    [([], [1.0], 10, "reference is empty"), ([1.0], [], 10, "current is empty"),
     ([1.0, np.nan], [1.0], 10, "reference contains 1 NaN"),
     ([1.0], [np.inf, 2.0], 10, "current contains 1"), ([1.0], [1.0], 0, "bins"),
     ([1.0], [1.0], 2.5, "bins"), ([1.0], [1.0], True, "bins"),
     ([[1.0, 2.0]], [1.0], 10, "reference must be 1-D"), (["a", "b"], [1.0], 10, "reference must be"),
     ("abc", [1.0], 10, "reference must be"), ([-1e308, 1e308], [0.0], 10, "too wide")],
)
def test_psi_errors(ref, cur, bins, match):
    with pytest.raises(ValueError, match=match):
        psi(ref, cur, bins=bins)


@HYP
@given(
    ref=st.lists(st.integers(0, 15), min_size=1, max_size=60),
    cur=st.lists(st.integers(-3, 18), min_size=1, max_size=60),
    bins=st.integers(1, 12),
    scale=st.sampled_from([1.0, 0.1, 1e-3]),
)
def test_psi_matches_pure_python_reference(ref, cur, bins, scale):
    ref = [v * scale for v in ref]
    cur = [v * scale for v in cur]
    got = psi(ref, cur, bins=bins)
    assert got >= 0.0
    assert got == pytest.approx(psi_reference(ref, cur, bins), rel=1e-12, abs=1e-15)


# ---------------------------------------------------------------------------
# psi_categorical
# ---------------------------------------------------------------------------

def test_psi_categorical_one_sided_categories():
    # categories a, b, c; r = [.5, .5, 0->1e-4], c = [.25, 0->1e-4, .75]
    expected = term(0.25, 0.5) + term(FLOOR, 0.5) + term(0.75, FLOOR)
    assert psi_categorical(["a", "a", "b", "b"], ["a", "c", "c", "c"]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "ref, cur, expected",
    [(["x", "y"], ["y", "x"], 0.0),
     ([True, True, False, True], [False, False, True, False], 2 * term(0.25, 0.75)),
     ([1, 1, 2], [2, 2, 2], term(FLOOR, 2 / 3) + term(1.0, 1 / 3)),
     (pl.Series(["a", "b"], dtype=pl.Categorical), np.array(["a", "a"]), term(1.0, 0.5) + term(FLOOR, 0.5))],
)
def test_psi_categorical_hand(ref, cur, expected):
    assert psi_categorical(ref, cur) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    "ref, cur, match",
    [([], ["a"], "reference is empty"), (["a", None], ["a"], "reference contains 1 missing"),
     (["a"], [1.0, float("nan")], "current contains 1 missing"), ("ab", ["a"], "single string"),
     (np.array([["a", "b"]]), ["a"], "reference must be 1-D"),
     (["a", float("nan")], ["a"], "reference contains 1 missing"),
     (["a"], pl.Series([None, "b"]), "current contains 1 missing"),
     ([["a"], ["b", "c"]], ["a"], "reference must (be|hold)"), ([{"k": 1}], ["a"], "scalar category labels")],
)
def test_psi_categorical_errors(ref, cur, match):
    with pytest.raises(ValueError, match=match):
        psi_categorical(ref, cur)


@HYP
@given(
    ref=st.lists(st.sampled_from("abcdef"), min_size=1, max_size=40),
    cur=st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=40),
)
def test_psi_categorical_matches_reference(ref, cur):
    assert psi_categorical(ref, cur) == pytest.approx(psi_categorical_reference(ref, cur), rel=1e-12, abs=1e-15)


# ---------------------------------------------------------------------------
# KS
# ---------------------------------------------------------------------------

def brute_force_ks_pvalue(a, b):
    """Exact two-sided P(D >= d_obs) by enumerating every split of the pooled (distinct) values."""
    pooled = np.concatenate([a, b])
    n1 = len(a)

    def d(x, y):
        grid = np.concatenate([x, y])
        return np.max(np.abs(np.searchsorted(np.sort(x), grid, "right") / len(x)
                             - np.searchsorted(np.sort(y), grid, "right") / len(y)))

    d_obs = d(np.asarray(a, float), np.asarray(b, float))
    hits = total = 0
    for idx in itertools.combinations(range(len(pooled)), n1):
        mask = np.zeros(len(pooled), bool)
        mask[list(idx)] = True
        total += 1
        hits += d(pooled[mask], pooled[~mask]) >= d_obs - 1e-12
    return d_obs, hits / total


@pytest.mark.parametrize(
    "a, b, d_hand",
    [([1, 2, 3], [4, 5, 6], 1.0), ([1, 2, 3, 4], [3.5, 4.5, 5, 6], 0.75),
     ([1, 5, 9], [2, 3, 4, 6], 5 / 12), ([0.1, 0.2, 0.3, 0.4, 0.5], [0.15, 0.25, 0.35], 0.4)],
)
def test_ks_test_exact_small(a, b, d_hand):
    stat, p = ks_test(a, b)
    d_bf, p_bf = brute_force_ks_pvalue(np.asarray(a, float), np.asarray(b, float))
    assert stat == pytest.approx(d_hand, rel=1e-12)
    assert d_bf == pytest.approx(d_hand, rel=1e-12)
    assert p == pytest.approx(p_bf, rel=1e-12)


def test_ks_test_hand_separated():
    # fully separated samples of 3 and 3: P = 2 / C(6, 3) = 0.1
    assert ks_test([1, 2, 3], [4, 5, 6]) == pytest.approx((1.0, 0.1), rel=1e-12)


@pytest.mark.parametrize(
    "ref, cur, match",
    [([], [1.0], "reference is empty"), ([1.0], [np.nan], "current contains 1 NaN"),
     (np.ones((2, 2)), [1.0], "reference must be 1-D")],
)
def test_ks_test_errors(ref, cur, match):
    with pytest.raises(ValueError, match=match):
        ks_test(ref, cur)


def _random_case(seed):
    """Sizes around and above scipy's exact/asymptotic switch (10,000), with and without ties."""
    rng = np.random.default_rng(seed)
    kind = seed % 4
    n1 = int(rng.choice([3, 500, 10_000, 10_001, 12_000, 25_000]))
    n2 = int(rng.choice([1, 40, 10_000, 10_001, 15_000, 30_000]))
    if kind == 0:  # continuous, small shift
        a, b = rng.normal(size=n1), rng.normal(0.03, 1.0, size=n2)
    elif kind == 1:  # heavy ties: rounded lengths
        a, b = np.round(rng.gamma(2, 20, n1)), np.round(rng.gamma(2, 21, n2))
    elif kind == 2:  # few distinct values, overlapping supports
        a, b = rng.integers(0, 5, n1).astype(float), rng.integers(1, 6, n2).astype(float)
    else:  # identical values on both sides
        a = np.round(rng.normal(size=n1), 1)
        b = a[rng.integers(0, n1, n2)]
    return a, b


@pytest.mark.parametrize("seed", range(40))
def test_sorted_fast_path_equals_scipy(seed):
    a, b = _random_case(seed)
    stat, p = drift._ks_sorted(np.sort(a), np.sort(b))
    ref = stats.ks_2samp(a, b)
    assert stat == ref.statistic  # bit-identical
    assert p == pytest.approx(ref.pvalue, rel=1e-12, abs=0)
    assert drift._psi_sorted(np.sort(a), np.sort(b), 10) == pytest.approx(psi(a, b), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("n1, n2", [(10_000, 10_000), (10_000, 10_001), (10_001, 2), (2, 10_001)])
def test_ks_exact_asymp_switch(n1, n2):
    rng = np.random.default_rng(n1 + n2)
    a, b = rng.normal(size=n1), rng.normal(0.05, 1, size=n2)
    ref = stats.ks_2samp(a, b)
    assert drift._ks_sorted(np.sort(a), np.sort(b)) == (ref.statistic, pytest.approx(ref.pvalue, rel=1e-12))


# ---------------------------------------------------------------------------
# drift_report
# ---------------------------------------------------------------------------

def test_drift_report_schema_and_hand_values():
    ref = pl.DataFrame({
        "sample_id": [1, 2, 3, 4],
        "x": [1.0, 2.0, None, float("nan")],
        "c": ["a", "b", "a", None],
        "flag": [True, False, True, True],
    })
    cur = pl.DataFrame({
        "sample_id": [5, 6, 7],
        "x": [1.0, 5.0, float("inf")],
        "c": ["a", "z", "z"],
        "flag": [True, True, None],
    })
    rep = drift_report(ref, cur)
    assert rep.columns == list(drift.REPORT_COLUMNS)
    assert rep["feature"].to_list() == ["x", "c", "flag"]
    assert rep.schema["flagged"] == pl.Boolean and rep.schema["psi"] == pl.Float64
    x, c, f = rep.rows(named=True)
    # x: ref [1, 2] (1 null + 1 NaN missing), cur [1, 5] (1 inf missing); interior edge [1.5]
    # r = [.5, .5], c = [.5, .5] -> 0; KS: D = .5 (at 2), exact p for 2 vs 2 = 1.0
    assert (x["kind"], x["ref_n"], x["cur_n"], x["ref_missing"], x["cur_missing"]) == ("numeric", 2, 2, 2, 1)
    assert x["psi"] == 0.0 and x["status"] == "stable"
    assert (x["ks_statistic"], x["ks_pvalue"]) == pytest.approx(stats.ks_2samp([1, 2], [1, 5])[:2], rel=1e-12)
    assert x["ks_statistic"] == 0.5 and x["flagged"] is False
    # c: r = {a: 2/3, b: 1/3, z: 1e-4}, c = {a: 1/3, b: 1e-4, z: 2/3}
    assert c["kind"] == "categorical" and (c["ref_missing"], c["cur_missing"]) == (1, 0)
    assert c["psi"] == pytest.approx(term(1 / 3, 2 / 3) + term(FLOOR, 1 / 3) + term(2 / 3, FLOOR), rel=1e-12)
    assert c["ks_statistic"] is None and c["ks_pvalue"] is None and c["flagged"] is None
    assert c["status"] == "significant"
    # flag (Boolean): r = {true: 3/4, false: 1/4}, c = {true: 1, false: 1e-4}, 1 missing in cur
    assert f["kind"] == "categorical" and f["cur_missing"] == 1
    assert f["psi"] == pytest.approx(term(1.0, 0.75) + term(FLOOR, 0.25), rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_drift_report_numeric_matches_psi_and_scipy(seed):
    a, b = _random_case(seed)
    rng = np.random.default_rng(seed)
    a_nan = a.copy()
    a_nan[rng.integers(0, a.size, 3)] = np.nan
    ref = pl.DataFrame({"v": a_nan})
    cur = pl.DataFrame({"v": pl.Series(b).cast(pl.Float32 if seed % 2 else pl.Float64)})
    row = drift_report(ref, cur).row(0, named=True)
    a_ok = a_nan[~np.isnan(a_nan)]
    b_ok = cur["v"].cast(pl.Float64).to_numpy()
    sp = stats.ks_2samp(a_ok, b_ok)
    assert row["ref_missing"] == a.size - a_ok.size and row["ref_n"] == a_ok.size
    assert row["psi"] == pytest.approx(psi_reference(a_ok, b_ok) if a.size < 600 else psi(a_ok, b_ok),
                                       rel=1e-12, abs=1e-15)
    assert row["ks_statistic"] == sp.statistic
    assert row["ks_pvalue"] == pytest.approx(sp.pvalue, rel=1e-12)
    assert row["flagged"] == (sp.pvalue < 0.05)
    assert row["status"] == psi_status(row["psi"])


def test_drift_report_flags_shift_and_bands():
    rng = np.random.default_rng(3)
    ref = pl.DataFrame({"same": rng.normal(size=3000), "moved": rng.normal(size=3000), "n": rng.integers(0, 3, 3000)})
    cur = pl.DataFrame({"same": rng.normal(size=2000), "moved": rng.normal(1.0, 1, size=2000), "n": rng.integers(0, 3, 2000)})
    rep = {r["feature"]: r for r in drift_report(ref, cur, bins=10).rows(named=True)}
    assert rep["moved"]["flagged"] is True and rep["moved"]["status"] == "significant"
    assert rep["same"]["status"] == "stable"
    assert rep["n"]["kind"] == "numeric"  # integer columns are numeric


def test_drift_report_feature_selection():
    ref = pl.DataFrame({"sample_id": [1, 2], "id": [1, 2], "batch_id": ["a", "b"], "only_ref": [1, 2],
                        "emb": [[0.1, 0.2], [0.3, 0.4]], "x": [1.0, 2.0], "cat": ["u", "v"]})
    cur = pl.DataFrame({"cat": pl.Series(["u", "w"], dtype=pl.Categorical), "x": [3, 4], "sample_id": [3, 4],
                        "id": [3, 4], "batch_id": ["c", "d"], "emb": [[0.1, 0.2], [0.3, 0.4]]})
    assert drift_report(ref, cur)["feature"].to_list() == ["x", "cat"]
    assert drift_report(ref, cur, features="cat")["feature"].to_list() == ["cat"]
    assert drift_report(ref, cur, features=["cat", "x"])["kind"].to_list() == ["categorical", "numeric"]
    assert drift.is_id_column("sample_id") and drift.is_id_column("id") and not drift.is_id_column("idea")


def _frames(ref_col, cur_col):
    return pl.DataFrame({"f": ref_col}), pl.DataFrame({"f": cur_col})


@pytest.mark.parametrize(
    "ref, cur, kwargs, match",
    [
        (*_frames([None, None], [1.0, 2.0]), {}, r"feature 'f' has no non-missing values in reference_df"),
        (*_frames([1.0, 2.0], [float("nan"), None]), {}, r"feature 'f' has no non-missing values in current_df \(2 missing\)"),
        (*_frames(pl.Series([], dtype=pl.Float64), [1.0]), {}, "feature 'f' has no non-missing values in reference_df"),
        (*_frames(["a", None], [None, None]), {}, "feature 'f' has no non-missing values in current_df"),
        (*_frames([None, None], [None, None]), {}, "feature 'f' has no non-missing values"),
        (*_frames([1.0, 2.0], ["a", "b"]), {}, "feature 'f' is numeric in reference_df"),
        (*_frames([1.0, 2.0], [1.0]), {"features": ["g"]}, "feature 'g' is not a column of reference_df"),
        (*_frames([1.0, 2.0], [1.0]), {"features": []}, "features must name at least one"),
        (*_frames([1.0, 2.0], [1.0]), {"features": [1]}, "features must be column names"),
        (*_frames([[1.0], [2.0]], [[1.0]]), {"features": ["f"]}, "feature 'f' has dtype"),
        (*_frames([[1.0], [2.0]], [[1.0]]), {}, "no feature to compare"),
        (*_frames([1.0, 2.0], [1.0]), {"bins": 0}, "bins"),
        (pl.DataFrame({"sample_id": [1]}), pl.DataFrame({"sample_id": [1]}), {}, "no feature to compare"),
        ({"f": [1.0]}, pl.DataFrame({"f": [1.0]}), {}, "reference_df must be a polars DataFrame"),
    ],
)
def test_drift_report_errors(ref, cur, kwargs, match):
    with pytest.raises(ValueError, match=match):
        drift_report(ref, cur, **kwargs)


def test_drift_report_no_runtime_warning():
    ref = pl.DataFrame({"x": [1.0, 1.0, 1.0], "c": ["a", "a", "a"]})
    cur = pl.DataFrame({"x": [2.0, np.nan, np.inf], "c": ["b", None, "b"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = drift_report(ref, cur)
    assert rep["psi"].to_list() == [0.0, pytest.approx(2 * term(1.0, FLOOR), rel=1e-12)]


# ---------------------------------------------------------------------------
# pandas nullable inputs: pd.NA is a missing value, never a category
# ---------------------------------------------------------------------------

REF_NUMBERS = [1, 2, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144]
CUR_NUMBERS = [2, 3, 3, 5, 9, 15, 22, 40, 70]


@pytest.mark.parametrize(
    "to_pandas",
    [lambda v: pd.Series(v, dtype="Int64"), lambda v: pd.array(v, dtype="Int64"),
     lambda v: pd.Series([x / 2 for x in v], dtype="Float64") * 2, lambda v: pd.Series(v, dtype=object)],
    ids=["Int64 Series", "Int64 array", "Float64 Series", "object Series"],
)
def test_psi_and_ks_accept_pandas_nullable_numbers(to_pandas):
    ref, cur = to_pandas(REF_NUMBERS), to_pandas(CUR_NUMBERS)
    assert psi(ref, cur) == pytest.approx(psi(REF_NUMBERS, CUR_NUMBERS), rel=1e-12)
    assert psi(ref, cur, bins=4) == pytest.approx(psi(REF_NUMBERS, CUR_NUMBERS, bins=4), rel=1e-12)
    assert ks_test(ref, cur) == pytest.approx(ks_test(REF_NUMBERS, CUR_NUMBERS), rel=1e-12)


def test_psi_and_ks_accept_pandas_boolean():
    ref, cur = [True, True, False, True], [False, False, True, False]
    nullable = pd.Series(ref, dtype="boolean"), pd.Series(cur, dtype="boolean")
    assert psi(*nullable, bins=2) == pytest.approx(psi([1, 1, 0, 1], [0, 0, 1, 0], bins=2), rel=1e-12)
    assert ks_test(*nullable) == pytest.approx(ks_test([1, 1, 0, 1], [0, 0, 1, 0]), rel=1e-12)


@pytest.mark.parametrize(
    "values",
    [pd.Series([1, None, 3], dtype="Int64"), pd.Series([1.5, None], dtype="Float64"),
     pd.Series([True, None], dtype="boolean"), pd.Series([1, pd.NA], dtype=object), [1.0, pd.NA],
     [1.0, pd.NaT]],
    ids=["Int64", "Float64", "boolean", "object Series", "list with pd.NA", "list with pd.NaT"],
)
def test_psi_and_ks_report_pandas_missing_values(values):
    for call in (lambda: psi(values, [1.0, 2.0]), lambda: ks_test([1.0, 2.0], values)):
        with pytest.raises(ValueError, match="contains 1 NaN/missing"):
            call()


@pytest.mark.parametrize(
    "ref, cur",
    [(pd.Series(["a", "a", "b", pd.NA], dtype="string"), ["a", "c"]),
     (["a", "a", "b", pd.NA], ["a", "c"]),
     (pd.Series([True, False, None], dtype="boolean"), [True]),
     (pd.array([1, 2, None], dtype="Int64"), [1]),
     (pd.Series(["a", None], dtype="category"), ["a"]),
     (np.array(["a", pd.NA], dtype=object), ["a"])],
    ids=["string", "list", "boolean", "Int64 array", "category", "object array"],
)
def test_psi_categorical_pd_na_is_missing_not_a_category(ref, cur):
    with pytest.raises(ValueError, match="reference contains 1 missing"):
        psi_categorical(ref, cur)
    with pytest.raises(ValueError, match="current contains 1 missing"):
        psi_categorical(cur, ref)


@pytest.mark.parametrize(
    "dtype, ref, cur",
    [("string", ["a", "a", "b"], ["a", "c", "c"]), ("Int64", [1, 1, 2], [2, 2, 2]),
     ("boolean", [True, True, False, True], [False, False, True, False]), ("category", ["x", "y"], ["y", "y"])],
)
def test_psi_categorical_accepts_pandas_nullable_labels(dtype, ref, cur):
    expected = psi_categorical(ref, cur)
    got = psi_categorical(pd.Series(ref, dtype=dtype), pd.Series(cur, dtype=dtype))
    assert got == pytest.approx(expected, rel=1e-12)
    assert psi_categorical(pd.array(ref, dtype=dtype), cur) == pytest.approx(expected, rel=1e-12)


def test_drift_report_accepts_pandas_nullable_frames():
    ref = {
        "sample_id": [1, 2, 3, 4, 5], "n": [1, 2, None, 4, 9], "x": [0.5, None, 1.5, 2.5, 3.5],
        "c": ["a", "b", None, "a", "a"], "flag": [True, None, False, True, True],
    }
    cur = {
        "sample_id": [6, 7, 8], "n": [2, None, 30], "x": [None, 9.5, 0.5],
        "c": ["z", "a", None], "flag": [False, False, None],
    }
    dtypes = {"sample_id": "Int64", "n": "Int64", "x": "Float64", "c": "string", "flag": "boolean"}
    schema = {"sample_id": pl.Int64, "n": pl.Int64, "x": pl.Float64, "c": pl.String, "flag": pl.Boolean}
    expected = drift_report(pl.DataFrame(ref, schema=schema), pl.DataFrame(cur, schema=schema))
    assert expected["ref_missing"].to_list() == [1, 1, 1, 1]

    def frame(data):
        return pd.DataFrame({k: pd.Series(v, dtype=dtypes[k]) for k, v in data.items()})

    assert frame(ref)["c"].isna().sum() == 1
    assert drift_report(frame(ref), frame(cur)).equals(expected)
    assert drift_report(frame(ref), pl.DataFrame(cur, schema=schema)).equals(expected)
    assert drift_report(frame(ref), frame(cur), features=["c", "n"]).equals(
        expected.filter(pl.col("feature").is_in(["c", "n"])).sort("feature")
    )


def test_text_features_accepts_pandas_strings():
    samples = {"sample_id": [1, 2, 3], "text": ["Hello世界 foo", None, ""]}
    expected = text_features(pl.DataFrame(samples))
    frame = pd.DataFrame({"sample_id": samples["sample_id"], "text": pd.Series(samples["text"], dtype="string")})
    got = text_features(frame)
    assert got.equals(expected)


# ---------------------------------------------------------------------------
# text_features
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, chars, tokens",
    [("Hello world", 11, 2), ("  leading   and trailing  ", 26, 3), ("Hello世界 foo", 11, 4),
     ("你好，世界。", 6, 6), ("コーヒー", 4, 4), ("GPT-4は最高です", 10, 6), ("한국어 문장", 6, 2),
     ("tab\tnew\nline", 12, 3), ("ideographic\u3000space", 17, 2), ("👍 ok", 4, 2), ("", 0, 0),
     ("   ", 3, 0), (None, None, None)],
)
def test_text_features_hand(text, chars, tokens):
    out = text_features(pl.DataFrame({"sample_id": [7], "output": pl.Series([text], dtype=pl.String)}))
    assert out.columns == ["sample_id", "output_chars", "output_tokens"]
    assert out.row(0) == (7, chars, tokens)
    assert out.schema["output_chars"] == pl.Int64 and out.schema["output_tokens"] == pl.Int64


def test_text_features_fields_order_and_null_column():
    df = pl.DataFrame({"text": ["a b"], "extra": [1], "instruction": ["x"], "sample_id": ["s1"], "input": [None]})
    out = text_features(df)
    assert out.columns == ["sample_id", "instruction_chars", "instruction_tokens", "input_chars",
                           "input_tokens", "text_chars", "text_tokens"]
    assert out.row(0) == ("s1", 1, 1, None, None, 3, 2)


@pytest.mark.parametrize(
    "df, match",
    [(pl.DataFrame({"output": ["a"]}), "sample_id"), (pl.DataFrame({"sample_id": [1], "body": ["a"]}), "at least one text"),
     (pl.DataFrame({"sample_id": [1], "text": [3]}), "text column 'text' must hold strings"),
     ([{"sample_id": 1}], "polars DataFrame")],
)
def test_text_features_errors(df, match):
    with pytest.raises(ValueError, match=match):
        text_features(df)


# alphabet with a hand classification: (character, is_cjk, is_space)
ALPHABET = [("a", 0, 0), ("Z", 0, 0), ("é", 0, 0), ("7", 0, 0), ("-", 0, 0), (",", 0, 0), ("한", 0, 0),
            ("😀", 0, 0), ("，", 0, 0), ("。", 0, 0), (" ", 0, 1), ("\t", 0, 1), ("\n", 0, 1), ("\u3000", 0, 1),
            ("字", 1, 0), ("中", 1, 0), ("あ", 1, 0), ("カ", 1, 0), ("ー", 1, 0), ("\u3400", 1, 0)]
CLASS = {ch: (cjk, sp) for ch, cjk, sp in ALPHABET}


def tokens_reference(text):
    count, in_word = 0, False
    for ch in text:
        cjk, sp = CLASS[ch]
        if cjk:
            count += 1
        if cjk or sp:
            in_word = False
        elif not in_word:
            count, in_word = count + 1, True
    return count


@HYP
@given(st.lists(st.text(alphabet=[c for c, _, _ in ALPHABET], max_size=30), min_size=1, max_size=8))
def test_text_features_matches_python_reference(texts):
    out = text_features(pl.DataFrame({"sample_id": range(len(texts)), "input": texts}))
    assert out["input_chars"].to_list() == [len(t) for t in texts]
    assert out["input_tokens"].to_list() == [tokens_reference(t) for t in texts]


# ---------------------------------------------------------------------------
# embedding_drift
# ---------------------------------------------------------------------------

def _anisotropic(rng, n, shift=0.0):
    x = rng.normal(size=(n, 8)) * np.array([4.0, 2.0, 1, 1, 1, 1, 1, 1])
    x[:, 0] += shift
    return x


def test_embedding_drift_no_shift():
    rng = np.random.default_rng(0)
    out = embedding_drift(_anisotropic(rng, 1500), _anisotropic(rng, 1200))
    assert out["n_components"] == 5 and len(out["component_psi"]) == 5
    assert max(out["component_psi"]) < 0.05 and out["status"] == "stable"
    assert out["domain_auc"] == pytest.approx(0.5, abs=0.06)
    assert len(out["domain_auc_folds"]) == 5


def test_embedding_drift_shift_on_first_component():
    rng = np.random.default_rng(1)
    ref, cur = _anisotropic(rng, 1500), _anisotropic(rng, 1200, shift=4.0)
    out = embedding_drift(ref, cur, n_components=2)
    assert out["component_psi"][0] > PSI_SIGNIFICANT and out["component_psi"][1] < 0.05
    assert out["max_psi"] == max(out["component_psi"]) and out["status"] == "significant"
    # a 1-sd shift on one axis: the best classifier's AUC is Phi(1 / sqrt(2)) = 0.760
    assert out["domain_auc"] == pytest.approx(stats.norm.cdf(1 / math.sqrt(2)), abs=0.03)
    # explained variance of the reference: 16 / (16 + 4 + 6) on the first component, by construction
    assert out["explained_variance_ratio"][0] == pytest.approx(16 / 26, abs=0.03)
    # convention: the same model and folds computed independently give the same AUC
    x = np.vstack([ref, cur])
    y = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    folds = cross_val_score(model, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), scoring="roc_auc")
    assert out["domain_auc"] == pytest.approx(folds.mean(), rel=1e-9)
    # the component PSI is psi() of the projection onto the reference's first principal axis
    axis = np.linalg.svd(ref - ref.mean(0), full_matrices=False)[2][0]
    p_ref, p_cur = (ref - ref.mean(0)) @ axis, (cur - ref.mean(0)) @ axis
    if p_ref.mean() * out["component_psi"][0] < 0:  # sign of an axis is arbitrary
        p_ref, p_cur = -p_ref, -p_cur
    assert out["component_psi"][0] == pytest.approx(psi(p_ref, p_cur), rel=0.02)


def test_embedding_drift_subsample_clip_and_determinism():
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(size=(700, 3)), rng.normal(size=(50, 3))
    out = embedding_drift(ref, cur, n_components=5, max_samples=300, seed=4)
    assert (out["n_ref"], out["n_cur"], out["n_components"]) == (300, 50, 3)
    assert out == embedding_drift(ref, cur, n_components=5, max_samples=300, seed=4)
    assert sum(out["explained_variance_ratio"]) == pytest.approx(1.0, rel=1e-9)


def test_embedding_drift_constant_reference():
    rng = np.random.default_rng(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = embedding_drift(np.ones((20, 4)), rng.normal(size=(20, 4)))
    assert out["component_psi"] == [] and out["n_components"] == 0
    assert out["domain_auc"] > 0.9


@pytest.mark.parametrize(
    "ref, cur, kwargs, match",
    [(np.zeros(10), np.zeros((10, 2)), {}, "ref_emb must be 2-D"),
     (np.zeros((10, 2)), np.zeros((10, 3)), {}, "same dimension"),
     (np.zeros((10, 2)), np.full((10, 2), np.nan), {}, "cur_emb contains NaN"),
     (np.zeros((4, 2)), np.zeros((10, 2)), {}, "ref_emb needs at least 5 rows"),
     (np.zeros((10, 2)), np.zeros((10, 2)), {"n_components": 0}, "n_components"),
     (np.zeros((10, 2)), np.zeros((10, 2)), {"max_samples": 4}, "max_samples"),
     (np.zeros((10, 2)), np.zeros((10, 2)), {"seed": -1}, "seed"),
     ([["a"]], np.zeros((10, 2)), {}, "ref_emb must be a 2-D array of numbers")],
)
def test_embedding_drift_errors(ref, cur, kwargs, match):
    with pytest.raises(ValueError, match=match):
        embedding_drift(ref, cur, **kwargs)
