"""Text made safe and readable for the pages: markdown escaping, file names, tables people read."""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import datetime
from typing import Any

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

from core.vocab import AGREEMENT_GOOD, AGREEMENT_RETRAIN

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


def readable(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` ready for ``st.dataframe``: readable headers, timestamps cut to the second, no literal
    "None" (missing text stays empty, which the table draws as blank)."""
    import polars as pl

    out = df.with_columns(
        [pl.col(c).dt.truncate("1s") for c, t in df.schema.items() if isinstance(t, pl.Datetime)]
    )
    return out.rename({c: header(c) for c in out.columns})


def band_color(value: float) -> str:
    """Traffic-light colour of an agreement value (≥ 0.8 good, 0.6–0.8 fair, < 0.6 retrain)."""
    if value is None or value != value:  # NaN
        return "gray"
    if value >= AGREEMENT_GOOD:
        return "green"
    if value >= AGREEMENT_RETRAIN:
        return "orange"
    return "red"
