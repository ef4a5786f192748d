"""Inter-annotator agreement over a ratings matrix: metrics, bootstrap intervals, majority votes, per-annotator views.

The ratings matrix
------------------
Every function here takes a **ratings matrix**: a 2-D array-like with one row per sample and one
column per annotator (a numpy array of any dtype, a list of lists, or a polars or pandas DataFrame
whose columns are the annotators; pandas nullable columns such as ``"string"``, ``"Int64"`` or
``"boolean"`` included). Labels may be strings (Chinese or English alike) or numbers; a missing
rating is ``None``, NaN, pandas' ``pd.NA`` or ``pd.NaT``. Labels are compared by equality, and
``1``, ``1.0`` and ``True`` are the same label. The sorted order of the distinct labels (numbers
ascending, strings by Unicode code point, numbers before strings when mixed) is the order used
wherever one is needed: tie-breaks, weighted kappa, ordinal alpha, tables. :func:`ratings_matrix` builds the matrix from
the store's long-form annotations.

Undefined values
----------------
Degenerate input (an empty matrix, no sample rated by two or more annotators, a single label
everywhere) makes a coefficient undefined. The metric then returns ``float("nan")`` — never an
exception or a numpy warning — and :func:`explain_nan` called with the same metric and arguments
returns a sentence the page can show (``None`` when the value is defined). Arguments a user can get
wrong raise :class:`ValueError` naming the argument.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import cohen_kappa_score

from core.validation import _as_matrix, _is_missing, _is_pandas, _missing_mask, _pandas  # noqa: F401

KAPPA_RETRAIN_THRESHOLD = 0.6
"""Kappa below which :func:`annotator_report` flags an annotator for retraining."""

LEVELS = ("nominal", "ordinal", "interval", "ratio")
"""Levels of measurement accepted by :func:`krippendorff_alpha`."""

WEIGHTS = (None, "linear", "quadratic")
"""Weightings accepted by :func:`cohen_kappa`."""

_NAN = float("nan")
_MISSING_CODE = -1


# ---------------------------------------------------------------------------------------------
# Input normalisation and label coding
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Coded:
    """A ratings matrix as integer codes: ``codes[i, j]`` indexes ``categories`` or is -1 (missing)."""

    codes: np.ndarray  # (n_samples, n_annotators) int64
    categories: list  # distinct labels in sort order

    @property
    def n_categories(self) -> int:
        return len(self.categories)


def _as_vector(values: Any, name: str) -> np.ndarray:
    """Return a 1-D label vector (numeric dtype or object)."""
    if isinstance(values, pl.Series) or _is_pandas(values, "Series", "Index"):
        array = values.to_numpy()
    elif isinstance(values, np.ndarray):
        array = values
    elif isinstance(values, (str, bytes)) or values is None:
        raise ValueError(f"{name}: expected a 1-D sequence of labels, got {type(values).__name__}")
    else:
        try:
            array = np.array(values, dtype=object)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name}: expected a 1-D sequence of labels; {exc}") from exc
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of labels, got shape {array.shape}")
    if array.dtype.kind in "biuf":
        return array
    if array.dtype.kind in "OUS":
        return array.astype(object)
    raise ValueError(f"{name}: labels must be strings or numbers, got dtype {array.dtype}")


def _label_sort_key(value: Any) -> tuple:
    if isinstance(value, numbers.Real):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _sorted_labels(labels: set) -> list:
    try:
        return sorted(labels)
    except TypeError:  # mixed numbers and strings: numbers first, then strings
        return sorted(labels, key=_label_sort_key)


def _encode_numbers(values: np.ndarray) -> tuple[np.ndarray, list]:
    """Codes (in sorted order) and distinct values of a 1-D numeric array without NaN."""
    if values.size:
        low, high = values.min(), values.max()
        # whole numbers exactly representable in int64 (and float64), in a range about the data's size
        representable = abs(float(low)) < 2.0**53 and abs(float(high)) < 2.0**53
        if representable and float(high) - float(low) <= 4 * values.size + 1024:
            as_int = values.astype(np.int64)
            if values.dtype.kind != "f" or (as_int == values).all():
                # whole-number labels in a small range: a lookup table is O(n), np.unique sorts
                shifted = as_int - int(low)
                used = np.flatnonzero(np.bincount(shifted))
                table = np.full(int(shifted.max()) + 1, _MISSING_CODE, dtype=np.int64)
                table[used] = np.arange(used.size)
                return table[shifted], (used + int(low)).astype(values.dtype).tolist()
    distinct, inverse = np.unique(values, return_inverse=True)
    return inverse.reshape(-1), distinct.tolist()


def _encode(matrix: np.ndarray) -> _Coded:
    """Map labels to codes 0..K-1 in sorted label order; missing ratings become -1."""
    flat = matrix.reshape(-1)
    codes = np.full(flat.shape, _MISSING_CODE, dtype=np.int64)
    if matrix.dtype.kind in "biuf":
        present = ~np.isnan(flat) if matrix.dtype.kind == "f" else np.ones(flat.shape, dtype=bool)
        codes[present], categories = _encode_numbers(flat[present])
    else:
        present = ~_missing_mask(flat)
        labels = flat[present].tolist()
        try:
            categories = _sorted_labels(set(labels))
        except TypeError as exc:
            raise ValueError(f"ratings: labels must be strings or numbers (hashable); {exc}") from exc
        lookup = {label: code for code, label in enumerate(categories)}
        codes[present] = np.fromiter(map(lookup.__getitem__, labels), dtype=np.int64, count=len(labels))
    return _Coded(codes.reshape(matrix.shape), categories)


def _unit_counts(codes: np.ndarray, n_categories: int) -> np.ndarray:
    """(n_samples, K) int64: how many annotators gave each label to each sample."""
    n_samples = codes.shape[0]
    present = codes >= 0
    rows = np.broadcast_to(np.arange(n_samples)[:, None], codes.shape)[present]
    flat = rows * n_categories + codes[present]
    return np.bincount(flat, minlength=n_samples * n_categories).reshape(n_samples, n_categories)


def _label_kind(categories: Sequence) -> str:
    """'number' if every label is a real number, 'string' if every label is a str, else 'mixed'."""
    if all(isinstance(c, numbers.Real) for c in categories):
        return "number"
    if all(isinstance(c, str) for c in categories):
        return "string"
    return "mixed"


def _label_series(name: str, labels: Sequence) -> pl.Series:
    """A polars column of labels: Utf8, Int64 or Float64 when homogeneous, else the labels as text."""
    labels = list(labels)
    if all(isinstance(v, str) for v in labels):
        return pl.Series(name, labels, dtype=pl.Utf8)
    if all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in labels):
        return pl.Series(name, [int(v) for v in labels], dtype=pl.Int64)
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in labels):
        return pl.Series(name, [float(v) for v in labels], dtype=pl.Float64)
    return pl.Series(name, [str(v) for v in labels], dtype=pl.Utf8)


def _annotator_names(annotators: Sequence | None, ratings: Any, n_columns: int) -> list[str]:
    if annotators is None:
        if isinstance(ratings, pl.DataFrame):
            return list(ratings.columns)
        if _is_pandas(ratings, "DataFrame"):
            return [str(c) for c in ratings.columns]
        return [str(k) for k in range(n_columns)]
    if isinstance(annotators, (str, bytes)):
        raise ValueError("annotators: expected a sequence of names, one per ratings column, got a single string")
    names = [str(a) for a in annotators]
    if len(names) != n_columns:
        raise ValueError(f"annotators: expected {n_columns} names (one per ratings column), got {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError("annotators: names must be unique")
    return names


def _safe_divide(numerator: Any, denominator: Any) -> np.ndarray:
    """Elementwise numerator / denominator, NaN where the denominator is 0 (and no warning)."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.full(np.broadcast_shapes(numerator.shape, denominator.shape), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _check_level(level: Any) -> str:
    if level not in LEVELS:
        raise ValueError(f"level: expected one of {', '.join(LEVELS)}, got {level!r}")
    return level


