"""Distribution shift between two selections: PSI/KS per feature, text-length features and embedding drift."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.store import TEXT_FIELDS
from core.validation import _is_missing, _pandas

__all__ = [
    "PSI_MODERATE",
    "PSI_SIGNIFICANT",
    "KS_ALPHA",
    "PSI_FLOOR",
    "TEXT_FIELDS",
    "REPORT_COLUMNS",
    "psi",
    "psi_categorical",
    "ks_test",
    "psi_status",
    "drift_report",
    "text_features",
    "embedding_drift",
    "is_id_column",
]

PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25
KS_ALPHA = 0.05
PSI_FLOOR = 1e-4  # each bin share is floored at this value, without renormalization

# Column order of drift_report's output.
REPORT_COLUMNS = (
    "feature", "kind", "psi", "ks_statistic", "ks_pvalue", "status", "flagged",
    "ref_n", "cur_n", "ref_missing", "cur_missing",
)
_REPORT_SCHEMA = {
    "feature": pl.String, "kind": pl.String, "psi": pl.Float64,
    "ks_statistic": pl.Float64, "ks_pvalue": pl.Float64, "status": pl.String,
    "flagged": pl.Boolean, "ref_n": pl.Int64, "cur_n": pl.Int64,
    "ref_missing": pl.Int64, "cur_missing": pl.Int64,
}

# scipy.stats.ks_2samp(method="auto") computes exact p-values when max(n1, n2) <= this
# (its MAX_AUTO_N); above it, it uses kstwo.sf(D, round(n1*n2/(n1+n2))).
_KS_EXACT_MAX_N = 10_000

# Han ideographs, hiragana, katakana and the prolonged sound mark: one token per character.
_CJK_CLASS = r"\p{Han}\p{Hiragana}\p{Katakana}\x{30FC}"
_CJK_CHAR_RE = f"[{_CJK_CLASS}]"
_WORD_RE = rf"[^\s{_CJK_CLASS}]+"


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------

def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _as_polars_frame(df, name: str):
    """A pandas DataFrame as a polars one (nullable columns: pd.NA and NaN become null); others as given."""
    pd = _pandas()
    if pd is None or not isinstance(df, pd.DataFrame):
        return df
    try:
        return pl.from_pandas(df)
    except (TypeError, ValueError, ImportError) as exc:  # pyarrow's errors derive from these
        raise ValueError(f"{name}: could not read the pandas DataFrame ({exc})") from None


def _as_numeric_1d(values, name: str) -> np.ndarray:
    """1-D float64 copy/view of `values`; ValueError if not numeric, not 1-D, empty or non-finite."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be a 1-D array of numbers, got a string")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        # pd.NA / pd.NaT in an object array cannot be cast: make them NaN, reported below as missing
        try:
            obj = np.asarray(values, dtype=object)
            arr = np.array([np.nan if _is_missing(v) else v for v in obj.reshape(-1)], dtype=np.float64)
            arr = arr.reshape(obj.shape)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a 1-D array of numbers") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array with shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: it needs at least one value")
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(
            f"{name} contains {bad} NaN/missing or infinite value(s); they are not binned "
            "silently: drop them first (drift_report counts and reports them)"
        )
    return arr


def _check_span(sorted_values: np.ndarray, name: str) -> None:
    # numpy.quantile interpolates with b - a, which overflows beyond ~1.8e308.
    with np.errstate(over="ignore"):
        span = sorted_values[-1] - sorted_values[0]
    if not np.isfinite(span):
        raise ValueError(f"{name} spans too wide a range for quantiles (max - min overflows float64)")


# ---------------------------------------------------------------------------
# PSI and KS
# ---------------------------------------------------------------------------

