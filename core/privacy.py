"""Personal data: masked for everyone by default; a team lead's audited decision to see it raw.

The rule is :data:`core.roles.Action.RAW_PII` (team leads only, :data:`core.roles.ALLOWED`). A raw view or
export needs a :class:`Reveal`, and the only way to get one is :func:`reveal`, which checks the rule and
writes an audit row (``pii.reveal``: who, which dataset, where) before it returns. Everything else here
masks: :func:`mask_text` (``core.quality.mask_pii``: ``***`` + the last 4 characters), :func:`mask_strings`
for nested records, :func:`mask_frame` for tables, each a no-op only under a valid :class:`Reveal` for that
dataset. No streamlit, no SQL (the audit row is written by the store).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from core.auth import authorize
from core.quality import mask_pii
from core.roles import Action, PermissionDenied

__all__ = ["REVEAL_ACTION", "Reveal", "is_revealed", "mask_frame", "mask_record", "mask_report", "mask_strings",
           "mask_text", "masker", "may_reveal", "reveal"]

#: The audit log's action for a raw view or export of personal data.
REVEAL_ACTION = "pii.reveal"
#: Columns never masked: ids are not personal data here, and tables are joined and selected by them.
_KEEP_COLUMNS = frozenset({"sample_id", "sample_id_a", "sample_id_b", "entry_id", "audit_id", "dataset"})

_TOKEN = object()  # only reveal() holds it: a Reveal built any other way is not a decision


@dataclass(frozen=True)
class Reveal:
    """A team lead's audited decision to see ``dataset``'s personal data unmasked ``where`` (a page, an export).

    Made only by :func:`reveal`; pass it to the functions that would otherwise mask."""

    actor: str
    dataset: str
    where: str
    _token: object = field(default=None, repr=False, compare=False)


def may_reveal(actor: str | None) -> bool:
    """Whether ``actor`` may see raw personal data (the rule :func:`reveal` enforces; for showing a control)."""
    try:
        authorize(actor, Action.RAW_PII)
    except PermissionDenied:
        return False
    return bool((actor or "").strip())


def reveal(store: Any, actor: str, dataset: str, where: str, detail: dict[str, Any] | None = None) -> Reveal:
    """Check that ``actor`` may see raw personal data, audit it, and return the decision.

    ``where``: what is revealed (``"data quality page"``, ``"gold export (jsonl)"``), kept in the audit row.
    Raises :class:`core.roles.PermissionDenied` for anyone but a team lead (or a system actor such as
    ``cli``) and for a missing actor name (a raw view must name who saw it); nothing is written then.
    """
    name = (actor or "").strip()
    if not name:
        raise PermissionDenied("unmasked personal data needs a named team lead (no actor given)")
    authorize(name, Action.RAW_PII)
    where = str(where or "").strip() or "unspecified"
    store.audit_pii_reveal(name, dataset, where, detail)
    return Reveal(name, dataset, where, _TOKEN)


def is_revealed(decision: Reveal | None, dataset: str | None) -> bool:
    """Whether ``decision`` came from :func:`reveal` for ``dataset``."""
    return isinstance(decision, Reveal) and decision._token is _TOKEN and decision.dataset == dataset


def _identity(text: str) -> str:
    return text


def masker(decision: Reveal | None = None, dataset: str | None = None) -> Callable[[str], str]:
    """The function a text goes through: unchanged under a valid reveal of ``dataset``, else masked."""
    return _identity if is_revealed(decision, dataset) else mask_pii


def mask_text(text: str | None, decision: Reveal | None = None, dataset: str | None = None) -> str | None:
    """``text`` with personal data masked (None stays None), unless ``decision`` reveals ``dataset``."""
    if text is None:
        return None
    return masker(decision, dataset)(text)


def mask_strings(value: Any, mask: Callable[[str], str]) -> Any:
    """``value`` with ``mask`` applied to every string in it (dict keys left as they are)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: mask_strings(v, mask) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_strings(v, mask) for v in value]
    return value


def mask_record(value: Any, decision: Reveal | None = None, dataset: str | None = None) -> Any:
    """A record (dict, list, JSON-ready values) with every string masked, unless ``decision`` reveals ``dataset``."""
    if is_revealed(decision, dataset):
        return value
    return mask_strings(value, mask_pii)


def mask_frame(frame: pl.DataFrame, decision: Reveal | None = None, dataset: str | None = None,
               columns: Iterable[str] | None = None) -> pl.DataFrame:
    """``frame`` with personal data masked in its text columns (``columns``, default every string column
    but the ids), and in strings nested in list / struct columns; unchanged under a reveal of ``dataset``."""
    if is_revealed(decision, dataset) or frame.height == 0:
        return frame
    names = list(columns) if columns is not None else [c for c in frame.columns if c not in _KEEP_COLUMNS]
    exprs = []
    for name in names:
        dtype = frame.schema[name]
        if dtype == pl.Utf8:
            exprs.append(pl.col(name).map_elements(mask_pii, return_dtype=pl.Utf8, skip_nulls=True))
        elif isinstance(dtype, (pl.List, pl.Struct, pl.Object)) and _has_strings(dtype):
            masked = [mask_strings(v, mask_pii) for v in frame.get_column(name).to_list()]
            exprs.append(pl.Series(name, masked, dtype=dtype))
    return frame.with_columns(exprs) if exprs else frame


def _has_strings(dtype: Any) -> bool:
    if dtype == pl.Utf8:
        return True
    if isinstance(dtype, pl.List):
        return _has_strings(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(_has_strings(f.dtype) for f in dtype.fields)
    return isinstance(dtype, pl.Object)


def _mask_any(value: Any) -> Any:
    """A frame, or a dataclass holding frames (a check's result, a label-error result), masked."""
    if isinstance(value, pl.DataFrame):
        return mask_frame(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _mask_any(getattr(value, f.name)) for f in dataclasses.fields(value)
                   if isinstance(getattr(value, f.name), (pl.DataFrame, dict)) or
                   dataclasses.is_dataclass(getattr(value, f.name))}
        return dataclasses.replace(value, **changes)
    if isinstance(value, dict):
        return {k: _mask_any(v) for k, v in value.items()}
    return value


def mask_report(report: Any, decision: Reveal | None = None) -> Any:
    """A copy of a quality report (:class:`core.quality_report.QualityReport`) with personal data masked
    in every finding of every check (texts, previews, side-by-side pairs), ids kept; the report itself
    unchanged under a reveal of its dataset. What a page shows, and lets download, by default."""
    if is_revealed(decision, getattr(report, "dataset", None)):
        return report
    premasked = getattr(report, "masked_results", None)
    results = (dict(premasked) if premasked is not None else
               {name: _mask_any(result) for name, result in report.results.items()})
    changes = {"masked_results": None} if hasattr(report, "masked_results") else {}
    return dataclasses.replace(report, results=results, **changes)
