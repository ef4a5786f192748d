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
    per_sample,
    sort_findings,
    text_fields,
)
from core.quality import find_pii

_SCHEMA = {**_SPAN_SCHEMA, "masked": pl.Utf8}


def _masked_findings(text: str, found: Sequence[tuple] | None = None) -> list[tuple]:
    """(kind, start, end, before, match, after, masked) per PII span of ``text`` (``found``: its
    :func:`core.quality.find_pii` spans, when known): the match and its context cut from the masked text (a
    window never shows part of a neighbouring match), start / end in ``text``."""
    found = find_pii(text) if found is None else found
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


def _revealed_findings(text: str, found: Sequence[tuple]) -> list[tuple]:
    """As :func:`_masked_findings`, raw: the match and its raw context (``…`` where cut), and the masked field."""
    masked = _masked_findings(text, found)[0][-1] if found else text
    out = []
    for kind, start, end, matched in found:
        lo, hi = max(0, start - CONTEXT_CHARS), min(len(text), end + CONTEXT_CHARS)
        out.append((kind, start, end, ("…" if lo > 0 else "") + text[lo:start], matched,
                    text[end:hi] + ("…" if hi < len(text) else ""), masked))
    return out


def pii_rows(samples: pl.DataFrame, spans: pl.DataFrame, fields: Sequence[str], revealed: bool) -> pl.DataFrame:
    """:func:`pii_report`'s rows from the spans of :func:`core.passes.pii.pii_spans` (``sample_id, field, kind,
    start, end, matched``) and the texts of ``samples``: masked context, or raw when ``revealed``."""
    spans = spans.filter(pl.col("field").is_in(list(fields)))
    if spans.height == 0:
        return pl.DataFrame(schema=_SCHEMA)
    flagged = samples.with_columns(pl.col("sample_id").cast(pl.Utf8)).join(
        spans.select("sample_id").unique(), on="sample_id", how="semi")
    texts = {(sid, f): text for f in dict.fromkeys(spans["field"].to_list()) if f in flagged.columns
             for sid, text in zip(flagged["sample_id"].to_list(), flagged.get_column(f).to_list())}
    found: dict[tuple[str, str], list[tuple]] = {}
    for sid, f, kind, start, end, matched in spans.select("sample_id", "field", "kind", "start", "end",
                                                          "matched").iter_rows():
        found.setdefault((sid, f), []).append((kind, start, end, matched))
    rows = []
    for (sid, f), spans_of in found.items():
        text = texts[(sid, f)]
        made = _revealed_findings(text, spans_of) if revealed else _masked_findings(text, spans_of)
        rows += [(sid, f, *row) for row in made]
    return sort_findings(pl.DataFrame(rows, schema=_SCHEMA, orient="row"))  # the order of span_report's rows


def pii_report(samples: pl.DataFrame, fields: Sequence[str] | None = None,
               reveal: privacy.Reveal | None = None, dataset: str | None = None,
               spans: pl.DataFrame | None = None) -> pl.DataFrame:
    """Personal data, one row per match: ``sample_id, field, kind, start, end, before, match, after, masked``.

    ``masked`` is the whole field after :func:`core.quality.mask_pii` (``***`` + last 4 characters).
    ``match``, ``before`` and ``after`` are masked too (``start`` / ``end`` index the original text),
    unless ``reveal`` is a team lead's decision (:func:`core.privacy.reveal`) for ``dataset``: then they
    are the raw span and its raw context. ``spans``: the samples' :func:`core.passes.pii.pii_spans`, when known
    (read from the pass cache); else they are found here.
    """
    from core.passes.pii import pii_spans

    fields = list(fields) if fields is not None else text_fields(samples)
    if spans is None:
        spans = pii_spans(samples, fields)
    return pii_rows(samples, spans, fields, privacy.is_revealed(reveal, dataset))


def pii_findings(store: Any, dataset: str, reveal: privacy.Reveal | None = None,
                 include_excluded: bool = False) -> pl.DataFrame:
    """:func:`pii_report` of a dataset's samples (excluded ones skipped unless ``include_excluded``):
    raw only under ``reveal`` (a team lead's audited decision for ``dataset``). The spans come from the pass
    cache (only samples new since the last run are searched)."""
    from core.passes.runner import pass_frame

    samples = store.samples(dataset, include_excluded=include_excluded)
    return pii_report(samples, text_fields(samples), reveal=reveal, dataset=dataset,
                      spans=pass_frame(store, dataset, "pii", samples))


def _run(ctx: CheckContext) -> CheckResult:
    from core.passes.pii import pii_spans

    spans = per_sample(ctx, "pii", lambda: pii_spans(ctx.samples, ctx.fields))
    frame = pii_report(ctx.samples, ctx.fields, reveal=ctx.options.get("reveal"), dataset=ctx.dataset, spans=spans)
    return CheckResult(frame, distinct_count(frame), by_kind(frame))


CHECK = register(Check(
    name="pii", title="Personal data", severity="error", order=50, run=_run, empty=_SCHEMA,
    help="E-mail addresses, phone numbers, Chinese resident ID numbers (valid check digit), Luhn-valid bank card "
         "numbers, IPv4 addresses. Count: samples with personal data.",
))