def _check_alpha_labels(level: str, categories: list) -> np.ndarray | None:
    """Validate labels for the level; return label values for interval/ratio (else None)."""
    kind = _label_kind(categories)
    if level == "ordinal" and kind == "mixed":
        raise ValueError("ratings: ordinal alpha needs labels that can be ordered (all numbers or all strings)")
    if level in ("interval", "ratio"):
        if kind != "number":
            raise ValueError(f"ratings: {level} alpha needs numeric labels, got non-numeric labels")
        values = np.asarray(categories, dtype=float)
        if level == "ratio" and (values < 0).any():
            raise ValueError("ratings: ratio alpha needs non-negative labels (a ratio scale starts at 0)")
        return values
    return None


# ---------------------------------------------------------------------------------------------
# Metric kernels over count patterns.
# C: (P, K) how many annotators gave each label, one row per sample (or per distinct count
# pattern); W: (B, P) how often each row is taken (all ones for the plain estimate, bootstrap
# frequencies for a resample). Every kernel returns (B,) values, NaN where undefined.
# ---------------------------------------------------------------------------------------------
def _weighted_sum(W: np.ndarray | None, X: np.ndarray) -> np.ndarray:
    """(B, ...) weighted column sums of X (P, ...); W None means every row once (a plain sum)."""
    # plain sums for the point estimate: a (1, N) @ (N, K) BLAS call is ~40x slower on a busy machine
    if W is None:
        return X.sum(axis=0)[None, ...]
    return W @ X