def _psi_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """PSI from per-bin counts (same bin order on both sides); shares floored, not renormalized."""
    r = np.maximum(ref_counts / ref_counts.sum(), PSI_FLOOR)
    c = np.maximum(cur_counts / cur_counts.sum(), PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def _interior_edges(sorted_or_raw_reference: np.ndarray, bins: int) -> np.ndarray:
    edges = np.unique(np.quantile(sorted_or_raw_reference, np.linspace(0.0, 1.0, bins + 1)))
    return edges[1:-1]


# No well-kept library implements this exact PSI convention, so it is written here.
def psi(reference, current, bins: int = 10) -> float:
    """Population stability index of numeric `current` against `reference`.

    reference, current: 1-D array-likes of finite numbers (lists, numpy arrays, polars or pandas
    Series/arrays, nullable Int64/Float64/boolean included), any lengths >= 1 (NaN, pd.NA and inf
    are rejected with ValueError, never binned). bins: int >= 1, default 10.
    Convention (exact): edges = numpy.unique(numpy.quantile(reference, linspace(0, 1, bins + 1)));
    only interior edges edges[1:-1] are used, so the outer bins are open; a value v goes to bin
    numpy.searchsorted(interior, v, side="right"); each side's bin share is floored at 1e-4
    (no renormalization); PSI = sum((c - r) * ln(c / r)). Returns a float >= 0 (0 when the
    reference is constant: one bin). Duplicate quantiles (ties) merge bins, so fewer than
    `bins` bins may be used.
    """
    bins = _check_int(bins, "bins", 1)
    ref = _as_numeric_1d(reference, "reference")
    cur = _as_numeric_1d(current, "current")
    _check_span(np.array([ref.min(), ref.max()]), "reference")
    interior = _interior_edges(ref, bins)
    k = interior.size + 1
    ref_counts = np.bincount(np.searchsorted(interior, ref, side="right"), minlength=k)
    cur_counts = np.bincount(np.searchsorted(interior, cur, side="right"), minlength=k)
    return _psi_from_counts(ref_counts, cur_counts)


def _psi_sorted(ref_sorted: np.ndarray, cur_sorted: np.ndarray, bins: int) -> float:
    """psi() on pre-sorted finite arrays: bin counts by searchsorted of the edges (same result).

    Hand-written so drift_report reuses the KS sort: counting is a few binary searches
    instead of one searchsorted per value.
    """
    interior = _interior_edges(ref_sorted, bins)
    # count of values in bins 0..b = #values < interior[b]  (bin index = #edges <= v)
    ref_cum = np.searchsorted(ref_sorted, interior, side="left")
    cur_cum = np.searchsorted(cur_sorted, interior, side="left")
    ref_counts = np.diff(np.concatenate(([0], ref_cum, [ref_sorted.size])))
    cur_counts = np.diff(np.concatenate(([0], cur_cum, [cur_sorted.size])))
    return _psi_from_counts(ref_counts, cur_counts)


def _category_counts(values, name: str) -> pl.DataFrame:
    """DataFrame(category: String, count: Int64) of non-missing values; ValueError on missing."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of category labels, got a single string")
    if isinstance(values, pl.Series):
        s = values
        missing = s.null_count() + (int(s.is_nan().sum() or 0) if s.dtype.is_float() else 0)
    else:
        try:
            arr = np.asarray(values, dtype=object)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a 1-D sequence of category labels") from None
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
        labels = arr.tolist()
        # None, NaN, pd.NA and NaT are missing; polars would otherwise turn NaN or pd.NA into a label
        missing = sum(1 for v in labels if _is_missing(v))
        if not missing:
            try:
                s = pl.Series(name, labels, strict=False)
            except (TypeError, pl.exceptions.PolarsError):
                raise ValueError(f"{name} must be a 1-D sequence of category labels") from None
    if missing:
        raise ValueError(
            f"{name} contains {missing} missing (None/NaN/pd.NA) label(s); they are not binned "
            "silently: drop them first (drift_report counts and reports them)"
        )
    if s.len() == 0:
        raise ValueError(f"{name} is empty: it needs at least one value")
    if isinstance(s.dtype, (pl.List, pl.Array, pl.Struct, pl.Object)):
        raise ValueError(f"{name} must hold scalar category labels, got dtype {s.dtype}")
    s = s.cast(pl.String)
    return s.value_counts(name="count").rename({s.name: "category"}).with_columns(
        pl.col("count").cast(pl.Int64)
    )


def _psi_categorical_counts(ref_counts: pl.DataFrame, cur_counts: pl.DataFrame) -> float:
    joined = (
        ref_counts.join(cur_counts, on="category", how="full", coalesce=True, suffix="_cur")
        .fill_null(0)
        .sort("category")
    )
    return _psi_from_counts(joined["count"].to_numpy(), joined["count_cur"].to_numpy())


def psi_categorical(reference, current) -> float:
    """Population stability index of categorical samples.

    reference, current: 1-D sequences (list, numpy array, polars or pandas Series/array, nullable
    dtypes such as "string", "Int64", "boolean" included) of category labels (str, bool, int...;
    compared by their string form), lengths >= 1, no missing label (None, NaN, pd.NA, pd.NaT:
    ValueError, never a category of its own).
    One bin per category present in either sample, each side's share floored at 1e-4 (no
    renormalization), PSI = sum((c - r) * ln(c / r)). A category present on one side only
    contributes with share 1e-4 on the other side. Returns a float >= 0.
    """
    return _psi_categorical_counts(
        _category_counts(reference, "reference"), _category_counts(current, "current")
    )


def _ks_2samp_quiet(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    # scipy warns (RuntimeWarning) when its exact p-value fails and it falls back to asymp;
    # the values returned are still ks_2samp's, so the warning is not shown to the user.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ks_2samp: Exact calculation", category=RuntimeWarning)
        res = stats.ks_2samp(a, b)
    return float(res.statistic), float(res.pvalue)


def ks_test(reference, current) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test: (statistic, p-value) of scipy.stats.ks_2samp defaults.

    reference, current: 1-D array-likes of finite numbers as for psi(), lengths >= 1 (NaN, pd.NA,
    inf: ValueError).
    statistic in [0, 1], p-value in [0, 1] (exact for max(n1, n2) <= 10,000, asymptotic above).
    """
    return _ks_2samp_quiet(_as_numeric_1d(reference, "reference"), _as_numeric_1d(current, "current"))


