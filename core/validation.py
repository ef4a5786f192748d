"""Shared argument checks of the engine: polars frames, label and id columns.

A leaf (imports nothing from ``core``), so the pure math modules can share one set of checks and
one set of error messages while staying importable on their own.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

__all__ = ["label_kind", "no_nulls", "normalise_labels", "require_frame", "unify", "unify_columns"]


def require_frame(df: Any, name: str, columns: Sequence[str]) -> None:
    """Raise ValueError unless ``df`` is a polars DataFrame holding ``columns``."""
    if not isinstance(df, pl.DataFrame):
        raise ValueError(f"{name} must be a polars DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{name} is missing column(s) {', '.join(missing)}; expected columns {', '.join(columns)}"
        )


def label_kind(dtype: pl.DataType) -> str | None:
    """Coarse kind of a label/id dtype: 'text', 'number', 'boolean', 'null' or None (unsupported)."""
    if dtype == pl.String:
        return "text"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype == pl.Null:
        return "null"
    if dtype.is_integer() or dtype.is_float():
        return "number"
    return None


def normalise_labels(s: pl.Series, name: str) -> pl.Series:
    """Cast categoricals to text and reject dtypes that cannot hold labels or ids."""
    if isinstance(s.dtype, (pl.Categorical, pl.Enum)):
        s = s.cast(pl.String)
    if label_kind(s.dtype) is None:
        raise ValueError(f"{name} must hold text, integer, float or boolean values, got dtype {s.dtype}")
    return s


def unify(named: Sequence[tuple[str, pl.Series]]) -> list[pl.Series]:
    """Cast series that must be compared with each other to one dtype, or raise ValueError.

    Integers and floats are compatible (cast to Float64 if any is float, else Int64);
    an all-null/empty series takes the dtype of the others; text, numbers and booleans
    never mix.
    """
    series = [normalise_labels(s, n) for n, s in named]
    kinds = {label_kind(s.dtype) for s in series} - {"null"}
    if len(kinds) > 1:
        described = ", ".join(f"{n} holds {label_kind(s.dtype)} values" for (n, _), s in zip(named, series))
        raise ValueError(f"values that are compared must have the same type, but {described}")
    if not kinds:
        target: pl.DataType = pl.String()
    elif kinds == {"number"}:
        dtypes = [s.dtype for s in series if s.dtype != pl.Null]
        if all(d == dtypes[0] for d in dtypes):
            target = dtypes[0]
        else:
            target = pl.Float64() if any(d.is_float() for d in dtypes) else pl.Int64()
    else:
        target = next(s.dtype for s in series if s.dtype != pl.Null)
    return [s if s.dtype == target else s.cast(target) for s in series]


def unify_columns(
    left: pl.DataFrame, left_col: str, right: pl.DataFrame, right_col: str, left_name: str, right_name: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Give ``left[left_col]`` and ``right[right_col]`` one dtype (see ``unify``)."""
    a, b = unify([(f"{left_name}.{left_col}", left[left_col]), (f"{right_name}.{right_col}", right[right_col])])
    if a.dtype != left[left_col].dtype:
        left = left.with_columns(a.alias(left_col))
    if b.dtype != right[right_col].dtype:
        right = right.with_columns(b.alias(right_col))
    return left, right


def no_nulls(df: pl.DataFrame, name: str, column: str) -> None:
    """Raise ValueError when ``df[column]`` has missing values."""
    n_null = df[column].null_count()
    if n_null:
        raise ValueError(f"{name}.{column} has {n_null} missing (null) value(s)")


# -- ratings and missing values (shared by agreement, consensus and drift) ----------------------


def _pandas() -> Any:
    """The pandas module if it is loaded, else None: a pandas object can only exist once it is.

    Checked this way so that this module does not import pandas itself.
    """
    return sys.modules.get("pandas")


def _is_pandas(value: Any, *kinds: str) -> bool:
    pd = _pandas()
    return pd is not None and isinstance(value, tuple(getattr(pd, kind) for kind in kinds))


def _is_missing(value: Any) -> bool:
    """None, NaN (any float, numpy float or Decimal), pandas' NA or NaT."""
    if value is None:
        return True
    pd = _pandas()
    if pd is not None and value is pd.NA:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return False


def _missing_mask(values: np.ndarray) -> np.ndarray:
    """Where a 1-D object array holds a missing rating (see :func:`_is_missing`)."""
    try:
        # elementwise `x != x` is the NaN test for float, numpy floats, Decimal and NaT alike
        return np.equal(values, None) | (values != values)
    except TypeError:
        # pandas' NA answers a comparison with NA, whose truth value raises: test value by value
        return np.fromiter(map(_is_missing, values), dtype=bool, count=values.size)


def _as_matrix(ratings: Any, name: str = "ratings") -> np.ndarray:
    """Return ``ratings`` as a 2-D numpy array (numeric dtype, or object for anything else)."""
    if isinstance(ratings, pl.DataFrame):
        if ratings.height == 0 or ratings.width == 0:
            return np.empty((ratings.height, ratings.width), dtype=object)
        array = ratings.to_numpy()
    elif _is_pandas(ratings, "DataFrame"):
        # numeric columns give a numeric array; nullable ones an object array holding pd.NA
        array = ratings.to_numpy()
    elif isinstance(ratings, np.ndarray):
        array = ratings
    elif isinstance(ratings, (str, bytes)) or ratings is None:
        raise ValueError(f"{name}: expected a 2-D array-like (samples × annotators), got {type(ratings).__name__}")
    else:
        try:
            # dtype=object keeps labels as given: np.asarray(["a", 1]) would turn 1 into "1"
            array = np.array(ratings, dtype=object)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name}: expected a 2-D array-like (samples × annotators); {exc}") from exc
    if array.ndim == 1 and array.size == 0:
        return np.empty((0, 0), dtype=object)
    if array.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D array-like with one row per sample and one column per annotator, "
            f"got {array.ndim} dimension(s) (shape {array.shape}); rows of unequal length are not allowed"
        )
    if array.dtype.kind in "biuf":
        return array
    if array.dtype.kind in "OUS":
        return array.astype(object)
    raise ValueError(f"{name}: labels must be strings or numbers, got dtype {array.dtype}")
