"""Text made safe and readable for the pages: markdown escaping, file names, tables people read."""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.vocab import AGREEMENT_GOOD, AGREEMENT_RETRAIN

if TYPE_CHECKING:
    import polars as pl

_MD_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")
_LEADING_SPACE = re.compile(r"^[ \t]+")
_UNSAFE_FILE_CHARS = re.compile(r"[^\w.-]+")

#: Column names that read better spelled out than title-cased.
_HEADERS = {
    "sample_id": "Sample", "n_items": "Items", "n_samples": "Samples", "n_eval": "Evaluated",
    "n_labeled": "Labeled", "n_compared": "Compared", "psi": "PSI", "ks": "KS", "ks_p": "KS p-value",
    "f1": "F1", "macro_f1": "Macro-F1", "micro_f1": "Micro-F1", "weighted_f1": "Weighted F1",
    "pii": "PII", "id": "Id", "url": "URL", "auc": "AUC", "created_at": "Created", "logged_at": "Logged",
    "claimed_at": "Claimed", "resolved_at": "Resolved",
}


def md_escape(text: Any) -> str:
    """User text made inert for ``st.markdown``: ASCII punctuation backslash-escaped, line breaks
    and leading indentation kept (a name such as ``**admin**`` shows as typed)."""
    text = _MD_PUNCT.sub(r"\\\1", "" if text is None else str(text))
    lines = [_LEADING_SPACE.sub(lambda m: "\u00a0" * len(m.group()), line) for line in text.split("\n")]
    return "  \n".join(lines)


def safe_filename(*parts: Any, default: str = "download") -> str:
    """A download file name stem from ``parts`` (dataset names, selections): letters of any script,
    digits, ``_ . -`` kept; everything else (slashes, spaces, quotes, control characters) becomes ``_``."""
    text = unicodedata.normalize("NFC", "_".join(str(p) for p in parts if p is not None and str(p) != ""))
    stem = _UNSAFE_FILE_CHARS.sub("_", text).strip("._")
    return stem[:120] or default


def header(column: str) -> str:
    """A readable header for a snake_case column name (``agreement_with_majority`` -> ``Agreement with majority``)."""
    if column in _HEADERS:
        return _HEADERS[column]
    words = column.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else column


def cell(value: Any, digits: int = 3) -> str:
    """One value as text for people: '—' for missing or NaN, timestamps to the second, floats rounded."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


MISSING = "—"


def readable(df: pl.DataFrame, digits: int = 3, keep: Any = ()) -> pl.DataFrame:
    """``df``'s values ready for people, column names kept: missing text as "—" (never a literal
    "None"), timestamps as text to the second, floats rounded to ``digits`` decimals; whole and decimal
    columns with a missing value become text too (a number column cannot show "—"). Columns in ``keep``
    are left as they are (a page formats them itself)."""
    import polars as pl

    exprs = []
    for name, dtype in df.schema.items():
        if name in keep:
            continue
        col = pl.col(name)
        has_null = df.get_column(name).null_count() > 0
        if isinstance(dtype, pl.Datetime):
            exprs.append(col.dt.strftime("%Y-%m-%d %H:%M:%S").fill_null(MISSING))
        elif isinstance(dtype, pl.Date):
            exprs.append(col.dt.strftime("%Y-%m-%d").fill_null(MISSING))
        elif dtype == pl.Utf8:
            if has_null:
                exprs.append(col.fill_null(MISSING))
        elif dtype.is_float():
            if has_null or df.get_column(name).is_nan().any():
                exprs.append(pl.Series(name, [cell(v, digits) for v in df.get_column(name).to_list()],
                                       dtype=pl.Utf8))
            else:
                exprs.append(col.round(digits))
        elif dtype.is_integer() and has_null:
            exprs.append(pl.Series(name, [MISSING if v is None else f"{v:,}" for v in df.get_column(name).to_list()],
                                   dtype=pl.Utf8))
    return df.with_columns(exprs) if exprs else df


def column_labels(columns: Any, **overrides: Any) -> dict[str, Any]:
    """``st.dataframe`` column_config giving every column its readable :func:`header` (``overrides``:
    a label or a ``st.column_config`` column for some columns; None hides one)."""
    config: dict[str, Any] = {c: header(c) for c in columns}
    config.update(overrides)
    return config


def table(df: pl.DataFrame, column_config: dict[str, Any] | None = None, digits: int = 3, **kwargs: Any) -> Any:
    """Draw ``df`` with ``st.dataframe`` as people read it: :func:`readable` values, :func:`header` titles
    (``column_config`` entries win), no index, full width. Returns what ``st.dataframe`` returns."""
    import streamlit as st

    kwargs.setdefault("hide_index", True)
    kwargs.setdefault("width", "stretch")
    config = column_labels(df.columns, **(column_config or {}))
    # a column the page configured as a number, bar or checkbox keeps its type (its format is the page's)
    typed = {c for c, v in config.items() if isinstance(v, dict)
             and (v.get("type_config") or {}).get("type") in _TYPED_COLUMNS}
    return st.dataframe(readable(df, digits, keep=typed), column_config=config, **kwargs)


_TYPED_COLUMNS = {"number", "progress", "checkbox", "datetime", "date", "time", "selectbox", "bar_chart",
                  "line_chart", "area_chart", "list", "link", "image"}


def band_color(value: float) -> str:
    """Traffic-light colour of an agreement value (≥ 0.8 good, 0.6–0.8 fair, < 0.6 retrain)."""
    if value is None or math.isnan(value):
        return "gray"
    if value >= AGREEMENT_GOOD:
        return "green"
    if value >= AGREEMENT_RETRAIN:
        return "orange"
    return "red"


#: Audit-log actions as people read them (the raw value stays the filter's and the CSV's).
ACTION_NAMES = {
    "import": "Import", "dataset.create": "Dataset created", "dataset.labels": "Labels changed",
    "dataset.setting": "Setting changed", "sample.exclude": "Sample excluded", "sample.include": "Sample included",
    "review.save": "Review saved", "review.undo": "Review undone", "gold.set": "Gold question set",
    "gold.clear": "Gold question cleared", "queue.add": "Queued for review", "queue.open": "Claim released",
    "queue.reopen": "Entry reopened", "queue.done": "Queue entry closed", "queue.skipped": "Queue entry skipped",
    "queue.claimed": "Queue entry claimed", "metrics.import": "Metrics imported", "pii.reveal": "Personal data shown",
    "auth.lockout": "Sign-in locked",
}


def action_name(action: Any) -> str:
    """A readable name of an audit action (``gold.set`` -> ``Gold question set``; an unknown one spelled out)."""
    if action is None:
        return MISSING
    text = str(action)
    if text in ACTION_NAMES:
        return ACTION_NAMES[text]
    words = text.replace(".", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else text


def audit_value(value: Any) -> Any:
    """An audit value as people read it: a JSON list (a dataset's labels) as ``a, b, c``; anything else as is."""
    if not isinstance(value, str) or not value.startswith("["):
        return value
    import json

    try:
        items = json.loads(value)
    except ValueError:
        return value
    return ", ".join(MISSING if v is None else str(v) for v in items) if isinstance(items, list) else value