def _ks_sorted(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """ks_2samp(a, b) for sorted finite float64 arrays, reusing the sort.

    Hand-written because ks_2samp re-sorts and searches all n1 + n2 points in both samples;
    here each side is searched once at its distinct values (the ECDF difference only changes
    there), with the same float operations, so the statistic is bit-identical.
    """
    n1, n2 = a.size, b.size
    if max(n1, n2) <= _KS_EXACT_MAX_N:
        return _ks_2samp_quiet(a, b)  # exact p-value path: let scipy do it
    diffs = []
    for x, y, nx, ny, x_is_a in ((a, b, n1, n2, True), (b, a, n2, n1, False)):
        ends = np.flatnonzero(x[1:] != x[:-1])          # last index of each run of ties...
        ends = np.append(ends, x.size - 1)               # ...plus the final run
        cnt_x = (ends + 1) / nx                          # ECDF of x at its distinct values
        cnt_y = np.searchsorted(y, x[ends], side="right") / ny
        diffs.append(cnt_x - cnt_y if x_is_a else cnt_y - cnt_x)
    cddiffs = np.concatenate(diffs)
    min_s = np.clip(-np.min(cddiffs), 0, 1)
    max_s = np.max(cddiffs)
    d = min_s if min_s > max_s else max_s
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    prob = np.clip(stats.kstwo.sf(d, np.round(en)), 0, 1)
    return float(d), float(prob)


def psi_status(value) -> str:
    """Band of a PSI value: 'stable' (< 0.1), 'moderate' (0.1 <= v < 0.25), 'significant' (>= 0.25).

    value: real number >= 0 (inf allowed: 'significant'); NaN, negative or non-numbers: ValueError.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"value must be a PSI number >= 0, got {value!r}")
    v = float(value)
    if math.isnan(v) or v < 0:
        raise ValueError(f"value must be a PSI number >= 0, got {value!r}")
    if v < PSI_MODERATE:
        return "stable"
    if v < PSI_SIGNIFICANT:
        return "moderate"
    return "significant"


# ---------------------------------------------------------------------------
# drift report over DataFrames
# ---------------------------------------------------------------------------

def is_id_column(name: str) -> bool:
    """True for id-like column names excluded by drift_report(features=None): 'id' or '*_id'."""
    return name == "id" or name.endswith("_id")


def _kind_of(dtype: pl.DataType) -> str | None:
    if dtype == pl.Boolean or dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return "categorical"
    if dtype.is_numeric():
        return "numeric"
    if dtype == pl.Null:
        return "null"
    return None


def _numeric_side(s: pl.Series, feature: str, side: str) -> tuple[np.ndarray, int]:
    """Sorted finite float64 values of `s` and the count of missing (null, NaN, +-inf) values."""
    missing = s.null_count()
    if missing:
        s = s.drop_nulls()
    x = s.cast(pl.Float64).to_numpy()
    finite = np.isfinite(x)
    n_bad = int(x.size - np.count_nonzero(finite))
    if n_bad:
        x = x[finite]
        missing += n_bad
    if x.size == 0:
        raise ValueError(
            f"feature {feature!r} has no non-missing values in {side} "
            f"({missing} missing): cannot compare an empty side"
        )
    x = np.sort(x)
    return x, missing


def _categorical_side(s: pl.Series, feature: str, side: str) -> tuple[pl.DataFrame, int, int]:
    missing = s.null_count()
    s = s.drop_nulls()
    if s.len() == 0:
        raise ValueError(
            f"feature {feature!r} has no non-missing values in {side} "
            f"({missing} missing): cannot compare an empty side"
        )
    s = s.cast(pl.String)
    counts = s.value_counts(name="count").rename({s.name: "category"}).with_columns(
        pl.col("count").cast(pl.Int64)
    )
    return counts, s.len(), missing


#: The drift tests of the report, one per feature kind: ``test(ref, cur, feature, bins) -> dict`` with
#: psi, ks_statistic, ks_pvalue, status, flagged, ref_n, cur_n, ref_missing, cur_missing. A new kind
#: of feature is a new function registered with :func:`drift_test` (Evidently's stattest idea).
DRIFT_TESTS: dict[str, Callable[[pl.Series, pl.Series, str, int], dict[str, Any]]] = {}


def drift_test(kind: str) -> Callable:
    """Register the drift test of one feature kind (``numeric``, ``categorical``, ...)."""
    def register(fn: Callable) -> Callable:
        DRIFT_TESTS[kind] = fn
        return fn
    return register


@drift_test("numeric")
def _numeric_drift(rs: pl.Series, cs: pl.Series, feature: str, bins: int) -> dict[str, Any]:
    """PSI over reference-quantile bins and the two-sample KS test."""
    a, ref_missing = _numeric_side(rs, feature, "reference_df")
    b, cur_missing = _numeric_side(cs, feature, "current_df")
    _check_span(a, f"feature {feature!r} in reference_df")
    value = _psi_sorted(a, b, bins)
    ks_stat, ks_p = _ks_sorted(a, b)
    return {"psi": value, "ks_statistic": ks_stat, "ks_pvalue": ks_p, "status": psi_status(value),
            "flagged": ks_p < KS_ALPHA, "ref_n": int(a.size), "cur_n": int(b.size),
            "ref_missing": int(ref_missing), "cur_missing": int(cur_missing)}


@drift_test("categorical")
def _categorical_drift(rs: pl.Series, cs: pl.Series, feature: str, bins: int) -> dict[str, Any]:
    """PSI over the categories (no KS: categories have no order)."""
    rc, ref_n, ref_missing = _categorical_side(rs, feature, "reference_df")
    cc, cur_n, cur_missing = _categorical_side(cs, feature, "current_df")
    value = _psi_categorical_counts(rc, cc)
    return {"psi": value, "ks_statistic": None, "ks_pvalue": None, "status": psi_status(value),
            "flagged": None, "ref_n": int(ref_n), "cur_n": int(cur_n),
            "ref_missing": int(ref_missing), "cur_missing": int(cur_missing)}


def drift_report(
    reference_df: pl.DataFrame,
    current_df: pl.DataFrame,
    features: Sequence[str] | str | None = None,
    *,
    bins: int = 10,
) -> pl.DataFrame:
    """Per-feature drift of `current_df` against `reference_df` (polars or pandas DataFrames, any row counts).

    A pandas DataFrame is read with polars.from_pandas: nullable columns (Int64, Float64, string,
    boolean) keep their kind, and pd.NA, like NaN, is a missing value.

    features: column names present in both frames; default None = every column common to both,
    in reference_df order, except id-like columns ('id', '*_id', see is_id_column) and columns
    of unsupported dtype (lists/arrays such as embeddings, structs, dates), which are skipped.
    Numeric columns (ints, floats, decimals) get psi (see psi(), `bins` default 10) and the
    ks_2samp statistic/p-value; categorical columns (String, Categorical, Enum, Boolean) get
    psi_categorical and null KS columns (a String column is taken as categorical: leave free
    text out via `features`; cast integer label ids to String to get categories). Missing
    values (null; also NaN and +-inf for numeric) are counted in ref_missing/cur_missing and
    excluded; psi and KS use the rest.
    Returns one row per feature, in feature order, columns: feature, kind ('numeric' or
    'categorical'), psi (>= 0), ks_statistic, ks_pvalue (null for categorical), status
    (psi_status bands), flagged (ks_pvalue < 0.05; null for categorical), ref_n, cur_n
    (non-missing counts), ref_missing, cur_missing.
    Raises ValueError for a feature missing from a frame, a numeric/categorical mismatch
    between sides, an unsupported dtype, or a side with no non-missing values (named).
    """
    reference_df = _as_polars_frame(reference_df, "reference_df")
    current_df = _as_polars_frame(current_df, "current_df")
    for name, df in (("reference_df", reference_df), ("current_df", current_df)):
        if not isinstance(df, pl.DataFrame):
            raise ValueError(f"{name} must be a polars DataFrame (or a pandas one), got {type(df).__name__}")
    bins = _check_int(bins, "bins", 1)

    explicit = features is not None
    if features is None:
        cur_cols = set(current_df.columns)
        features = [c for c in reference_df.columns if c in cur_cols and not is_id_column(c)]
    elif isinstance(features, str):
        features = [features]
    else:
        features = list(features)
    if explicit and not features:
        raise ValueError("features must name at least one column (or be None for all common columns)")

    rows = []
    for feature in features:
        if not isinstance(feature, str):
            raise ValueError(f"features must be column names (str), got {feature!r}")
        for name, df in (("reference_df", reference_df), ("current_df", current_df)):
            if feature not in df.columns:
                raise ValueError(f"feature {feature!r} is not a column of {name}")
        rs, cs = reference_df.get_column(feature), current_df.get_column(feature)
        rk, ck = _kind_of(rs.dtype), _kind_of(cs.dtype)
        if rk is None or ck is None:
            if not explicit:
                continue  # unsupported dtype (e.g. embedding lists): skipped in automatic mode
            bad = rs.dtype if rk is None else cs.dtype
            raise ValueError(
                f"feature {feature!r} has dtype {bad}; expected a numeric or categorical "
                "(String, Categorical, Enum, Boolean) column"
            )
        if rk == "null":
            rk = ck
        if ck == "null":
            ck = rk
        if rk != ck:
            raise ValueError(
                f"feature {feature!r} is {rk} in reference_df ({rs.dtype}) but {ck} "
                f"in current_df ({cs.dtype}); cast one side so both match"
            )
        kind = "categorical" if rk == "null" else rk  # both all-null: the empty-side error below
        rows.append({"feature": feature, "kind": kind, **DRIFT_TESTS[kind](rs, cs, feature, bins)})
    if not rows:
        raise ValueError(
            "no feature to compare: reference_df and current_df share no numeric or "
            "categorical column other than id-like columns"
        )
    return pl.DataFrame(rows, schema=_REPORT_SCHEMA)


# ---------------------------------------------------------------------------
# feature builders
# ---------------------------------------------------------------------------

def text_features(samples: pl.DataFrame) -> pl.DataFrame:
    """Character and token-ish lengths of each text field, one row per input row.

    samples: polars (or pandas) DataFrame with a `sample_id` column and at least one of the text fields
    instruction, input, output, text (String, Categorical or all-null columns; nulls allowed).
    Returns sample_id plus, for each present field F in that order, `F_chars` (Int64: number of
    Unicode characters) and `F_tokens` (Int64): one token per CJK character (Unicode scripts
    Han, Hiragana, Katakana, plus the prolonged sound mark U+30FC) plus one per maximal run of
    characters that are neither whitespace nor CJK. So English words split on whitespace,
    'Hello世界 foo' -> 4, '你好，世界。' -> 6 (4 ideographs + 2 punctuation runs). Hangul is
    counted by whitespace words, as Korean separates words with spaces. Null text -> null
    chars and tokens; '' -> 0 and 0.
    """
    samples = _as_polars_frame(samples, "samples")
    if not isinstance(samples, pl.DataFrame):
        raise ValueError(f"samples must be a polars DataFrame, got {type(samples).__name__}")
    if "sample_id" not in samples.columns:
        raise ValueError("samples must have a 'sample_id' column")
    present = [f for f in TEXT_FIELDS if f in samples.columns]
    if not present:
        raise ValueError(f"samples must have at least one text column among {list(TEXT_FIELDS)}")
    exprs = [pl.col("sample_id")]
    for f in present:
        dtype = samples.schema[f]
        if not (dtype in (pl.String, pl.Null) or isinstance(dtype, (pl.Categorical, pl.Enum))):
            raise ValueError(f"text column {f!r} must hold strings, got dtype {dtype}")
        col = pl.col(f).cast(pl.String)
        exprs.append(col.str.len_chars().cast(pl.Int64).alias(f"{f}_chars"))
        exprs.append(
            (col.str.count_matches(_CJK_CHAR_RE) + col.str.count_matches(_WORD_RE))
            .cast(pl.Int64)
            .alias(f"{f}_tokens")
        )
    return samples.select(exprs)


def _as_embeddings(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 2-D array of numbers (n_samples, dim)") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, dim), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one dimension, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def embedding_drift(
    ref_emb,
    cur_emb,
    n_components: int = 5,
    seed: int = 0,
    *,
    max_samples: int = 5_000,
    bins: int = 10,
) -> dict:
    """Drift between two embedding sets: PSI on principal components and a domain-classifier AUC.

    ref_emb: (n_ref, d), cur_emb: (n_cur, d) finite float arrays, n_ref, n_cur >= 5 (after
    subsampling each side to at most `max_samples`, default 5,000, uniformly without replacement
    with numpy default_rng(seed), for speed). sklearn PCA with min(n_components, n_ref, d)
    components (default 5) is fit on the reference sample only; both sides are projected and
    psi() (`bins` default 10) is computed per component. domain_auc: mean ROC AUC over
    StratifiedKFold(5, shuffle=True, random_state=seed) of StandardScaler + LogisticRegression
    telling reference (0) from current (1); ~0.5 = no detectable shift, 1.0 = fully separable
    (values somewhat below 0.5 also mean no shift: e.g. ~0.43 when current duplicates reference).
    Returns {'component_psi': list[float] (one per component), 'explained_variance_ratio':
    list[float], 'max_psi': float, 'status': psi_status(max_psi), 'domain_auc': float in [0, 1],
    'domain_auc_folds': list[float] (5), 'n_ref': int, 'n_cur': int, 'n_components': int}.
    """
    n_components = _check_int(n_components, "n_components", 1)
    seed = _check_int(seed, "seed", 0)
    max_samples = _check_int(max_samples, "max_samples", 5)
    bins = _check_int(bins, "bins", 1)
    ref = _as_embeddings(ref_emb, "ref_emb")
    cur = _as_embeddings(cur_emb, "cur_emb")
    if ref.shape[1] != cur.shape[1]:
        raise ValueError(
            f"ref_emb and cur_emb must have the same dimension, got {ref.shape[1]} and {cur.shape[1]}"
        )
    for name, arr in (("ref_emb", ref), ("cur_emb", cur)):
        if arr.shape[0] < 5:
            raise ValueError(f"{name} needs at least 5 rows for 5-fold cross-validation, got {arr.shape[0]}")

    rng = np.random.default_rng(seed)
    if ref.shape[0] > max_samples:
        ref = ref[np.sort(rng.choice(ref.shape[0], max_samples, replace=False))]
    if cur.shape[0] > max_samples:
        cur = cur[np.sort(rng.choice(cur.shape[0], max_samples, replace=False))]

    k = min(n_components, ref.shape[0], ref.shape[1])
    if np.ptp(ref, axis=0).max() > 0:
        pca = PCA(n_components=k, random_state=seed).fit(ref)
        ref_proj, cur_proj = pca.transform(ref), pca.transform(cur)
        evr = [float(v) for v in pca.explained_variance_ratio_]
        component_psi = [psi(ref_proj[:, i], cur_proj[:, i], bins=bins) for i in range(k)]
    else:
        # identical reference rows: no principal direction; PCA would divide by zero variance
        k = 0
        evr, component_psi = [], []

    x = np.vstack([ref, cur])
    y = np.concatenate([np.zeros(ref.shape[0], dtype=np.int8), np.ones(cur.shape[0], dtype=np.int8)])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    folds = cross_val_score(model, x, y, cv=cv, scoring="roc_auc")
    max_psi = max(component_psi) if component_psi else 0.0
    return {
        "component_psi": component_psi,
        "explained_variance_ratio": evr,
        "max_psi": float(max_psi),
        "status": psi_status(max_psi),
        "domain_auc": float(np.mean(folds)),
        "domain_auc_folds": [float(v) for v in folds],
        "n_ref": int(ref.shape[0]),
        "n_cur": int(cur.shape[0]),
        "n_components": int(k),
    }
