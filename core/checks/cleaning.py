"""Cleaning: markup, URLs, control characters, mojibake, full-width ASCII and repeated punctuation."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from core.checks import register
from core.checks.base import (
    _SPAN_SCHEMA,
    Check,
    CheckContext,
    CheckResult,
    by_kind,
    distinct_count,
    per_sample,
    sort_findings,
    span_report,
    text_fields,
)
from core.quality import clean_text, cleaning_findings


def cleaning_report(samples: pl.DataFrame, fields: Sequence[str] | None = None) -> pl.DataFrame:
    """Cleaning findings, one row per match: ``sample_id, field, kind, start, end, before, match, after, cleaned``.

    ``before``/``after`` are up to :data:`CONTEXT_CHARS` characters around the match (``…`` where
    cut); ``cleaned`` is the whole field after :func:`core.quality.clean_text`.
    """
    fields = list(fields) if fields is not None else text_fields(samples)
    return span_report(samples, fields, cleaning_findings, clean_text, "cleaned")


def _run(ctx: CheckContext) -> CheckResult:
    frame = per_sample(ctx, "cleaning", lambda: cleaning_report(ctx.samples, ctx.fields))
    # The pass reads every text field; a field the dataset lacks has no finding, another caller's field list may.
    frame = sort_findings(frame.filter(pl.col("field").is_in(list(ctx.fields))))
    return CheckResult(frame, distinct_count(frame), by_kind(frame))


CHECK = register(Check(
    name="cleaning", title="Cleaning", severity="info", order=40, run=_run, empty={**_SPAN_SCHEMA, "cleaned": pl.Utf8},
    help="URLs, HTML tags and entities, control characters, mojibake, repeated punctuation, mixed "
         "full-width forms. Count: samples with a finding.",
))
