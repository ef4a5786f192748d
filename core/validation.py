"""Shared argument checks of the engine: polars frames, label and id columns.

A leaf (imports nothing from ``core``), so the pure math modules can share one set of checks and
one set of error messages while staying importable on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
