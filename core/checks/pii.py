"""Personal data: e-mail addresses, phone numbers, ID numbers, bank cards and IP addresses, with masking.

The findings are masked (the match and its context) unless the caller passes a team lead's audited
decision (:func:`core.privacy.reveal`) for the dataset: a report, its tables and its JSON carry no raw
personal data by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from core import privacy
from core.checks import register
from core.checks.base import (
    _SPAN_SCHEMA,
    CONTEXT_CHARS,
    Check,
    CheckContext,
    CheckResult,
    by_kind,
    distinct_count,
    sample_ids,
    span_report,
    text_fields,
)
from core.quality import find_pii, mask_pii
from core.vocab import TEXT_FIELDS

_SCHEMA = {**_SPAN_SCHEMA, "masked": pl.Utf8}


def _masked_findings(text: str) -> list[tuple]:
    """(kind, start, end, before, match, after, masked) per PII span of ``text``: the match and its context
    cut from the masked text (a window never shows part of a neighbouring match), start / end in ``text``."""
    found = find_pii(text)
    pieces, spans, at, pos = [], [], 0, 0
    for _kind, start, end, matched in found:
        shown = "***" + matched[-4:]
        pos += start - at
        spans.append((pos, pos + len(shown)))
        pieces += [text[at:start], shown]
        pos += len(shown)
        at = end
    masked = "".join(pieces) + text[at:]
    out = []
    for (kind, start, end, _m), (m_start, m_end) in zip(found, spans):
        lo, hi = max(0, m_start - CONTEXT_CHARS), min(len(masked), m_end + CONTEXT_CHARS)
        out.append((kind, start, end, ("…" if lo > 0 else "") + masked[lo:m_start], masked[m_start:m_end],
                    masked[m_end:hi] + ("…" if hi < len(masked) else ""), masked))
    return out


def _masked_spans(samples: pl.DataFrame, fields: Sequence[str]) -> pl.DataFrame:
    """As :func:`span_report`'s rows (same columns and order), with :func:`_masked_findings`."""
    ids = sample_ids(samples)
    texts = [(f, sid, text) for f in fields if f in samples.columns
             for sid, text in zip(ids, samples.get_column(f).to_list()) if text]
    rows = [(sid, f, *finding) for f, sid, text in texts for finding in _masked_findings(text)]
    order = {f: i for i, f in enumerate(TEXT_FIELDS)}  # the order of span_report's rows
    frame = pl.DataFrame(rows, schema=_SCHEMA, orient="row")
    return (frame.with_columns(pl.col("field").replace_strict(order, default=99, return_dtype=pl.Int32).alias("_f"))
            .sort(["sample_id", "_f", "start"]).drop("_f"))


def pii_report(samples: pl.DataFrame, fields: Sequence[str] | None = None,
               reveal: privacy.Reveal | None = None, dataset: str | None = None) -> pl.DataFrame:
    """Personal data, one row per match: ``sample_id, field, kind, start, end, before, match, after, masked``.

    ``masked`` is the whole field after :func:`core.quality.mask_pii` (``***`` + last 4 characters).
    ``match``, ``before`` and ``after`` are masked too (``start`` / ``end`` index the original text),
    unless ``reveal`` is a team lead's decision (:func:`core.privacy.reveal`) for ``dataset``: then they
    are the raw span and its raw context.
    """
    fields = list(fields) if fields is not None else text_fields(samples)
    if privacy.is_revealed(reveal, dataset):
        return span_report(samples, fields, find_pii, mask_pii, "masked")
    return _masked_spans(samples, fields)


def pii_findings(store: Any, dataset: str, reveal: privacy.Reveal | None = None,
                 include_excluded: bool = False) -> pl.DataFrame:
    """:func:`pii_report` of a dataset's samples (excluded ones skipped unless ``include_excluded``):
    raw only under ``reveal`` (a team lead's audited decision for ``dataset``)."""
    samples = store.samples(dataset, include_excluded=include_excluded)
    return pii_report(samples, text_fields(samples), reveal=reveal, dataset=dataset)


def _run(ctx: CheckContext) -> CheckResult:
    frame = pii_report(ctx.samples, ctx.fields, reveal=ctx.options.get("reveal"), dataset=ctx.dataset)
    return CheckResult(frame, distinct_count(frame), by_kind(frame))


CHECK = register(Check(
    name="pii", title="Personal data", severity="error", order=50, run=_run, empty=_SCHEMA,
    help="E-mail addresses, phone numbers, Chinese resident ID numbers (valid check digit), Luhn-valid bank card "
         "numbers, IPv4 addresses. Count: samples with personal data.",
))