def _pair_agreement(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: share of agreeing annotator pairs (0 for rows with < 2 ratings), and ratings count."""
    m = C.sum(axis=1)
    pairs = m * (m - 1)
    agreeing = (C * (C - 1)).sum(axis=1)
    return np.divide(agreeing, pairs, out=np.zeros_like(m), where=pairs > 0), m


def _percent_agreement_kernel(C: np.ndarray, W: np.ndarray | None) -> np.ndarray:
    share, m = _pair_agreement(C)
    return _safe_divide(_weighted_sum(W, share), _weighted_sum(W, (m >= 2).astype(float)))


def _fleiss_kernel(C: np.ndarray, W: np.ndarray | None) -> np.ndarray:
    # hand-written: statsmodels' fleiss_kappa asserts every sample has the same number of ratings;
    # this is Gwet's generalisation to missing ratings, identical to Fleiss (1971) when complete
    share, m = _pair_agreement(C)
    rated = m >= 1
    proportions = np.divide(C, m[:, None], out=np.zeros_like(C), where=rated[:, None])
    weight_pairable = _weighted_sum(W, (m >= 2).astype(float))
    p_observed = _safe_divide(_weighted_sum(W, share), weight_pairable)
    pi = _safe_divide(_weighted_sum(W, proportions), _weighted_sum(W, rated.astype(float))[:, None])
    p_expected = (pi * pi).sum(axis=1)
    used = (_weighted_sum(W, C) > 0).sum(axis=1)
    ok = (weight_pairable > 0) & (used >= 2)  # two labels in use ⇒ p_expected < 1
    kappa = np.full(ok.shape[0], np.nan)
    kappa[ok] = (p_observed[ok] - p_expected[ok]) / (1.0 - p_expected[ok])
    return kappa


def _ordinal_delta(n_c: np.ndarray) -> np.ndarray:
    """(B, K, K) squared ordinal distances from (B, K) pairable-value counts (Krippendorff 2011)."""
    index = np.arange(n_c.shape[1])
    lo, hi = np.minimum.outer(index, index), np.maximum.outer(index, index)
    cumulative = np.cumsum(n_c, axis=1)
    between = cumulative[:, hi] - cumulative[:, lo] + n_c[:, lo]
    return (between - (n_c[:, lo] + n_c[:, hi]) / 2.0) ** 2


def _fixed_delta(level: str, n_categories: int, values: np.ndarray | None) -> np.ndarray:
    """(K, K) squared distances for nominal, interval and ratio data."""
    if level == "nominal":
        return 1.0 - np.eye(n_categories)
    difference = values[:, None] - values[None, :]
    if level == "interval":
        return difference**2
    total = values[:, None] + values[None, :]
    return np.divide(difference, total, out=np.zeros_like(difference), where=total != 0) ** 2


def _quadratic_form(C: np.ndarray, delta: np.ndarray, level: str) -> np.ndarray:
    """(P,) n_u' δ n_u for each row of C (P, K)."""
    if level == "nominal":  # δ = 1 − I
        m = C.sum(axis=1)
        return m * m - np.einsum("pk,pk->p", C, C)
    # one column at a time with einsum, not C @ δ: threaded BLAS on a thin (N, K) matrix is
    # ~20x slower when the cores are busy
    out = np.zeros(C.shape[0])
    for k in range(C.shape[1]):
        out += C[:, k] * np.einsum("pl,l->p", C, delta[k])
    return out


def _alpha_kernel(C: np.ndarray, W: np.ndarray | None, level: str, values: np.ndarray | None) -> np.ndarray:
    # hand-written: Σ_u n_u'δn_u / (m_u − 1) per sample plus weighted sums replace the package's
    # (N, K, K) coincidence tensor; matches krippendorff.alpha to 1e-9 and is faster
    m = C.sum(axis=1)
    pairable = m >= 2
    C = C[pairable]
    W = None if W is None else W[:, pairable]
    inverse_m = 1.0 / (m[pairable] - 1.0)
    n_categories = C.shape[1]
    n_c = _weighted_sum(W, C)  # pairable values of each label: the coincidence matrix's margins
    n_total = n_c.sum(axis=1)
    if level == "ordinal":
        delta = _ordinal_delta(n_c)
        chunk = max(1, (1 << 22) // max(1, n_categories * n_categories))
        coincidences = np.zeros((n_c.shape[0], n_categories * n_categories))
        for start in range(0, C.shape[0], chunk):
            part = C[start : start + chunk]
            outer = inverse_m[start : start + chunk, None, None] * part[:, :, None] * part[:, None, :]
            weights = None if W is None else W[:, start : start + chunk]
            coincidences += _weighted_sum(weights, outer.reshape(len(part), -1))
        observed = (coincidences.reshape(-1, n_categories, n_categories) * delta).sum(axis=(1, 2))
        expected = np.einsum("bk,bkl,bl->b", n_c, delta, n_c)
    else:
        delta = _fixed_delta(level, n_categories, values)
        per_sample = inverse_m * _quadratic_form(C, delta, level)
        observed = _weighted_sum(W, per_sample)
        expected = np.einsum("bk,kl,bl->b", n_c, delta, n_c)
    ok = ((n_c > 0).sum(axis=1) >= 2) & (expected > 0)
    alpha = np.full(ok.shape[0], np.nan)
    alpha[ok] = 1.0 - (n_total[ok] - 1.0) * observed[ok] / expected[ok]
    return alpha


def _matrix_reason(coded: _Coded, counts: np.ndarray, *, one_label_undefined: bool) -> str | None:
    """Why a matrix metric is undefined, or None. Pairable = samples with ≥ 2 ratings."""
    if coded.codes.size == 0:
        return "the ratings matrix is empty (no samples or no annotators)"
    m = counts.sum(axis=1)
    if m.sum() == 0:
        return "the ratings matrix holds no ratings (every cell is missing)"
    if not (m >= 2).any():
        return "no sample was rated by two or more annotators, so there is nothing to compare"
    if one_label_undefined:
        used = np.flatnonzero(counts[m >= 2].sum(axis=0))
        if used.size < 2:
            return (
                f"every compared rating is the same label ({coded.categories[used[0]]!r}); "
                "agreement beyond chance is undefined when only one label is used"
            )
    return None


# ---------------------------------------------------------------------------------------------
# Building the matrix
# ---------------------------------------------------------------------------------------------
def _as_polars_frame(frame: Any, name: str, columns: Sequence[str]) -> Any:
    """A pandas DataFrame's ``columns`` (those present) as a polars DataFrame, pd.NA/NaN as null;
    anything else is returned as given."""
    if not _is_pandas(frame, "DataFrame"):
        return frame
    try:
        return pl.from_pandas(frame[[c for c in columns if c in frame.columns]])
    except (TypeError, ValueError, ImportError) as exc:  # pyarrow's errors derive from these
        raise ValueError(f"{name}: could not read the pandas DataFrame ({exc})") from exc


def ratings_matrix(annotations: Any) -> tuple[np.ndarray, list[str], list[str]]:
    """Pivot long-form annotations into a ratings matrix.

    annotations: polars or pandas DataFrame with columns ``sample_id``, ``annotator``, ``label``
    (others are ignored), at most one row per (sample_id, annotator) — filter to one round first.
    A null label (pandas: pd.NA, NaN, None) is a missing rating.

    Returns ``(matrix, annotators, sample_ids)``: ``matrix`` is a numpy object array of shape
    (len(sample_ids), len(annotators)) holding the labels, ``None`` where an annotator did not rate
    a sample; ``annotators`` and ``sample_ids`` are the distinct values as strings, sorted.
    An empty frame gives a (0, 0) matrix and two empty lists.
    """
    annotations = _as_polars_frame(annotations, "annotations", ("sample_id", "annotator", "label"))
    if not isinstance(annotations, pl.DataFrame):
        raise ValueError(f"annotations: expected a polars or pandas DataFrame, got {type(annotations).__name__}")
    missing = [c for c in ("sample_id", "annotator", "label") if c not in annotations.columns]
    if missing:
        raise ValueError(f"annotations: missing column(s) {', '.join(missing)}; expected sample_id, annotator, label")
    frame = annotations.select(
        pl.col("sample_id").cast(pl.Utf8), pl.col("annotator").cast(pl.Utf8), pl.col("label")
    )
    positions = {}
    for key in ("sample_id", "annotator"):
        nulls = frame[key].null_count()
        if nulls:
            raise ValueError(f"annotations: column {key} has {nulls} null value(s); every row needs one")
        # dense rank − 1 is the position among the sorted distinct values (polars sorts by bytes,
        # which is Python's str order); O(n) numpy after that, where group_by/unique cost more
        rank = (frame[key].rank("dense") - 1).to_numpy().astype(np.int64) if frame.height else np.zeros(0, np.int64)
        first_row = np.zeros(int(rank.max()) + 1 if rank.size else 0, dtype=np.int64)
        first_row[rank[::-1]] = np.arange(rank.size - 1, -1, -1)  # the last write is the first row
        positions[key] = (rank, frame[key].gather(first_row).to_list())
    (rows, sample_ids), (cols, annotators) = positions["sample_id"], positions["annotator"]
    cell = rows * len(annotators) + cols
    per_cell = np.bincount(cell, minlength=len(sample_ids) * len(annotators))
    if per_cell.size and per_cell.max() > 1:
        first = int(np.flatnonzero(per_cell > 1)[0])
        example = (sample_ids[first // len(annotators)], annotators[first % len(annotators)])
        raise ValueError(
            f"annotations: {int((per_cell > 1).sum())} (sample_id, annotator) pair(s) occur more than once, "
            f"e.g. ({example[0]!r}, {example[1]!r}); keep one label per annotator and sample (one round)"
        )
    matrix = np.full((len(sample_ids), len(annotators)), None, dtype=object)
    labels = np.empty(frame.height, dtype=object)
    labels[:] = frame["label"].to_list()
    matrix[rows, cols] = labels
    return matrix, annotators, sample_ids


# ---------------------------------------------------------------------------------------------
# Metrics (each public metric has a `_..._result` twin returning (value, reason))
# ---------------------------------------------------------------------------------------------
def _prepare(ratings: Any) -> tuple[_Coded, np.ndarray]:
    coded = _encode(_as_matrix(ratings))
    return coded, _unit_counts(coded.codes, coded.n_categories)


def _percent_agreement_of_counts(coded: _Coded, counts: np.ndarray) -> tuple[float, str | None]:
    reason = _matrix_reason(coded, counts, one_label_undefined=False)
    if reason:
        return _NAN, reason
    return float(_percent_agreement_kernel(counts.astype(float), None)[0]), None


def _percent_agreement_result(ratings: Any) -> tuple[float, str | None]:
    return _percent_agreement_of_counts(*_prepare(ratings))


def percent_agreement(ratings: Any) -> float:
    """Observed agreement: mean over samples with ≥ 2 ratings of the share of agreeing rater pairs.

    ratings: ratings matrix, shape (n_samples, n_annotators). A sample with ratings A, A, B has
    1 agreeing pair out of 3. Samples with fewer than 2 ratings are skipped.
    Returns a float in [0, 1]; NaN (see :func:`explain_nan`) when no sample has 2 ratings.
    """
    return _percent_agreement_result(ratings)[0]


def _cohen_from_codes(x: np.ndarray, y: np.ndarray, weights: str | None, categories: list) -> tuple[float, str | None]:
    both = (x >= 0) & (y >= 0)
    if not both.any():
        return _NAN, "no item was rated by both annotators"
    x, y = x[both], y[both]
    used = np.union1d(np.unique(x), np.unique(y))
    if used.size < 2:
        return _NAN, (
            f"both annotators used only the label {categories[used[0]]!r}; "
            "kappa is undefined when only one label is used"
        )
    # codes follow the sorted label order, so scikit-learn's label ranks (for weights) are unchanged
    return float(cohen_kappa_score(x, y, weights=weights)), None


def _check_weights(weights: Any) -> None:
    if weights not in WEIGHTS:
        raise ValueError(f"weights: expected None, 'linear' or 'quadratic', got {weights!r}")


def _cohen_kappa_result(a: Any, b: Any, weights: str | None = None) -> tuple[float, str | None]:
    _check_weights(weights)
    x, y = _as_vector(a, "a"), _as_vector(b, "b")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"a and b: expected the same length (one label per item), got {x.shape[0]} and {y.shape[0]}")
    if x.dtype.kind in "biuf" and y.dtype.kind in "biuf":
        matrix = np.column_stack([x.astype(float), y.astype(float)])
    else:
        matrix = np.empty((x.shape[0], 2), dtype=object)
        matrix[:, 0], matrix[:, 1] = x, y
    coded = _encode(matrix)
    if weights is not None and _label_kind(coded.categories) == "mixed":
        raise ValueError("a and b: weighted kappa needs labels that can be ordered (all numbers or all strings)")
    if x.shape[0] == 0:
        return _NAN, "there are no items to compare"
    return _cohen_from_codes(coded.codes[:, 0], coded.codes[:, 1], weights, coded.categories)


def cohen_kappa(a: Any, b: Any, weights: str | None = None) -> float:
    """Cohen's kappa between two annotators (scikit-learn's ``cohen_kappa_score``).

    a, b: 1-D label sequences of equal length n (lists, numpy arrays, polars or pandas Series);
    items where either rating is missing (None, NaN, pd.NA, pd.NaT) are dropped.
    weights: None (default, unweighted), "linear" or "quadratic"; weights use the rank of each label
    among the sorted labels present, as scikit-learn does (needs orderable labels).
    Returns a float in [-1, 1]; NaN (see :func:`explain_nan`) when no item is rated by both or both
    annotators use a single, identical label.
    """
    return _cohen_kappa_result(a, b, weights)[0]


def pairwise_cohen_kappa(ratings: Any, annotators: Sequence | None = None, weights: str | None = None) -> pl.DataFrame:
    """Cohen's kappa for every pair of annotators.

    ratings: ratings matrix, shape (n_samples, r). annotators: r names in column order (default:
    the DataFrame's column names, or "0".."r-1"). weights: as in :func:`cohen_kappa`.
    Returns a polars DataFrame with r·(r-1)/2 rows (column i before column j, i < j) and columns
    ``annotator_a`` (str), ``annotator_b`` (str), ``kappa`` (float, NaN when undefined for the pair),
    ``n_items`` (int, samples rated by both).
    """
    _check_weights(weights)
    matrix = _as_matrix(ratings)
    names = _annotator_names(annotators, ratings, matrix.shape[1])
    coded = _encode(matrix)
    if weights is not None and _label_kind(coded.categories) == "mixed":
        raise ValueError("ratings: weighted kappa needs labels that can be ordered (all numbers or all strings)")
    rows: dict[str, list] = {"annotator_a": [], "annotator_b": [], "kappa": [], "n_items": []}
    for i, j in combinations(range(matrix.shape[1]), 2):
        x, y = coded.codes[:, i], coded.codes[:, j]
        rows["annotator_a"].append(names[i])
        rows["annotator_b"].append(names[j])
        rows["kappa"].append(_cohen_from_codes(x, y, weights, coded.categories)[0])
        rows["n_items"].append(int(((x >= 0) & (y >= 0)).sum()))
    return pl.DataFrame(
        rows, schema={"annotator_a": pl.Utf8, "annotator_b": pl.Utf8, "kappa": pl.Float64, "n_items": pl.Int64}
    )


def _check_counts(counts: Any) -> np.ndarray:
    table = counts.to_numpy() if isinstance(counts, pl.DataFrame) or _is_pandas(counts, "DataFrame") else counts
    try:
        table = np.asarray(table)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"counts: expected a 2-D table of non-negative whole numbers; {exc}") from exc
    if table.ndim == 1 and table.size == 0:
        table = table.reshape(0, 0)
    if table.dtype.kind == "O" and table.ndim == 2:
        # nullable or mixed columns: a missing cell (None, NaN, pd.NA) is 0, every other must be a number
        flat = table.reshape(-1)
        missing = _missing_mask(flat)
        if all(isinstance(v, numbers.Real) for v in flat[~missing]):
            table = np.where(missing, 0, flat).astype(float).reshape(table.shape)
    elif table.dtype.kind == "f":
        table = np.nan_to_num(table, nan=0.0, posinf=np.inf, neginf=-np.inf)
    if table.ndim != 2 or table.dtype.kind not in "biuf":
        raise ValueError(
            f"counts: expected a 2-D numeric table (samples × categories), got shape {table.shape}, dtype {table.dtype}"
        )
    whole = table.dtype.kind in "biu" or (np.isfinite(table).all() and (table == np.round(table)).all())
    if not whole or (table < 0).any():
        raise ValueError("counts: expected non-negative whole numbers (how many annotators chose each category)")
    return table.astype(float)


def _fleiss_from_table(table: np.ndarray, categories: Sequence) -> tuple[float, str | None]:
    if table.shape[0] == 0:
        return _NAN, "there are no samples"
    m = table.sum(axis=1)
    if m.sum() == 0:
        return _NAN, "there are no ratings (every cell is missing or zero)"
    if not (m >= 2).any():
        return _NAN, "no sample was rated by two or more annotators, so there is nothing to compare"
    used = np.flatnonzero(table.sum(axis=0))
    if used.size < 2:
        return _NAN, (
            f"every rating is the same label ({categories[used[0]]!r}); "
            "agreement beyond chance is undefined when only one label is used"
        )
    return float(_fleiss_kernel(table, None)[0]), None


def _fleiss_kappa_from_counts_result(counts: Any) -> tuple[float, str | None]:
    table = _check_counts(counts)
    return _fleiss_from_table(table, list(range(table.shape[1])))


def fleiss_kappa_from_counts(counts: Any) -> float:
    """Fleiss' kappa from a count table.

    counts: 2-D array-like (numpy, lists, polars or pandas DataFrame), shape (n_samples,
    n_categories), non-negative whole numbers: ``counts[i, k]`` annotators gave sample i category
    k; a missing cell (None, NaN, pd.NA — as a pivot table leaves for combinations never seen)
    counts 0. Rows may have different totals (missing ratings); see :func:`fleiss_kappa` for the
    formula.
    Returns a float in [-1, 1]; NaN (see :func:`explain_nan`) when no row has ≥ 2 ratings or a
    single category is used.
    """
    return _fleiss_kappa_from_counts_result(counts)[0]


def _fleiss_kappa_of_counts(coded: _Coded, counts: np.ndarray) -> tuple[float, str | None]:
    if coded.codes.size == 0:
        return _NAN, "the ratings matrix is empty (no samples or no annotators)"
    return _fleiss_from_table(counts.astype(float), coded.categories)


def _fleiss_kappa_result(ratings: Any) -> tuple[float, str | None]:
    return _fleiss_kappa_of_counts(*_prepare(ratings))


def fleiss_kappa(ratings: Any) -> float:
    """Fleiss' kappa for any number of annotators, tolerating missing ratings.

    ratings: ratings matrix, shape (n_samples, n_annotators).
    Formula (Fleiss 1971; Gwet 2014 for missing ratings): P_o = mean over samples with ≥ 2
    ratings of Σ_k n_ik(n_ik − 1) / (m_i(m_i − 1)); π_k = mean over samples with ≥ 1 rating of
    n_ik / m_i; P_e = Σ_k π_k²; kappa = (P_o − P_e) / (1 − P_e). With no missing ratings this is
    exactly Fleiss' kappa (statsmodels' ``fleiss_kappa``).
    Returns a float in [-1, 1]; NaN (see :func:`explain_nan`) for an empty matrix, no sample with
    ≥ 2 ratings, or a single label everywhere.
    """
    return _fleiss_kappa_result(ratings)[0]


def _alpha_of_counts(
    coded: _Coded, counts: np.ndarray, level: str, values: np.ndarray | None
) -> tuple[float, str | None]:
    reason = _matrix_reason(coded, counts, one_label_undefined=True)
    if reason:
        return _NAN, reason
    return float(_alpha_kernel(counts.astype(float), None, level, values)[0]), None


def _krippendorff_alpha_result(ratings: Any, level: str = "nominal") -> tuple[float, str | None]:
    _check_level(level)
    coded, counts = _prepare(ratings)
    return _alpha_of_counts(coded, counts, level, _check_alpha_labels(level, coded.categories))


def krippendorff_alpha(ratings: Any, level: str = "nominal") -> float:
    """Krippendorff's alpha with missing data (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability").

    ratings: ratings matrix, shape (n_samples, n_annotators); samples with < 2 ratings are not
    pairable and do not count.
    level: "nominal" (default; any labels), "ordinal" (numbers, or strings ordered by their sorted
    unique values — Unicode code point order, so "high" < "low"; map ordered string labels to
    numbers or sortable strings such as "1-low" first), "interval" or "ratio" (numeric labels;
    ratio labels must be ≥ 0).
    Returns a float ≤ 1 (1 = perfect agreement, 0 = chance); equal to ``krippendorff.alpha`` on the
    transposed matrix. NaN (see :func:`explain_nan`) when the matrix is empty, no sample has ≥ 2
    ratings, or the pairable ratings use a single label.
    """
    return _krippendorff_alpha_result(ratings, level)[0]


# ---------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------
def _count_kernel(metric: Callable) -> tuple[str, str] | None:
    """(kind, alpha level) when ``metric`` is one of ours that depends only on per-sample counts."""
    if metric is percent_agreement:
        return "percent_agreement", "nominal"
    if metric is fleiss_kappa:
        return "fleiss_kappa", "nominal"
    if metric is krippendorff_alpha:
        return "krippendorff_alpha", "nominal"
    if (
        isinstance(metric, functools.partial)
        and metric.func is krippendorff_alpha
        and not metric.args
        and set(metric.keywords) <= {"level"}
    ):
        return "krippendorff_alpha", _check_level(metric.keywords.get("level", "nominal"))
    return None


def _kernel_values(kind: str, level: str, C: np.ndarray, W: np.ndarray, values: np.ndarray | None) -> np.ndarray:
    if kind == "percent_agreement":
        return _percent_agreement_kernel(C, W)
    if kind == "fleiss_kappa":
        return _fleiss_kernel(C, W)
    return _alpha_kernel(C, W, level, values)


def _count_patterns(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of (n, K) counts: (patterns (P, K), inverse (n,) row → pattern, multiplicity (P,))."""
    # lexsort + run boundaries: np.unique(axis=0) sorts a void view and is ~50x slower here
    n = counts.shape[0]
    order = np.lexsort(counts.T[::-1]) if counts.shape[1] else np.arange(n)
    ordered = counts[order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    group = np.cumsum(starts) - 1
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = group
    return ordered[starts], inverse, np.bincount(group)


def _pattern_frequencies(
    rng: np.random.Generator, inverse: np.ndarray, multiplicity: np.ndarray, n_boot: int
) -> Iterator[np.ndarray]:
    """Batches (b, P) of how often each distinct count pattern occurs in a resample of the samples."""
    n, n_patterns = inverse.shape[0], multiplicity.shape[0]
    by_pattern = 4 * n_patterns <= n  # few distinct patterns: draw their frequencies directly
    batch = max(1, (1 << 20) // (n_patterns if by_pattern else n))  # bounds memory to ~8 MB a batch
    for start in range(0, n_boot, batch):
        size = min(batch, n_boot - start)
        if by_pattern:
            # resampling n samples uniformly with replacement draws the patterns ~ Multinomial(n, share)
            yield rng.multinomial(n, multiplicity / n, size=size).astype(float)
        else:
            picked = inverse[rng.integers(0, n, size=(size, n))] + (np.arange(size) * n_patterns)[:, None]
            yield np.bincount(picked.reshape(-1), minlength=size * n_patterns).reshape(size, n_patterns).astype(float)


def bootstrap_ci(
    metric: Callable[[Any], float], ratings: Any, n_boot: int = 1000, level: float = 0.95, seed: int | None = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of an agreement metric, resampling samples (rows).

    metric: callable taking a ratings matrix and returning a float. ``percent_agreement``,
    ``fleiss_kappa``, ``krippendorff_alpha`` and ``functools.partial(krippendorff_alpha,
    level=...)`` are computed from resampled per-sample label counts (fast: well under a second
    for 1,000 resamples of 100,000 samples; :func:`agreement_summary` does all three at once);
    any other callable is called on each resampled numpy matrix (n_samples, n_annotators).
    ratings: ratings matrix, shape (n_samples, n_annotators).
    n_boot: number of resamples, ≥ 1 (default 1000). level: coverage in (0, 1) (default 0.95).
    seed: seed of numpy's default_rng (default 0; the same seed gives the same interval), or None.
    Returns (low, high): the (1 − level)/2 and (1 + level)/2 quantiles of the resampled values;
    resamples where the metric is undefined are skipped; (NaN, NaN) if all are.
    """
    if not callable(metric):
        raise ValueError(f"metric: expected a function of a ratings matrix, got {type(metric).__name__}")
    _check_bootstrap_arguments(n_boot, level, seed)
    fast = _count_kernel(metric)
    matrix = _as_matrix(ratings)
    n_samples = matrix.shape[0]
    if n_samples == 0:
        return _NAN, _NAN
    if fast is not None:
        kind, alpha_level = fast
        coded = _encode(matrix)
        values = _check_alpha_labels(alpha_level, coded.categories) if kind == "krippendorff_alpha" else None
        patterns = _count_patterns(_unit_counts(coded.codes, coded.n_categories))
        return _bootstrap_counts([kind], alpha_level, values, patterns, int(n_boot), level, seed)[0]
    rng = np.random.default_rng(seed)
    stats = np.array([float(metric(matrix[rng.integers(0, n_samples, n_samples)])) for _ in range(int(n_boot))])
    return _percentile_interval(stats, level)


def _check_bootstrap_arguments(n_boot: Any, level: Any, seed: Any) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 1:
        raise ValueError(f"n_boot: expected a whole number ≥ 1, got {n_boot!r}")
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"level: expected a coverage strictly between 0 and 1 (e.g. 0.95), got {level!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ValueError(f"seed: expected a non-negative whole number or None, got {seed!r}")


def _percentile_interval(stats: np.ndarray, level: float) -> tuple[float, float]:
    stats = stats[~np.isnan(stats)]
    if stats.size == 0:
        return _NAN, _NAN
    low, high = np.quantile(stats, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


def _bootstrap_counts(
    kinds: Sequence[str], alpha_level: str, values: np.ndarray | None, patterns: tuple, n_boot: int, level: float,
    seed: int | None,
) -> list[tuple[float, float]]:
    """Bootstrap intervals of count-based metrics from (patterns, inverse, multiplicity), one per kind.

    Every kind sees the same resamples (the same seed gives the same draws), so they are drawn once.
    """
    unique_counts, inverse, multiplicity = patterns
    if inverse.size == 0:
        return [(_NAN, _NAN)] * len(kinds)
    C = unique_counts.astype(float)
    stats: list[list[np.ndarray]] = [[] for _ in kinds]
    for W in _pattern_frequencies(np.random.default_rng(seed), inverse, multiplicity, n_boot):
        for collected, kind in zip(stats, kinds):
            collected.append(_kernel_values(kind, alpha_level, C, W, values))
    return [_percentile_interval(np.concatenate(collected), level) for collected in stats]


def agreement_summary(
    ratings: Any, n_boot: int = 1000, level: float = 0.95, seed: int | None = 0, alpha_level: str = "nominal"
) -> pl.DataFrame:
    """The three headline metrics with bootstrap intervals, from one pass over the matrix (the page's cards).

    ratings: ratings matrix, shape (n_samples, n_annotators). n_boot, level, seed: as in
    :func:`bootstrap_ci`; alpha_level: the level of measurement of Krippendorff's alpha.
    Returns a polars DataFrame with rows ``percent_agreement``, ``fleiss_kappa``,
    ``krippendorff_alpha`` and columns ``metric`` (str), ``value``, ``low``, ``high`` (float; NaN when
    undefined) and ``reason`` (str, why the value is NaN; null when defined). Values and intervals
    are exactly those of the individual functions and ``bootstrap_ci`` with the same seed; the
    labels are encoded and the resamples drawn once instead of three times.
    """
    _check_bootstrap_arguments(n_boot, level, seed)
    _check_level(alpha_level)
    coded, counts = _prepare(ratings)
    values = _check_alpha_labels(alpha_level, coded.categories)
    patterns = _count_patterns(counts)
    points = {
        "percent_agreement": _percent_agreement_of_counts(coded, counts),
        "fleiss_kappa": _fleiss_kappa_of_counts(coded, counts),
        "krippendorff_alpha": _alpha_of_counts(coded, counts, alpha_level, values),
    }
    # an undefined estimate has undefined resamples too (they hold a subset of its labels)
    defined = [name for name, (_, reason) in points.items() if reason is None]
    intervals = dict(zip(defined, _bootstrap_counts(defined, alpha_level, values, patterns, int(n_boot), level, seed)))
    rows: dict[str, list] = {"metric": [], "value": [], "low": [], "high": [], "reason": []}
    for name, (value, reason) in points.items():
        low, high = intervals.get(name, (_NAN, _NAN))
        for column, item in zip(rows, (name, value, low, high, reason)):
            rows[column].append(item)
    return pl.DataFrame(
        rows,
        schema={"metric": pl.Utf8, "value": pl.Float64, "low": pl.Float64, "high": pl.Float64, "reason": pl.Utf8},
    )


# ---------------------------------------------------------------------------------------------
# Majority vote and disputes
# ---------------------------------------------------------------------------------------------
def _top(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: index of the first most frequent label, its count, and how many labels share it."""
    if counts.shape[1] == 0:
        zeros = np.zeros(counts.shape[0], dtype=np.int64)
        return zeros, zeros, zeros
    top = counts.max(axis=1)
    return counts.argmax(axis=1), top, (counts == top[:, None]).sum(axis=1)


def majority_vote(ratings: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Most frequent label per sample.

    ratings: ratings matrix, shape (n_samples, n_annotators).
    Returns ``(labels, is_tie, support)``, each of shape (n_samples,):
    ``labels`` object array, the winning label (on a tie the first tied label in sorted label
    order — check ``is_tie``; None for a sample with no ratings); ``is_tie`` bool, two or more
    labels share the top count; ``support`` float in (0, 1], the winner's share of the sample's
    ratings (NaN for a sample with no ratings).
    """
    coded, counts = _prepare(ratings)
    winner, top, n_top = _top(counts)
    m = counts.sum(axis=1)
    rated = m > 0
    labels = np.full(counts.shape[0], None, dtype=object)
    if rated.any():
        categories = np.empty(coded.n_categories, dtype=object)
        categories[:] = coded.categories
        labels[rated] = categories[winner[rated]]
    return labels, rated & (n_top >= 2), _safe_divide(top, m)


def disputed_samples(ratings: Any) -> np.ndarray:
    """Samples to send to adjudication: ≥ 2 ratings and no label has a strict majority.

    ratings: ratings matrix, shape (n_samples, n_annotators).
    Returns a bool array of shape (n_samples,): True when the top label holds at most half of the
    sample's ratings (this includes every tie: A/B, A/A/B/B, A/B/C; not A/A/B). Samples with
    fewer than 2 ratings are never disputed.
    """
    _, counts = _prepare(ratings)
    _, top, _ = _top(counts)
    m = counts.sum(axis=1)
    return (m >= 2) & (2 * top <= m)


# ---------------------------------------------------------------------------------------------
# Per-annotator and per-label views
# ---------------------------------------------------------------------------------------------
def annotator_report(ratings: Any, annotators: Sequence | None = None) -> pl.DataFrame:
    """Per-annotator agreement with the majority of the *other* annotators.

    ratings: ratings matrix, shape (n_samples, r). annotators: r names in column order (default:
    the DataFrame's column names, or "0".."r-1").
    The reference label of a sample is the majority vote of the other annotators (leave-one-out:
    counting the annotator's own vote would inflate the score — with 3 annotators it is a third of
    the vote); samples where the others gave no rating or tie are not compared.
    Returns a polars DataFrame, one row per annotator in column order, with columns
    ``annotator`` (str), ``n_items`` (int, samples rated), ``n_compared`` (int, samples compared),
    ``agreement_with_majority`` (float in [0, 1], share of compared samples with the reference
    label; NaN if none), ``kappa_vs_majority`` (Cohen's kappa against the reference labels; NaN if
    undefined) and ``flag`` (bool, kappa < 0.6 — retrain; null when kappa is NaN).
    """
    matrix = _as_matrix(ratings)
    names = _annotator_names(annotators, ratings, matrix.shape[1])
    coded = _encode(matrix)
    counts = _unit_counts(coded.codes, coded.n_categories)
    rows: dict[str, list] = {k: [] for k in ("annotator", "n_items", "n_compared", "agreement_with_majority",
                                             "kappa_vs_majority", "flag")}
    for j, name in enumerate(names):
        own = coded.codes[:, j]
        rated = own >= 0
        others = counts[rated].copy()
        others[np.arange(others.shape[0]), own[rated]] -= 1
        reference, top, n_top = _top(others)
        compared = (top > 0) & (n_top == 1)
        mine, theirs = own[rated][compared], reference[compared]
        kappa = _cohen_from_codes(mine, theirs, None, coded.categories)[0] if compared.any() else _NAN
        rows["annotator"].append(name)
        rows["n_items"].append(int(rated.sum()))
        rows["n_compared"].append(int(compared.sum()))
        rows["agreement_with_majority"].append(float(np.mean(mine == theirs)) if compared.any() else _NAN)
        rows["kappa_vs_majority"].append(kappa)
        rows["flag"].append(None if np.isnan(kappa) else bool(kappa < KAPPA_RETRAIN_THRESHOLD))
    return pl.DataFrame(
        rows,
        schema={"annotator": pl.Utf8, "n_items": pl.Int64, "n_compared": pl.Int64,
                "agreement_with_majority": pl.Float64, "kappa_vs_majority": pl.Float64, "flag": pl.Boolean},
    )


def label_distribution(ratings: Any, annotators: Sequence | None = None) -> pl.DataFrame:
    """How often each annotator used each label, in long form.

    ratings: ratings matrix, shape (n_samples, r). annotators: as in :func:`annotator_report`.
    Returns a polars DataFrame with r·K rows (every annotator × every label present in the matrix,
    zero counts included; annotators in column order, labels sorted) and columns ``annotator``
    (str), ``label`` (str, int or float as the labels are), ``count`` (int) and ``share`` (float,
    count / the annotator's number of ratings, in [0, 1]; NaN for an annotator with no ratings).
    """
    matrix = _as_matrix(ratings)
    names = _annotator_names(annotators, ratings, matrix.shape[1])
    coded = _encode(matrix)
    K, r = coded.n_categories, len(names)
    per_annotator = np.zeros((r, K), dtype=np.int64)
    for j in range(r):
        own = coded.codes[:, j]
        per_annotator[j] = np.bincount(own[own >= 0], minlength=K)
    share = _safe_divide(per_annotator, per_annotator.sum(axis=1, keepdims=True))
    return pl.DataFrame(
        [
            pl.Series("annotator", [name for name in names for _ in range(K)], dtype=pl.Utf8),
            _label_series("label", coded.categories * r),
            pl.Series("count", per_annotator.reshape(-1), dtype=pl.Int64),
            pl.Series("share", share.reshape(-1), dtype=pl.Float64),
        ]
    )


def pair_confusion(ratings: Any, i: int, j: int, labels: Sequence | None = None) -> tuple[list, np.ndarray]:
    """Confusion matrix between annotator columns ``i`` and ``j``.

    ratings: ratings matrix, shape (n_samples, r); i, j: column indices in [0, r).
    labels: label order of the axes (default: every label in the matrix, sorted); ratings with a
    label not listed are left out.
    Returns ``(labels, matrix)``: ``matrix`` int64 of shape (L, L), ``matrix[p, q]`` = samples that
    annotator i labelled ``labels[p]`` and annotator j labelled ``labels[q]``; only samples rated
    by both count.
    """
    matrix = _as_matrix(ratings)
    r = matrix.shape[1]
    for name, index in (("i", i), ("j", j)):
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < r:
            raise ValueError(f"{name}: expected an annotator column index in [0, {r}), got {index!r}")
    coded = _encode(matrix)
    if labels is None:
        axis = list(coded.categories)
        position = np.arange(coded.n_categories)
    else:
        if isinstance(labels, (str, bytes)):
            raise ValueError("labels: expected a sequence of labels, got a single string")
        axis = list(labels)
        lookup = {label: p for p, label in enumerate(axis)}
        if len(lookup) != len(axis):
            raise ValueError("labels: expected distinct labels")
        position = np.array([lookup.get(c, -1) for c in coded.categories], dtype=np.int64)
    x, y = coded.codes[:, int(i)], coded.codes[:, int(j)]
    both = (x >= 0) & (y >= 0)
    px, py = position[x[both]], position[y[both]]
    keep = (px >= 0) & (py >= 0)
    size = len(axis)
    # bincount over (row, column) cells: sklearn's confusion_matrix rejects an empty pair
    table = np.bincount(px[keep] * size + py[keep], minlength=size * size).reshape(size, size)
    return axis, table.astype(np.int64)


def per_label_agreement(ratings: Any) -> pl.DataFrame:
    """Specific agreement of each label: how often a rating of it is shared by the other annotators.

    ratings: ratings matrix, shape (n_samples, n_annotators); only samples with ≥ 2 ratings count.
    For label k (Uebersax's specific agreement): Σ_i n_ik(n_ik − 1) / Σ_i n_ik(m_i − 1), i.e. of
    all (rating of k, other rating on the same sample) pairs, the share where the other rating is
    k too. With two annotators it is 2a / (2a + b + c), the positive specific agreement.
    Returns a polars DataFrame, one row per label in sorted order, with columns ``label``,
    ``n_ratings`` (int, ratings of the label on samples with ≥ 2 ratings) and ``agreement``
    (float in [0, 1]; NaN when n_ratings is 0).
    """
    coded, counts = _prepare(ratings)
    m = counts.sum(axis=1)
    C = counts[m >= 2].astype(float)
    agreeing = (C * (C - 1)).sum(axis=0)
    possible = (C * (m[m >= 2] - 1.0)[:, None]).sum(axis=0)
    return pl.DataFrame(
        [
            _label_series("label", coded.categories),
            pl.Series("n_ratings", C.sum(axis=0).astype(np.int64), dtype=pl.Int64),
            pl.Series("agreement", _safe_divide(agreeing, possible), dtype=pl.Float64),
        ]
    )


# ---------------------------------------------------------------------------------------------
# Reasons for NaN
# ---------------------------------------------------------------------------------------------
_RESULTS: dict[str, Callable[..., tuple[float, str | None]]] = {
    "percent_agreement": _percent_agreement_result,
    "cohen_kappa": _cohen_kappa_result,
    "fleiss_kappa": _fleiss_kappa_result,
    "fleiss_kappa_from_counts": _fleiss_kappa_from_counts_result,
    "krippendorff_alpha": _krippendorff_alpha_result,
}
_PUBLIC_METRICS = {
    percent_agreement: "percent_agreement",
    cohen_kappa: "cohen_kappa",
    fleiss_kappa: "fleiss_kappa",
    fleiss_kappa_from_counts: "fleiss_kappa_from_counts",
    krippendorff_alpha: "krippendorff_alpha",
}


def explain_nan(metric: Callable | str, *args: Any, **kwargs: Any) -> str | None:
    """Why ``metric(*args, **kwargs)`` is NaN, as a sentence for the page; None when it is defined.

    metric: one of percent_agreement, cohen_kappa, fleiss_kappa, fleiss_kappa_from_counts,
    krippendorff_alpha — the function, its name, or a ``functools.partial`` of it; args/kwargs: the
    same arguments the metric was called with, e.g. ``explain_nan(krippendorff_alpha, m, "ordinal")``.
    Raises ValueError for another metric, or for arguments the metric itself would reject.
    """
    if isinstance(metric, functools.partial):
        args, kwargs = metric.args + args, {**metric.keywords, **kwargs}
        metric = metric.func
    name = metric if isinstance(metric, str) else _PUBLIC_METRICS.get(metric)
    if name not in _RESULTS:
        raise ValueError(f"metric: expected one of {', '.join(_RESULTS)}, got {metric!r}")
    return _RESULTS[name](*args, **kwargs)[1]


__all__ = [
    "KAPPA_RETRAIN_THRESHOLD",
    "LEVELS",
    "WEIGHTS",
    "agreement_summary",
    "annotator_report",
    "bootstrap_ci",
    "cohen_kappa",
    "disputed_samples",
    "explain_nan",
    "fleiss_kappa",
    "fleiss_kappa_from_counts",
    "krippendorff_alpha",
    "label_distribution",
    "majority_vote",
    "pair_confusion",
    "pairwise_cohen_kappa",
    "per_label_agreement",
    "percent_agreement",
    "ratings_matrix",
]


# ---------------------------------------------------------------------------------------------
# Views for the Agreement page (added with the page): per-group agreement, the kappa grid
# ---------------------------------------------------------------------------------------------
REWORK_THRESHOLD = 0.9
"""Percent agreement below which :func:`percent_agreement_by_group` flags a group (batch) for rework."""


def percent_agreement_by_group(ratings: Any, groups: Any, threshold: float = REWORK_THRESHOLD) -> pl.DataFrame:
    """Percent agreement within each group of samples (e.g. each batch), with a rework flag.

    ratings: ratings matrix, shape (n_samples, n_annotators). groups: 1-D sequence of n_samples
    group keys, one per row (strings or numbers, compared as text; a missing key — None, NaN, pd.NA —
    is the null group).
    threshold: agreement below which a group is flagged (default 0.9).
    Each group's value is :func:`percent_agreement` of its rows alone.
    Returns a polars DataFrame, one row per group (sorted as text, the null group last), with
    columns ``group`` (str, null for the null group), ``n_samples`` (int, rows of the group),
    ``n_compared`` (int, rows with ≥ 2 ratings), ``percent_agreement`` (float in [0, 1]; NaN when
    n_compared is 0) and ``rework`` (bool, percent_agreement < threshold; null when NaN).
    """
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"threshold: expected a number, got {threshold!r}")
    coded, counts = _prepare(ratings)
    keys = groups.to_list() if isinstance(groups, pl.Series) or _is_pandas(groups, "Series", "Index") else groups
    if isinstance(keys, (str, bytes)) or keys is None:
        raise ValueError("groups: expected a sequence with one group key per sample")
    keys = [None if _is_missing(k) else str(k) for k in keys]
    n = counts.shape[0]
    if len(keys) != n:
        raise ValueError(f"groups: expected {n} keys (one per ratings row), got {len(keys)}")
    names = sorted({k for k in keys if k is not None}) + ([None] if None in keys else [])
    index = {name: position for position, name in enumerate(names)}
    code = np.fromiter((index[k] for k in keys), dtype=np.int64, count=n)
    share, m = _pair_agreement(counts.astype(float))
    pairable = m >= 2
    size = len(names)
    n_samples = np.bincount(code, minlength=size)
    n_compared = np.bincount(code, weights=pairable.astype(float), minlength=size)
    agreeing = np.bincount(code, weights=share, minlength=size)
    value = _safe_divide(agreeing, n_compared)
    rework = [None if np.isnan(v) else bool(v < threshold) for v in value]
    return pl.DataFrame(
        {"group": names, "n_samples": n_samples.astype(np.int64), "n_compared": n_compared.astype(np.int64),
         "percent_agreement": value, "rework": rework},
        schema={"group": pl.Utf8, "n_samples": pl.Int64, "n_compared": pl.Int64,
                "percent_agreement": pl.Float64, "rework": pl.Boolean},
    )


def kappa_matrix(pairwise: pl.DataFrame, annotators: Sequence[str]) -> np.ndarray:
    """Square annotators × annotators grid of a :func:`pairwise_cohen_kappa` result (for a heatmap).

    pairwise: polars or pandas DataFrame with columns ``annotator_a``, ``annotator_b``, ``kappa`` (a
    missing kappa — null, NaN, pd.NA — is undefined); annotators: the order of the rows and columns.
    Returns a float array (r, r), symmetric, 1.0 on the diagonal and NaN for a pair that is missing
    from ``pairwise`` or whose kappa is undefined.
    """
    pairwise = _as_polars_frame(pairwise, "pairwise", ("annotator_a", "annotator_b", "kappa"))
    missing = [c for c in ("annotator_a", "annotator_b", "kappa") if c not in pairwise.columns]
    if missing:
        raise ValueError(f"pairwise: missing column(s) {', '.join(missing)}")
    if isinstance(annotators, (str, bytes)):
        raise ValueError("annotators: expected a sequence of names, got a single string")
    names = [str(a) for a in annotators]
    position = {name: p for p, name in enumerate(names)}
    grid = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(grid, 1.0)
    for a, b, kappa in pairwise.select("annotator_a", "annotator_b", "kappa").iter_rows():
        if a in position and b in position and a != b:
            value = np.nan if kappa is None else float(kappa)
            grid[position[a], position[b]] = grid[position[b], position[a]] = value
    return grid


__all__ += ["REWORK_THRESHOLD", "kappa_matrix", "percent_agreement_by_group"]
